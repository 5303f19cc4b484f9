"""The names of the unmasking rules (no torch, so command lines can offer them before loading anything)."""

DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
LLADA_ALGS = ("low_confidence", "random")
ALGORITHMS = DREAM_ALGS + LLADA_ALGS
