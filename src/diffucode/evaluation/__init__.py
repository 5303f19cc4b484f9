"""Code benchmarks: tasks, prompts and answer extraction, sandboxed scoring, pass@k, run files.

    diffucode eval --benchmark humaneval --tiny --limit 3 --max-new-tokens 32 --output /tmp/he

    from diffucode.evaluation import load_benchmark, score_samples, summarize
    tasks = load_benchmark("humaneval", limit=5)
    outcomes = score_samples(tasks, [{"task_id": t.task_id, "solution": t.reference} for t in tasks])
    summarize(tasks, outcomes, ks=[1])["pass@k"]          # {'pass@1': 1.0}

Modules: ``tasks`` (HumanEval, MBPP full/sanitized, HumanEval+/MBPP+ in EvalPlus format,
synthetic), ``prompts`` (base / instruct prompts and the extraction rules), ``generation``
(batched decoding with the engine), ``scoring`` (one sandboxed program per sample, EvalPlus
reference outputs), ``passk`` (exact unbiased pass@k), ``results`` (samples.jsonl,
executions.jsonl, results.json, the summary table). Sandboxing is :mod:`diffucode.execution`.
"""

from diffucode.evaluation.generation import generate_completions, iter_generate  # torch only when called
from diffucode.evaluation.passk import mean_pass_at_k, pass_at_k, pass_at_k_exact, reportable_ks
from diffucode.evaluation.prompts import (
    RESPONSE_PREFIX,
    STOP_SEQUENCES,
    chat_message,
    extract_base_completion,
    extract_code_block,
    solution_from_base,
    solution_from_chat,
)
from diffucode.evaluation.results import format_summary, load_samples, read_jsonl, summarize
from diffucode.evaluation.scoring import IOLimits, ReferenceOutputs, sample_job, score_samples
from diffucode.evaluation.tasks import BENCHMARKS, DataError, Task, load_benchmark


__all__ = [
    "BENCHMARKS", "DataError", "IOLimits", "RESPONSE_PREFIX", "ReferenceOutputs", "STOP_SEQUENCES", "Task",
    "chat_message", "extract_base_completion", "extract_code_block", "format_summary", "generate_completions", "iter_generate",
    "load_benchmark", "load_samples", "mean_pass_at_k", "pass_at_k", "pass_at_k_exact", "read_jsonl",
    "reportable_ks", "sample_job", "score_samples", "solution_from_base", "solution_from_chat", "summarize",
]
