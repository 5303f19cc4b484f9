"""Machinery behind the synthetic task generator: the :class:`Family` record, template
rendering, test-input selection and the deterministic train/test split of parameter combinations.

The families themselves live in ``families.py``; the public API is in ``__init__.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import textwrap
from dataclasses import dataclass, field
from string import Template
from typing import Any, Callable, Mapping, Sequence

# A value that is either fixed, or chosen by the family's variant key (``Family.vkey``).
PerVariant = Any  # tuple[str, ...] | dict[str, tuple[str, ...]]

TEST_COMBO_FRACTION = 0.25  # share of each seen family's parameter combinations held out for test
MAX_PROMPT_CHARS_FOR_TWO_EXAMPLES = 360


@dataclass(frozen=True)
class Family:
    """One kind of task, e.g. "keep the numbers greater than k".

    A task is a family + one parameter combination (``combos``: the semantic constants, e.g.
    ``{"op": ">", "k": 3}``) + a surface form (function name, argument names, phrasing, solution
    style) + test inputs. Text fields are ``string.Template`` strings: ``$a0``, ``$a1``... are
    the argument names, ``$fn`` the function name, other ``$names`` come from the combination and
    from ``derive(combo)``. ``func_names``/``arg_names``/``phrasings``/``bodies`` may be a dict
    keyed by ``combo[vkey]`` when the variants need different wording or code.
    """

    name: str
    category: str
    combos: tuple[Mapping[str, Any], ...]
    func_names: PerVariant
    arg_names: PerVariant  # tuples of names, one per positional argument
    phrasings: PerVariant  # infinitive phrases: "return the ...", used in docstring and question
    bodies: PerVariant  # function bodies, 4-space indented, ending in "\n"
    ref: Callable[..., Any]  # ref(combo, *args) -> expected output (independent of the body text)
    inputs: Callable[[random.Random, Mapping[str, Any]], tuple]  # one random argument tuple
    derive: Callable[[Mapping[str, Any]], dict] = field(default=lambda p: {})
    vkey: str = "v"
    held_out: bool = False  # True: the whole family appears only in the test split

    def pick(self, attr: str, combo: Mapping[str, Any]) -> tuple:
        value = getattr(self, attr)
        if isinstance(value, dict):
            value = value[combo[self.vkey]]
        return tuple(value)

    def neighbours(self, combo: Mapping[str, Any]) -> list[dict]:
        """Other combinations with the same keys that differ in exactly one value: the near-miss
        wrong solutions the test asserts must tell apart."""
        out = []
        for other in self.combos:
            if set(other) != set(combo):
                continue
            if sum(other[k] != combo[k] for k in combo) == 1:
                out.append(dict(other))
        return out


def grid(**axes: Sequence[Any]) -> tuple[dict, ...]:
    """All combinations of the given axes, in a fixed order."""
    keys = list(axes)
    return tuple(dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys)))


def combo_key(combo: Mapping[str, Any]) -> str:
    return json.dumps(dict(combo), sort_keys=True)


def _stable_hash(text: str) -> int:
    # hashlib, not hash(): str hashes change with PYTHONHASHSEED.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def split_combos(fam: Family) -> tuple[list[dict], list[dict]]:
    """(train combos, test combos) of a family. Fixed by the family and combo names, never by the
    seed, so every seed's train split avoids the same held-out combinations."""
    combos = [dict(c) for c in fam.combos]
    if fam.held_out:
        return [], combos
    order = sorted(combos, key=lambda c: _stable_hash(f"{fam.name}|{combo_key(c)}"))
    n_test = max(1, round(TEST_COMBO_FRACTION * len(combos)))
    n_test = min(n_test, len(combos) - 1)  # keep at least one combination for training
    test_keys = {combo_key(c) for c in order[:n_test]}
    train = [c for c in combos if combo_key(c) not in test_keys]
    test = [c for c in combos if combo_key(c) in test_keys]
    return train, test


def _sub(text: str, ctx: Mapping[str, Any]) -> str:
    # Two passes so derived fields may themselves mention $a0, $fn, ...
    return Template(Template(text).safe_substitute(ctx)).substitute(ctx)


def _call(fn: str, args: tuple) -> str:
    return f"{fn}({', '.join(repr(a) for a in args)})"


def _choose_inputs(fam: Family, combo: Mapping[str, Any], rng: random.Random, n_asserts: int):
    """Pick ``n_asserts`` distinct inputs whose outputs tell ``combo`` apart from every neighbour
    combination and are not all equal (so a constant function fails). Greedy set cover over a
    pool of random inputs; a fresh pool is tried if the first cannot cover every neighbour."""
    neighbours = fam.neighbours(combo)
    best = None
    for _attempt in range(6):
        pool: dict[str, tuple] = {}
        for _ in range(24):
            args = fam.inputs(rng, combo)
            pool.setdefault(repr(args), args)
        cands = list(pool.values())
        outs = [fam.ref(combo, *a) for a in cands]
        # which neighbours each candidate input distinguishes
        beats = [
            {j for j, nb in enumerate(neighbours) if fam.ref(nb, *a) != o} for a, o in zip(cands, outs)
        ]
        chosen: list[int] = []
        need = set(range(len(neighbours)))
        while need and len(chosen) < n_asserts:
            i = max((i for i in range(len(cands)) if i not in chosen), key=lambda i: len(beats[i] & need), default=None)
            if i is None or not beats[i] & need:
                break
            chosen.append(i)
            need -= beats[i]
        # fill up, preferring outputs not seen yet (a constant function must fail)
        for prefer_new in (True, False):
            for i in range(len(cands)):
                if len(chosen) >= n_asserts:
                    break
                if i in chosen:
                    continue
                if prefer_new and any(outs[i] == outs[j] for j in chosen):
                    continue
                chosen.append(i)
        distinct_outputs = len({repr(outs[i]) for i in chosen})
        score = (len(need) == 0, distinct_outputs > 1, -len(need))
        result = _examples_first([(cands[i], outs[i]) for i in chosen], rng)
        if best is None or score > best[0]:
            best = (score, result)
        if score[0] and score[1]:
            break
    return best[1]


def _examples_first(cases: list, rng: random.Random) -> list:
    """Shuffle, then move to the front the cases worth showing as examples: first one whose output
    differs from its inputs (``f('box') == 'box'`` explains little), then one with another output."""
    cases = list(cases)
    rng.shuffle(cases)

    def informative(case) -> bool:
        args, out = case
        return all(repr(out) != repr(a) for a in args)

    first = next((c for c in cases if informative(c)), cases[0])
    rest = [c for c in cases if c is not first]
    second = next((c for c in rest if informative(c) and repr(c[1]) != repr(first[1])),
                  next((c for c in rest if repr(c[1]) != repr(first[1])), rest[0] if rest else None))
    head = [first] + ([second] if second is not None else [])
    return head + [c for c in rest if c is not second]


@dataclass
class Rendered:
    task: dict
    meta: dict


def render_task(fam: Family, combo: Mapping[str, Any], rng: random.Random, index: int) -> Rendered:
    """Draw a surface form and test inputs for ``combo`` and render the task dict."""
    combo = dict(combo)
    arg_names = rng.choice(fam.pick("arg_names", combo))
    ctx: dict[str, Any] = dict(combo)
    ctx.update(fam.derive(combo))
    ctx.update({f"a{i}": a for i, a in enumerate(arg_names)})
    fn = _sub(rng.choice(fam.pick("func_names", combo)), ctx)
    arg_names = tuple(_sub(a, ctx) for a in arg_names)
    ctx.update({f"a{i}": a for i, a in enumerate(arg_names)})
    ctx["fn"] = fn
    phrasing_i = rng.randrange(len(fam.pick("phrasings", combo)))
    body_i = rng.randrange(len(fam.pick("bodies", combo)))
    phrase = _sub(fam.pick("phrasings", combo)[phrasing_i], ctx)
    body = _sub(fam.pick("bodies", combo)[body_i], ctx)

    n_asserts = rng.randint(3, 5)
    cases = _choose_inputs(fam, combo, rng, n_asserts)
    n_examples = rng.randint(1, 2)

    sig = f"def {fn}({', '.join(arg_names)}):"
    desc = phrase[0].upper() + phrase[1:] + "."
    doc_lines = textwrap.wrap(desc, width=76, break_long_words=False, break_on_hyphens=False)
    doc = "\n    ".join(doc_lines)
    examples = "".join(f"    >>> {_call(fn, a)}\n    {o!r}\n" for a, o in cases[:n_examples])
    prompt = f'{sig}\n    """{doc}\n\n{examples}    """\n'
    if n_examples > 1 and len(prompt) > MAX_PROMPT_CHARS_FOR_TWO_EXAMPLES:
        # keep prompt + solution within ~200 tokens of a 4k BPE: long prompts show one example
        examples = "".join(f"    >>> {_call(fn, a)}\n    {o!r}\n" for a, o in cases[:1])
        prompt = f'{sig}\n    """{doc}\n\n{examples}    """\n'
    test = "def check(candidate):\n" + "".join(f"    assert {_call('candidate', a)} == {o!r}\n" for a, o in cases)
    test_list = [f"assert {_call(fn, a)} == {o!r}" for a, o in cases]
    ex_args, ex_out = cases[0]
    question = rng.choice(QUESTION_TEMPLATES).format(sig=f"{fn}({', '.join(arg_names)})", phrase=phrase)
    question += f" For example, `{_call(fn, ex_args)}` should return `{ex_out!r}`."
    task = {
        "task_id": f"synthetic/{fam.name}/{index}",
        "prompt": prompt,
        "canonical_solution": body,
        "test": test,
        "entry_point": fn,
        "test_list": test_list,
        "family": fam.name,
        "question": question,
    }
    meta = {"params": combo, "fn": fn, "args": list(arg_names), "body_style": body_i, "signature": sig}
    return Rendered(task, meta)


QUESTION_TEMPLATES = (
    "Write a function `{sig}` to {phrase}.",
    "Write a Python function `{sig}` to {phrase}.",
    "Implement `{sig}`: {phrase}.",
    "Define a function `{sig}` that does the following: {phrase}.",
)


def render_body(fam: Family, combo: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The canonical body for ``combo`` in the surface form recorded in ``meta`` (used by tests
    to build near-miss wrong solutions from a neighbouring combination)."""
    combo = dict(combo)
    ctx: dict[str, Any] = dict(combo)
    ctx.update(fam.derive(combo))
    ctx.update({f"a{i}": a for i, a in enumerate(meta["args"])})
    ctx["fn"] = meta["fn"]
    bodies = fam.pick("bodies", combo)
    return _sub(bodies[min(meta["body_style"], len(bodies) - 1)], ctx)
