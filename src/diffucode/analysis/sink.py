"""The entropy sink: how sure the model is about each completion position at the first step.

    python -c "from diffucode.models import build_tiny_model; from diffucode.analysis.sink import entropy_sink; \
m, t = build_tiny_model(); print(entropy_sink(m, t, ['def f(x):\\n'], gen_len=16).summary())"

Setup (DiffuCoder section 4.1, docs/ALGORITHMS.md section 5): the prompt is clean and the whole
completion ``[M] * L`` is masked, exactly the input of decoding step 1. One forward pass
gives, at every completion position ``j``, a distribution over the vocabulary (``align=True``
logits, so shift models read the output at ``j - 1``). Its confidence is the maximum softmax
probability (temperature 1, no top-p: the raw model belief, not a sampler's processed
distribution); its entropy is reported too. Averaged over prompts, a trained model's
confidence curve is L-shaped: the positions right after the prompt are far surer than the
rest, which is why confidence-based remasking decodes mostly left to right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from diffucode.analysis.prompts import encode_prompts, left_pad, pad_id_of

__all__ = ["first_step_confidence", "entropy_sink", "SinkResult"]


@torch.no_grad()
def first_step_confidence(
    model: Any, input_ids: torch.Tensor, gen_len: int, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(confidence [B, L], entropy [B, L])`` at step 1 for left-padded prompts ``input_ids [B, P]``.

    ``attention_mask [B, P]`` marks real prompt tokens (None = no padding).
    """
    if gen_len < 1:
        raise ValueError(f"gen_len (--max-new-tokens) must be >= 1, got {gen_len}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [B, P], got shape {tuple(input_ids.shape)}")
    B, P = input_ids.shape
    device = model.device
    input_ids = input_ids.to(device)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    masks = torch.full((B, gen_len), int(model.mask_token_id), dtype=torch.long, device=device)  # [B, L]
    ids = torch.cat([input_ids, masks], dim=1)  # [B, P+L]
    am = torch.cat([attention_mask.to(device).long(), torch.ones_like(masks)], dim=1)  # [B, P+L]
    max_len = getattr(model, "max_seq_len", None)
    if max_len is not None and P + gen_len > max_len:
        raise ValueError(
            f"prompt ({P} tokens) + --max-new-tokens ({gen_len}) exceeds the model's context of {max_len}"
        )
    logits = model(ids, attention_mask=am).logits[:, P:].float()  # [B, L, V], aligned
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    conf = probs.max(dim=-1).values  # [B, L]
    ent = -(probs * logp).sum(dim=-1)  # [B, L], nats
    return conf.cpu(), ent.cpu()


@dataclass
class SinkResult:
    """First-step confidence / entropy per completion position, for each prompt and averaged."""

    confidence: np.ndarray  # [N, L] max softmax prob per prompt
    entropy: np.ndarray  # [N, L] nats

    @property
    def num_prompts(self) -> int:
        return int(self.confidence.shape[0])

    @property
    def gen_len(self) -> int:
        return int(self.confidence.shape[1])

    @property
    def confidence_mean(self) -> np.ndarray:  # [L]
        return self.confidence.mean(axis=0)

    @property
    def confidence_std(self) -> np.ndarray:  # [L]
        return self.confidence.std(axis=0)

    @property
    def entropy_mean(self) -> np.ndarray:  # [L]
        return self.entropy.mean(axis=0)

    def summary(self, head: int = 4) -> dict:
        """A few numbers that say whether the curve is L-shaped.

        ``head_to_tail`` is the mean confidence of the first ``head`` positions over that of the
        remaining positions (> 1 means a sink next to the prompt).
        """
        c = self.confidence_mean
        h = min(head, max(1, c.size - 1))
        tail = c[h:] if c.size > h else c
        return {
            "num_prompts": self.num_prompts,
            "gen_len": self.gen_len,
            "confidence_first": float(c[0]),
            "confidence_head_mean": float(c[:h].mean()),
            "confidence_tail_mean": float(tail.mean()),
            "head_to_tail": float(c[:h].mean() / max(tail.mean(), 1e-12)),
            "argmax_position": int(c.argmax()),
            "entropy_first": float(self.entropy_mean[0]),
            "entropy_tail_mean": float(self.entropy_mean[h:].mean() if c.size > h else self.entropy_mean.mean()),
            "head": h,
        }

    def to_dict(self, per_prompt: bool = False) -> dict:
        out = {
            "summary": self.summary(),
            "confidence_mean": self.confidence_mean.tolist(),
            "confidence_std": self.confidence_std.tolist(),
            "entropy_mean": self.entropy_mean.tolist(),
        }
        if per_prompt:
            out["confidence"] = self.confidence.tolist()
        return out


def entropy_sink(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    gen_len: int = 256,
    batch_size: int = 8,
    chat: bool = False,
    progress: bool = False,
) -> SinkResult:
    """Run :func:`first_step_confidence` over ``prompts`` in left-padded batches."""
    if not prompts:
        raise ValueError("entropy_sink needs at least one prompt")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    rows = encode_prompts(tok, prompts, chat=chat)
    pad = pad_id_of(model, tok)
    confs, ents = [], []
    starts = range(0, len(rows), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="entropy sink", unit="batch")
    for i in starts:
        ids, am = left_pad(rows[i : i + batch_size], pad)
        c, e = first_step_confidence(model, ids, gen_len, am)
        confs.append(c.numpy())
        ents.append(e.numpy())
    return SinkResult(confidence=np.concatenate(confs), entropy=np.concatenate(ents))
