"""Regression: the engine must never write the mask token as a revealed token (an untrained
model with top-k sampling used to propose it and end with masks left on the canvas)."""
import torch

from diffucode.models import build_tiny_model
from diffucode.sampling import GenerationConfig, generate


def test_mask_token_is_never_revealed():
    model, tok = build_tiny_model(hidden_size=32, num_layers=2, seed=3)
    # make the mask token the model's favourite prediction everywhere
    with torch.no_grad():
        model.backbone.lm_head.weight[model.mask_token_id] += 5.0
    enc = tok(["add two numbers", "count vowels"], return_tensors="pt", padding=True)
    for alg in ("entropy", "origin", "low_confidence"):
        for seed in range(3):
            cfg = GenerationConfig(max_new_tokens=4, alg=alg, temperature=1.0, top_k=4, num_return_sequences=8, seed=seed)
            out = generate(model, enc.input_ids, enc.attention_mask, cfg)
            assert not (out.sequences == model.mask_token_id).any()
