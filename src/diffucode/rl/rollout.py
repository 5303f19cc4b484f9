"""Rollouts for GRPO: G completions per prompt from the diffusion sampler, decoded and masked.

    python -c "from diffucode.models import build_tiny_model; from diffucode.rl.rollout import *; \
from diffucode.sampling import GenerationConfig; m, t = build_tiny_model(); \
print(sample_groups(m, t, ['def f(x):'], 2, GenerationConfig(max_new_tokens=8, temperature=1.0), seed=0).texts)"

Imported explicitly (not from ``diffucode.rl``): it runs the decoding engine
(``diffucode.sampling.generate``). Published rollout settings (DiffuCoder): ``G = 10``,
temperature 1.2, top_p 0.95, ``alg="entropy"``, 256 tokens in 256 steps.

Layout of a :class:`Rollout` (``N = num_prompts * G`` rows, group-major: the ``G`` completions of
prompt ``g`` are rows ``[g*G, (g+1)*G)``):

* ``completion_mask``: the completion through its first end token (EOS / pad / extra stop ids
  such as ``<|im_end|>``), inclusive: DiffuCoder keeps the end token as part of the completion, so
  the model is also trained on where to stop. The pure padding after it is not in the loss.
* ``noise_mask``: every generated position, padding included. The likelihood estimators mask
  over this whole canvas, the way the sampler produced it (it started from ``L`` masks), as the
  reference code does; only the loss ignores the padding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from diffucode.diffusion.schedules import mix_seed
from diffucode.sampling import GenerationConfig, generate

STREAM_RL_ROLLOUT = 103


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P] 0/1
    completion_ids: torch.Tensor  # [N, L]
    completion_mask: torch.Tensor  # [N, L] bool: loss positions (through the first end token)
    noise_mask: torch.Tensor  # [N, L] bool: positions the estimators may mask (the whole canvas)
    order: torch.Tensor  # [N, L] 1-based reveal step (0 = trimmed after the end)
    texts: list[str]  # [N] decoded completions (special tokens dropped)
    nfe: int  # forward passes spent sampling

    def __len__(self) -> int:
        return self.completion_ids.shape[0]


def tokenize_prompts(
    tokenizer, texts: Sequence[str], max_prompt_len: int | None, pad_id: int, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``[B, P]`` ids and mask; prompts longer than ``max_prompt_len`` keep their last tokens
    (the reference truncates the same way)."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if max_prompt_len is not None:
        rows = [r[-max_prompt_len:] for r in rows]
    if any(len(r) == 0 for r in rows):
        raise ValueError("a prompt tokenised to zero tokens")
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), P, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, P - len(r):] = 1
    return ids.to(device), mask.to(device)


def end_token_ids(model, stop_token_ids: Sequence[int] = ()) -> list[int]:
    """The ids that end a completion: the model's eos and pad, plus ``stop_token_ids`` (as the engine)."""
    ids = {int(t) for t in stop_token_ids}
    for t in (model.eos_token_id, model.pad_token_id):
        if t is not None:
            ids.add(int(t))
    ids.discard(int(model.mask_token_id))
    return sorted(ids)


def completion_masks(completion_ids: torch.Tensor, end_ids: Sequence[int]) -> torch.Tensor:
    """``[N, L]`` bool: positions up to and including each row's first end token (all if none)."""
    N, L = completion_ids.shape
    is_end = torch.isin(completion_ids, torch.tensor(list(end_ids), dtype=torch.long, device=completion_ids.device))
    idx = torch.arange(L, device=completion_ids.device).expand(N, L)
    first = torch.where(is_end, idx, torch.full_like(idx, L)).min(dim=1).values  # [N]
    return idx <= first[:, None]


def decode_completions(tokenizer, completion_ids: torch.Tensor, completion_mask: torch.Tensor, end_ids: Sequence[int]) -> list[str]:
    """Text of each completion up to (not including) its first end token, special tokens dropped."""
    out = []
    end = set(int(e) for e in end_ids)
    for ids, m in zip(completion_ids.tolist(), completion_mask.tolist()):
        kept = [t for t, keep in zip(ids, m) if keep and t not in end]
        out.append(tokenizer.decode(kept, skip_special_tokens=True))
    return out


@torch.no_grad()
def sample_groups(
    model,
    tokenizer,
    prompt_texts: Sequence[str],
    group_size: int,
    gen_cfg: GenerationConfig,
    seed: int,
    batch_prompts: int = 8,
    max_prompt_len: int | None = None,
) -> Rollout:
    """``group_size`` completions for each prompt, sampled in calls of ``batch_prompts`` prompts.

    Call ``c`` of the loop is seeded with ``mix_seed(seed, c)``: a rollout is reproducible from
    ``seed`` (the recipe derives it from the run seed, the step and the process rank).
    """
    device = model.device
    pad_id = model.pad_token_id if model.pad_token_id is not None else (model.eos_token_id or 0)
    ids, amask = tokenize_prompts(tokenizer, prompt_texts, max_prompt_len, pad_id, device)
    P = ids.shape[1]
    seqs, orders, nfe = [], [], 0
    for c, start in enumerate(range(0, len(prompt_texts), batch_prompts)):
        sl = slice(start, start + batch_prompts)
        cfg = dataclasses.replace(gen_cfg, num_return_sequences=group_size,
                                  seed=mix_seed(seed, c, STREAM_RL_ROLLOUT), return_history=False)
        out = generate(model, ids[sl], amask[sl], cfg)
        seqs.append(out.sequences[:, out.prompt_len:])
        orders.append(out.order)
        nfe += out.nfe
    completion_ids = torch.cat(seqs)  # [N, L]
    order = torch.cat(orders)
    end_ids = end_token_ids(model, gen_cfg.stop_token_ids)
    cmask = completion_masks(completion_ids, end_ids)
    texts = decode_completions(tokenizer, completion_ids, cmask, end_ids)
    return Rollout(
        prompt_ids=ids.repeat_interleave(group_size, 0),
        prompt_mask=amask.repeat_interleave(group_size, 0),
        completion_ids=completion_ids,
        completion_mask=cmask,
        noise_mask=torch.ones_like(cmask),
        order=order,
        texts=texts,
        nfe=nfe,
    )
