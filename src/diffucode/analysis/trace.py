"""Decode one prompt and keep what the pictures need: token strings and their reveal steps.

    python -c "from diffucode.models import build_tiny_model; from diffucode.sampling import GenerationConfig; \
from diffucode.analysis.trace import trace_completion; m, t = build_tiny_model(); \
print(trace_completion(m, t, 'def f(x):\\n', GenerationConfig(max_new_tokens=8, steps=8)).tokens)"

The trace feeds :func:`diffucode.analysis.replay.write_replay_html` and
:func:`diffucode.analysis.plots.plot_decode_order`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from diffucode.analysis.prompts import encode_prompts
from diffucode.analysis.replay import token_strings

__all__ = ["Trace", "trace_completion"]


@dataclass
class Trace:
    prompt: str  # the prompt text as the model saw it (chat template applied)
    tokens: list[str]  # text of each shown completion token
    steps: list[int]  # reveal step of each shown token (1-based)
    ids: list[int]  # the shown token ids
    full_steps: list[int]  # reveal steps of all L positions, as the engine returned them
    nfe: int
    meta: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@torch.no_grad()
def trace_completion(model: Any, tok: Any, prompt: str, config: Any, chat: bool = False, keep_special: bool = False) -> Trace:
    """Generate one completion of ``prompt`` with the engine (``config``: a ``GenerationConfig``).

    By default the shown tokens stop before the first EOS/pad token; ``keep_special=True``
    shows all ``max_new_tokens`` positions (special tokens as their literal text), which makes
    a diffusion model's habit of placing trailing EOS tokens early visible. A shown position
    whose reveal step is < 1 (not revealed by a forward pass, e.g. filled after EOS) is
    drawn at the last step.
    """
    from diffucode.sampling import generate

    if getattr(config, "num_return_sequences", 1) != 1:
        raise ValueError("trace_completion decodes one sequence: set num_return_sequences=1")
    (row,) = encode_prompts(tok, [prompt], chat=chat)
    ids = torch.tensor([row], dtype=torch.long, device=model.device)  # [1, P]
    out = generate(model, ids, attention_mask=torch.ones_like(ids), config=config)
    P = ids.shape[1]
    gen = out.sequences[0, P:].tolist()  # [L]
    steps = out.order[0].tolist()  # [L]
    n = len(gen)
    if not keep_special:
        stop_ids = {i for i in (getattr(model, "eos_token_id", None), tok.eos_token_id, tok.pad_token_id) if i is not None}
        n = next((j for j, t in enumerate(gen) if t in stop_ids), len(gen))
    nfe = int(out.nfe)
    shown_steps = [s if s >= 1 else max(nfe, 1) for s in steps[:n]]
    prompt_text = tok.decode(row, skip_special_tokens=False)
    return Trace(
        prompt=prompt_text,
        tokens=token_strings(tok, gen[:n]),
        steps=shown_steps,
        ids=gen[:n],
        full_steps=steps,
        nfe=nfe,
    )
