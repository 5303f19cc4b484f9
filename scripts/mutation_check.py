"""Apply known training/RL leaks to a temporary copy of the source and check the default test
suite catches each one (issue 14: tests that can see leaks).

    python scripts/mutation_check.py            # every mutation, its relevant tests; JSON summary
    python scripts/mutation_check.py --list     # the mutations
    python scripts/mutation_check.py --only a_clean_half_logits

Each mutation is a textual edit of one file (the pattern must occur exactly once, so a refactor
that moves the code makes this script fail loudly rather than pass vacuously). The mutated copy of
``src/`` goes first on PYTHONPATH; the relevant default-suite tests run in a subprocess; a
mutation counts as caught when pytest reports failed tests (exit status 1). The unmutated source
is run on the same tests first: they must pass, or nothing is concluded. Exit status 0 when every
mutation is caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (file under src/, old text, new text, tests to run, what it breaks)
MUTATIONS = {
    "a_clean_half_logits": (
        "diffucode/training/objectives.py",
        "logit_positions=torch.arange(L, device=prep.x0.device)",
        "logit_positions=torch.arange(L, 2 * L, device=prep.x0.device)",
        ["tests/training/test_loss_values.py"],
        "block objective reads the clean half's logits (the answers) instead of the noisy half's",
    ),
    "b_noisy_half_unmasked": (
        "diffucode/training/objectives.py",
        "        x_t = torch.where(masked, torch.full_like(x0, self.mask_token_id), x0)\n        inputs = block_diffusion_inputs",
        "        x_t = x0\n        inputs = block_diffusion_inputs",
        ["tests/training/test_loss_values.py", "tests/training/test_objectives.py"],
        "block objective feeds the noisy half unmasked",
    ),
    "b2_mdm_input_unmasked": (
        "diffucode/training/objectives.py",
        'inputs: dict[str, Any] = {"input_ids": x_t,',
        'inputs: dict[str, Any] = {"input_ids": x0,',
        ["tests/training/test_loss_values.py", "tests/training/test_objectives.py"],
        "MDM objective feeds the clean sequence",
    ),
    "c_kl_removed_from_loss": (
        "diffucode/rl/loss.py",
        "per_token = per_token + beta * kl",
        "per_token = per_token",
        ["tests/rl/test_loss_advantages.py", "tests/rl/test_grpo_values.py"],
        "the KL term is dropped from the GRPO loss (still logged)",
    ),
    "c2_recipe_passes_no_reference": (
        "diffucode/recipes/rl.py",
        "ref_logp=None if ref is None else ref_logps[p][sl], beta=cfg.grpo.beta,",
        "ref_logp=None, beta=cfg.grpo.beta,",
        ["tests/rl/test_grpo_values.py"],
        "the RL recipe computes the loss without the reference (no KL term)",
    ),
    "d_old_policy_from_reference": (
        "diffucode/recipes/rl.py",
        "old_logps[p][sl] = logp.detach()",
        "old_logps[p][sl] = ref_logps[p][sl] if ref is not None else logp.detach()",
        ["tests/rl/test_grpo_values.py"],
        "the old-policy estimate is computed with the reference model",
    ),
    "e_forced_mask_literal_weight": (
        "diffucode/training/objectives.py",
        'if self.cfg.block_weight == "inclusion":',
        "if False:",
        ["tests/training/test_block_schedule_math.py", "tests/training/test_loss_values.py"],
        "block loss weighted 1/u_blk (biased by the forced mask)",
    ),
    "f_warmup_cap_ignored": (
        "diffucode/training/objectives.py",
        "            if cap < 1.0:\n",
        "            if False:\n",
        ["tests/training/test_block_schedule_math.py"],
        "block warm-up overridden by the 1/B floor and the forced mask",
    ),
}


def _pytest(src: Path, tests: list[str], timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", "-m", "not slow", *tests]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timeout", time.time() - t0
    lines = [x for x in p.stdout.splitlines() if x.strip()]
    failed = [x for x in lines if x.startswith("FAILED ")]  # the test that caught it
    summary = failed[0][:160] if failed else (f"{lines[-1].count('.')} passed" if lines else p.stderr.strip()[-200:])
    return p.returncode, summary, time.time() - t0


def _which_diffucode(src: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", "import diffucode; print(diffucode.__file__)"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run only these mutations")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    args = ap.parse_args(argv)
    if args.list:
        for name, m in MUTATIONS.items():
            print(f"{name}: {m[4]} ({m[0]}; tests {' '.join(m[3])})")
        return 0
    names = args.only or list(MUTATIONS)
    unknown = [n for n in names if n not in MUTATIONS]
    if unknown:
        ap.error(f"unknown mutation(s) {unknown}; see --list")
    results, clean_runs = [], {}
    with tempfile.TemporaryDirectory(prefix="diffucode-mutants-") as tmp:
        for name in names:
            rel, old, new, tests, what = MUTATIONS[name]
            src = Path(tmp) / name / "src"
            shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            path = src / rel
            text = path.read_text()
            if text.count(old) != 1:
                results.append({"mutation": name, "caught": False, "error": f"pattern found {text.count(old)} times in {rel}"})
                continue
            if not _which_diffucode(src).startswith(str(src)):
                raise SystemExit("the mutated copy is not the diffucode that gets imported (check the editable install)")
            key = tuple(tests)
            if key not in clean_runs:  # the unmutated source must pass the same tests
                clean_runs[key] = _pytest(ROOT / "src", tests, args.timeout)
            rc0, line0, _ = clean_runs[key]
            path.write_text(text.replace(old, new))
            rc, line, secs = _pytest(src, tests, args.timeout)
            results.append({"mutation": name, "what": what, "file": rel, "tests": tests,
                            "clean_rc": rc0, "clean": line0, "mutant_rc": rc, "mutant": line,
                            "caught": rc0 == 0 and rc == 1, "seconds": round(secs, 1)})
            print(f"{name:32s} caught={results[-1]['caught']!s:5s} clean: {line0} | mutant: {line}", file=sys.stderr)
    print(json.dumps({"caught": sum(r["caught"] for r in results), "total": len(results), "results": results}, indent=1))
    return 0 if all(r["caught"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
