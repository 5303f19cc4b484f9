"""HumanEval-Infilling built from the bundled HumanEval: the holes, the fill rules, decoding with
and without the suffix, and scoring through the ordinary sandbox path."""

import json

import pytest
import torch

from diffucode.evaluation.infilling import (
    INFILL_BENCHMARKS, fill_from_text, hole_length, iter_infill, load_infill, middle_of, plan_batches,
)
from diffucode.evaluation.results import load_samples
from diffucode.evaluation.scoring import score_samples
from diffucode.evaluation.tasks import load_benchmark
from diffucode.models import build_tiny_model
from diffucode.sampling import GenerationConfig, generate


@pytest.fixture(scope="module")
def infill_tasks():
    return {name: load_benchmark(name) for name in INFILL_BENCHMARKS}


def test_counts_match_the_original_benchmark(infill_tasks):
    # Bavarian et al. 2022: 1033 single-line, 5815 multi-line, 1640 random-span tasks
    assert [len(infill_tasks[n]) for n in INFILL_BENCHMARKS] == [1033, 5815, 1640]
    for tasks in infill_tasks.values():
        assert len({t.task_id for t in tasks}) == len(tasks)
        assert len({t.task_id.split("/")[2] for t in tasks}) == 164  # every problem has holes


def test_holes_are_deterministic_and_cut_the_canonical_solution(infill_tasks):
    again = load_infill("humaneval_infill_span")
    assert [(t.task_id, t.prompt, t.suffix) for t in again] == \
        [(t.task_id, t.prompt, t.suffix) for t in infill_tasks["humaneval_infill_span"]]
    for name, tasks in infill_tasks.items():
        for t in tasks:
            mid = middle_of(t)
            assert t.prompt + mid + t.suffix == t.reference and mid.strip()
            if name != "humaneval_infill_span":  # a line-level hole: "\n" + whole lines, suffix at a line start
                assert mid.startswith("\n") and not mid.endswith("\n") and t.suffix.startswith("\n")
    single = [t for t in infill_tasks["humaneval_infill_single"] if t.task_id.startswith("SingleLine/HumanEval/0/")]
    assert sorted(middle_of(t).strip() for t in single) == sorted(
        line.strip() for line in single[0].reference.split("def has_close_elements")[1].split('"""')[-1].split("\n")
        if line.strip())


def test_limit_is_a_spread_sample(infill_tasks):
    first = infill_tasks["humaneval_infill_single"][:100]
    assert len({t.task_id.split("/")[2] for t in first}) > 60  # not 100 holes of the first few problems


def test_fill_is_cut_to_the_holes_line_count(infill_tasks):
    t = next(t for t in infill_tasks["humaneval_infill_multi"] if middle_of(t).count("\n") == 2)
    assert fill_from_text(t, "\n    a = 1\n    b = 2\n    c = 3\nprint(a)") == "\n    a = 1\n    b = 2"
    s = infill_tasks["humaneval_infill_single"][0]
    assert fill_from_text(s, "\n    x = 1\n    y = 2") == "\n    x = 1"
    r = infill_tasks["humaneval_infill_span"][0]
    assert fill_from_text(r, "a\nb\nc") == "a\nb\nc"  # character spans are not cut


def test_canonical_fills_pass_and_wrong_fills_fail(infill_tasks):
    """The ordinary scoring path (sandbox, the problem's tests) on prefix + fill + suffix."""
    picks = [infill_tasks[n][k] for n in INFILL_BENCHMARKS for k in range(3)]
    samples = [{"task_id": t.task_id, "solution": t.prompt + middle_of(t) + t.suffix} for t in picks]
    samples += [{"task_id": t.task_id, "solution": t.prompt + "\n    return None" + t.suffix, "sample_idx": 1}
                for t in picks]
    out = score_samples(picks, samples, timeout=20)
    assert [o["passed"] for o in out[:len(picks)]] == [True] * len(picks), out[:len(picks)]
    assert not any(o["passed"] for o in out[len(picks):])


def test_completion_only_samples_get_the_suffix(tmp_path, infill_tasks):
    t = infill_tasks["humaneval_infill_single"][0]
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"task_id": t.task_id, "completion": middle_of(t)}) + "\n")
    assert load_samples(p, {t.task_id: t})[0]["solution"] == t.reference


def test_batches_group_equal_shapes_in_task_order():
    plan = plan_batches([(8, 3), (8, 5), (8, 3), (8, 3)], n_samples=2, batch_size=3)
    # full batches as they fill up, then the partial ones in order of their first row
    assert plan == [[(0, 0), (0, 1), (2, 0)], [(2, 1), (3, 0), (3, 1)], [(1, 0), (1, 1)]]


@pytest.fixture(scope="module")
def tiny_mdm():
    torch.set_num_threads(1)
    return build_tiny_model(attention="bidirectional", shift=True, hidden_size=32, seed=0)


def _short(tok, tasks, n):
    """Holes whose prompt fits the tiny model's context with room to spare (its toy BPE is verbose)
    and whose middle is short (the true-length mode decodes one token per step)."""
    import itertools

    fits = (t for t in tasks if len(tok(t.prompt + t.suffix).input_ids) < 600
            and len(tok(middle_of(t), add_special_tokens=False).input_ids) <= 12)
    return list(itertools.islice(fits, n))


def _alone(model, tok, task, L, suffix: bool):
    ids = torch.tensor([tok(task.prompt).input_ids])
    sfx = torch.tensor([tok(task.suffix, add_special_tokens=False).input_ids]) if suffix else None
    out = generate(model, ids, config=GenerationConfig(max_new_tokens=L, seed=0), suffix_ids=sfx)
    row = out.completions[0].tolist()
    ends = {tok.eos_token_id, tok.pad_token_id}
    cut = next((k for k, x in enumerate(row) if x in ends), len(row))
    return fill_from_text(task, tok.decode(row[:cut], skip_special_tokens=True))


@pytest.mark.parametrize("mode", ["budget", "true"])
def test_iter_infill_decodes_with_the_suffix_on_bidirectional_models(tiny_mdm, infill_tasks, mode):
    model, tok = tiny_mdm
    tasks = _short(tok, infill_tasks["humaneval_infill_multi"], 4)
    got = {}
    for batch in iter_infill(model, tok, tasks, GenerationConfig(max_new_tokens=8, seed=0), batch_size=4,
                             length_mode=mode, progress=False):
        assert not batch.failed
        for (i, _), text in zip(batch.rows, batch.texts):
            got[i] = text
    for i, t in enumerate(tasks):
        L = hole_length(tok, t, mode, 8)
        assert got[i] == _alone(model, tok, t, L, suffix=True)
    if mode == "true":
        assert hole_length(tok, tasks[0], "true", 8) == len(tok(middle_of(tasks[0]), add_special_tokens=False).input_ids)


def test_prefix_only_ignores_the_suffix(tiny_mdm, infill_tasks):
    model, tok = tiny_mdm
    tasks = _short(tok, infill_tasks["humaneval_infill_span"], 3)
    with_sfx, without = {}, {}
    for prefix_only, into in ((False, with_sfx), (True, without)):
        for batch in iter_infill(model, tok, tasks, GenerationConfig(max_new_tokens=8, seed=0), batch_size=1,
                                 prefix_only=prefix_only, progress=False):
            into.update({i: x for (i, _), x in zip(batch.rows, batch.texts)})
    for i, t in enumerate(tasks):
        assert without[i] == _alone(model, tok, t, 8, suffix=False)
        assert with_sfx[i] == _alone(model, tok, t, 8, suffix=True)
    assert with_sfx != without  # the suffix really reached the model


def test_eval_command_runs_an_infilling_benchmark(tmp_path):
    from diffucode.recipes.evaluate import main

    out = tmp_path / "run"
    assert main(["--benchmark", "humaneval-infill-single", "--tiny", "--limit", "2", "--max-new-tokens", "4",
                 "--output", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["benchmark"] == "humaneval_infill_single" and res["n_tasks"] == 2
    assert res["generation"]["infill_mode"] == "suffix" and res["generation"]["infill_length"] == "budget"
    tasks = {t.task_id: t for t in load_benchmark("humaneval_infill_single", limit=2)}
    for line in (out / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        t = tasks[rec["task_id"]]
        assert rec["solution"] == t.prompt + rec["completion"] + t.suffix
        assert rec["completion"].count("\n") <= 1  # one line at most: the hole was one line


@pytest.mark.parametrize("argv,msg", [
    (["--benchmark", "humaneval_infill_span", "--chat"], "--chat"),
    (["--benchmark", "humaneval", "--prefix-only"], "apply only to the humaneval_infill_"),
    (["--benchmark", "humaneval_infill_multi", "--infill-length", "true", "--block-len", "4"], "--block-len"),
])
def test_eval_refuses_infilling_flag_mistakes(tmp_path, capsys, argv, msg):
    from diffucode.recipes.evaluate import main

    assert main([*argv, "--tiny", "--output", str(tmp_path / "x"), "--no-progress"]) == 2
    assert msg in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_ar():
    torch.set_num_threads(1)
    return build_tiny_model(attention="causal", shift=True, hidden_size=32, seed=1)


def test_an_autoregressive_model_fills_from_the_prefix_alone(tiny_ar, infill_tasks):
    """A causal (AR) model decodes each hole from its prefix, left to right, one token per step;
    line-level holes keep as many lines as were removed."""
    model, tok = tiny_ar
    tasks = _short(tok, infill_tasks["humaneval_infill_multi"], 3)
    got = {}
    for batch in iter_infill(model, tok, tasks, GenerationConfig(max_new_tokens=12, seed=0), batch_size=3,
                             progress=False):
        assert not batch.failed and batch.nfe == 12  # one forward per token (its KV cache)
        got.update({i: x for (i, _), x in zip(batch.rows, batch.texts)})
    for i, t in enumerate(tasks):
        assert got[i] == _alone(model, tok, t, 12, suffix=False)
        assert got[i].count("\n") <= middle_of(t).count("\n")
    assert any(got.values())  # the comparison is not of empty fills


def test_eval_runs_infilling_on_an_autoregressive_checkpoint(tmp_path, tiny_ar):
    from diffucode.recipes.evaluate import main

    model, tok = tiny_ar
    ckpt = tmp_path / "tiny-ar"
    model.save_pretrained(ckpt, tokenizer=tok)
    out = tmp_path / "run"
    assert main(["--benchmark", "humaneval-infill-multi", "--model", str(ckpt), "--limit", "2",
                 "--max-new-tokens", "8", "--output", str(out), "--no-progress"]) == 0
    gen = json.loads((out / "results.json").read_text())["generation"]
    assert gen["infill_mode"] == "prefix_only" and gen["model_attention"] == "causal"
    tasks = {t.task_id: t for t in load_benchmark("humaneval_infill_multi", limit=2)}
    decoded = [r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines()) if "gen_error" not in r]
    assert decoded  # (the tiny model's verbose BPE makes some prompts too long for its context)
    for rec in decoded:
        t = tasks[rec["task_id"]]
        assert rec["solution"] == t.prompt + rec["completion"] + t.suffix
        assert rec["completion"].count("\n") <= middle_of(t).count("\n")
