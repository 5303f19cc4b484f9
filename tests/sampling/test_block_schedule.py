"""``block_schedule``: per-step reveal counts inside a partly filled block.

SDAR's decoding code (JetAstra/SDAR ``get_num_transfer_tokens(block_length, steps)``) splits the
block LENGTH over the steps and reveals at most that many of the masks left, so the block holding
the prompt's end finishes early; LLaDA, Fast-dLLM and Stable-DiffCoder split the block's masked
count. Checked on the per-position reveal step (``order``), which does not depend on the weights.
"""

import torch

from diffucode.models import build_tiny_model
from diffucode.sampling import GenerationConfig, generate
from diffucode.sampling.presets import preset_config


def _first_block_counts(schedule: str, prompt_len: int, block: int = 8, per_block: int = 4):
    torch.set_num_threads(1)
    model, _ = build_tiny_model(attention="block_causal", block_len=block, shift=False, hidden_size=32, seed=1)
    L = 32
    ids = torch.arange(10, 10 + prompt_len)[None]
    cfg = GenerationConfig(max_new_tokens=L, steps=L * per_block // block, alg="low_confidence",
                           block_schedule=schedule, stop_at_eos=False, early_exit=False)
    out = generate(model, ids, config=cfg)
    first = block - prompt_len % block  # masks in the block holding the prompt's end
    steps = out.order[0, :first].tolist()
    return [steps.count(s) for s in sorted(set(steps))], out


def test_block_schedule_splits_the_block_length_in_the_prompt_tail_block():
    # block 8, 4 steps per block, 6 masks in the first block (prompt of 10 tokens)
    assert _first_block_counts("block", 10)[0] == [2, 2, 2]  # SDAR: 8 // 4 = 2 per step, done after 3 steps
    assert _first_block_counts("masked", 10)[0] == [2, 2, 1, 1]  # LLaDA split of 6 masks over 4 steps


def test_block_schedule_saves_forwards_in_a_partial_block():
    # 2 masks in the first block (prompt of 6), block 8 / 4 steps: one step reveals both
    counts, out = _first_block_counts("block", 6)
    counts_m, out_m = _first_block_counts("masked", 6)
    assert counts == [2] and counts_m == [1, 1]
    # canvas 6 + 32 = 38: the last block (columns 32..37) is cut to 6 masks: 3 steps instead of 4 there too
    assert out.nfe == out_m.nfe - 2
    # the full blocks in between (completion positions 2..25) are unaffected
    mid, mid_m = out.order[0, 2:26], out_m.order[0, 2:26]
    assert (mid - mid.min()).tolist() == (mid_m - mid_m.min()).tolist()


def test_sdar_preset_uses_the_block_schedule():
    assert preset_config("sdar").block_schedule == "block"
    assert preset_config("stable-diffcoder").block_schedule == "masked"
    assert preset_config("llada").block_schedule == "masked"
