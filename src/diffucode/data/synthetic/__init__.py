"""Procedurally generated HumanEval/MBPP-style Python tasks with tests, for a tiny code model.

49 task families (arithmetic, conditionals, strings, lists, dicts, loops, recursion; see
``families.py``). A task is a family + a combination of semantic constants (``k = 3``,
``op = ">"``, ...) + a surface form (function and argument names, one of several phrasings and
solution styles) + 3-5 asserts whose inputs are chosen so that the canonical solution is told
apart from every neighbouring constant combination and from a constant function.

Splits (fixed, independent of the seed):
  * train: the non-held-out families x their training combinations;
  * test: six whole held-out families (never in train) + the seen families' held-out
    combinations (a quarter of each family's grid, chosen by a stable hash).
The seed only picks surface forms and inputs, so every seed's train split avoids the test
combinations. Generation is deterministic and prefix-stable: ``load_split(s, n)`` is the first
``n`` tasks of ``load_split(s, n + m)``.

    python -c "from diffucode.data.synthetic import load_split; t = load_split('test')[0]; print(t['prompt'] + t['canonical_solution'] + t['test'])"

Task dicts follow the HumanEval layout plus ``test_list`` (standalone MBPP-style asserts that
call ``entry_point`` by name), ``family`` and ``question`` (an MBPP-style instruction).
"""

from __future__ import annotations

import functools
import random
from typing import Literal

from diffucode.data.synthetic._core import Family, render_body, render_task, split_combos
from diffucode.data.synthetic.families import ALL_FAMILIES

__all__ = [
    "FAMILIES", "Family", "DEFAULT_SIZES", "generate_tasks", "load_split", "sft_examples", "full_function",
    "held_out_families", "split_combos", "render_body", "split_summary",
]

FAMILIES: dict[str, Family] = {f.name: f for f in ALL_FAMILIES}
DEFAULT_SIZES = {"train": 5000, "test": 200}
HELD_OUT_FAMILY_SHARE = (2, 5)  # of the test split: 2 in every 5 tasks come from a held-out family
_MAX_RETRIES = 20


def held_out_families() -> list[str]:
    return [f.name for f in ALL_FAMILIES if f.held_out]


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _family_for(group: list[Family], j: int, seed: int, tag: str) -> Family:
    # Balanced and prefix-stable: every len(group) consecutive draws use each family once,
    # in an order shuffled per round.
    rnd, pos = divmod(j, len(group))
    order = random.Random(f"{seed}/{tag}/round/{rnd}").sample(group, len(group))
    return order[pos]


@functools.lru_cache(maxsize=4)
def _generate(split: str, n: int, seed: int) -> tuple:
    seen_fams = [f for f in ALL_FAMILIES if not f.held_out]
    held_fams = [f for f in ALL_FAMILIES if f.held_out]
    combos = {f.name: split_combos(f)[0 if split == "train" else 1] for f in ALL_FAMILIES}
    seen_text: set[str] = set()
    per_family: dict[str, int] = {}
    out = []
    n_held = 0
    for i in range(n):
        if split == "train":
            fam = _family_for(seen_fams, i, seed, "train")
        else:
            # i -> held-out family slot when the running share of held-out slots is below target
            num, den = HELD_OUT_FAMILY_SHARE
            held_slot = (i + 1) * num // den > n_held
            if held_slot:
                fam = _family_for(held_fams, n_held, seed, "test/held")
                n_held += 1
            else:
                fam = _family_for(seen_fams, i - n_held, seed, "test/seen")
        idx = per_family.get(fam.name, 0)
        for attempt in range(_MAX_RETRIES):
            rng = random.Random(f"{seed}/{split}/{i}/{attempt}")
            combo = rng.choice(combos[fam.name])
            r = render_task(fam, combo, rng, idx)
            key = r.task["prompt"] + r.task["canonical_solution"]
            if key not in seen_text:
                break
        seen_text.add(key)
        per_family[fam.name] = idx + 1
        out.append(r)
    return tuple(out)


def generate_tasks(split: Literal["train", "test"] = "train", n: int | None = None, seed: int = 0,
                   with_meta: bool = False) -> list[dict]:
    """``n`` tasks of ``split`` (default ``DEFAULT_SIZES[split]``), deterministic in ``seed``.

    ``with_meta=True`` adds ``task["meta"] = {"params", "fn", "args", "body_style", "signature"}``
    (the semantic constants and surface form; used by tests and analysis)."""
    _check_split(split)
    n = DEFAULT_SIZES[split] if n is None else n
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    tasks = []
    for r in _generate(split, n, seed):
        t = dict(r.task, test_list=list(r.task["test_list"]))
        if with_meta:
            t["meta"] = dict(r.meta, params=dict(r.meta["params"]), args=list(r.meta["args"]))
        tasks.append(t)
    return tasks


def load_split(split: Literal["train", "test"], n: int | None = None, seed: int = 0) -> list[dict]:
    """The contract entry point: ``n`` tasks of ``"train"`` or ``"test"`` (default 5000 / 200)."""
    return generate_tasks(split, n, seed)


def full_function(task: dict, docstring: bool = True) -> str:
    """The complete canonical function: prompt + body, or signature + body without the docstring."""
    if docstring:
        return task["prompt"] + task["canonical_solution"]
    signature = task["prompt"].split("\n", 1)[0]
    return signature + "\n" + task["canonical_solution"]


def sft_examples(split: Literal["train", "test"] = "train", n: int | None = None, seed: int = 0,
                 style: Literal["mixed", "completion", "instruct"] = "mixed") -> list[dict]:
    """Supervised pairs ``{"prompt", "response"}`` built from ``load_split(split, n, seed)``.

    completion: prompt = HumanEval prompt (signature + docstring), response = the body.
    instruct:   prompt = the MBPP-style question, response = "```python\\n<function>\\n```".
    mixed:      alternates the two (even indices completion, odd instruct)."""
    if style not in ("mixed", "completion", "instruct"):
        raise ValueError(f"style must be 'mixed', 'completion' or 'instruct', got {style!r}")
    out = []
    for i, t in enumerate(load_split(split, n, seed)):
        s = style if style != "mixed" else ("completion" if i % 2 == 0 else "instruct")
        if s == "completion":
            out.append({"prompt": t["prompt"], "response": t["canonical_solution"]})
        else:
            code = full_function(t, docstring=False).rstrip("\n")
            out.append({"prompt": t["question"], "response": f"```python\n{code}\n```"})
    return out


def split_summary() -> dict:
    """Counts of families and constant combinations per split (for reports)."""
    fams = {"train": 0, "test": 0}
    combos = {"train": 0, "test": 0}
    for f in ALL_FAMILIES:
        tr, te = split_combos(f)
        fams["train"] += bool(tr)
        fams["test"] += bool(te)
        combos["train"] += len(tr)
        combos["test"] += len(te)
    return {"families": len(ALL_FAMILIES), "held_out_families": held_out_families(),
            "families_per_split": fams, "combos_per_split": combos}
