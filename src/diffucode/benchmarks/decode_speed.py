"""Decoding speed, side by side on the same weights and prompts (JSON on stdout; run by hand).

    diffucode bench decode                                                     # bundled model, 128/256/512 x batch 1/8
    diffucode bench decode --random --lengths 128 --batch-sizes 1              # random-weight ~52M model
    diffucode bench decode --model path/to/ckpt --device cuda --dtypes bfloat16
    diffucode bench decode --tiny --hidden 32 --layers 1 --lengths 8 --batch-sizes 1 --repeats 1   # smoke run

Which configurations run depends on the model (a row never asks a model for what it refuses):

- block-causal models (the bundled DiffuCoder-nano, B = 4): the reference (one token per step,
  **no cache**: the whole canvas every step), the exact KV cache at one token per step, confidence
  threshold (with its schedule floor) with 0 / 1 / 3 blocks decoded ahead (``lookahead``),
  ``B`` tokens per step (every block in one forward), and SDAR-style larger blocks (B = 16 / 32,
  attention reinterpreted) with threshold decoding, whole or in sub-blocks (``sub_block_len``:
  their floor is one forward per sub-block);
- bidirectional models (Dream / DiffuCoder / LLaDA layout): the reference (Dream ``entropy``, one
  token per step, no cache), threshold decoding in blocks of 32 with no cache, the prefix cache and
  the dual cache (refreshed at every block start, or every 2nd / 4th block: ``refresh_every``);
- random weights (``--random``, ``--tiny``): no prediction is confident, so thresholds are replaced
  by fixed schedules (k tokens per step), and the same weights are also run as block-causal
  models with B = 4 / 16 / 32 (the SDAR-style larger blocks, also in sub-blocks) and as a
  bidirectional model (dual cache, refreshed every block or every 4th): those rows measure speed only.

``--compile`` adds ``torch.compile`` twins of a few rows; their compilation (the warm-up and the
first full-length run) is reported apart from their tokens/s.

Every row also gets ``autoregressive``: transformers' ``generate`` on the same backbone (causal
attention, KV cache, greedy, exactly L tokens), and its **floor**: the same configuration with
every block decoded in one forward (steps = number of blocks), i.e. the fewest forwards of the
shapes it needs; ``vs_floor`` is how far the row is from it.

Measured in ONE run, interleaved (repeat r: every configuration once, in turn), process CPU time
(``time.process_time``, all threads) and wall time; the fastest repeat is kept. Every configuration
decodes exactly L tokens per prompt (no end-of-text stop), so tokens/s compares like with like.
The uncached reference is long (L forwards of the whole canvas): with ``--reference-steps N`` only
its first N forwards are timed and the time is scaled to its full forward count (every uncached
forward runs the same shape); its tokens then come from the exact-cache one-token run, which the
test suite proves token-identical (block-causal), or token agreement is not reported (bidirectional).
Token agreement ("agree") is the fraction of completion tokens equal to the reference's.
``--markdown`` also prints the table on stderr.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import sys
import time

from diffucode.benchmarks import add_output_arg, check_output, emit

# torch is imported inside the functions so that ``--help`` answers at once

FALLBACK_PROMPTS = [
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    'def is_palindrome(s):\n    """Return True if s reads the same backwards."""\n',
    'def fib(n):\n    """Return the n-th Fibonacci number."""\n',
    'def count_vowels(s):\n    """Count the vowels in s."""\n',
    'def max_of(xs):\n    """Return the largest element of xs."""\n',
    'def flatten(xss):\n    """Flatten a list of lists."""\n',
    'def word_count(text):\n    """Return a dict of word frequencies."""\n',
    'def reverse_words(s):\n    """Reverse the order of words in s."""\n',
]


def _prompts(n: int) -> tuple[list[str], str]:
    try:
        from diffucode.data.synthetic import load_split

        tasks = load_split("test", n=n, seed=0)
        if len(tasks) >= n:
            return [t["prompt"] for t in tasks[:n]], "synthetic/test"
    except Exception:  # the data package is optional for this benchmark
        pass
    reps = (n + len(FALLBACK_PROMPTS) - 1) // len(FALLBACK_PROMPTS)
    return (FALLBACK_PROMPTS * reps)[:n], "builtin"


def _int_list(flag: str, text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag}: expected comma-separated integers, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{flag}: expected positive integers, got {text!r}")
    return vals


def _load(args, dtype):
    import torch

    from diffucode.models import build_tiny_model, default_model_path, load_model

    if args.random or args.tiny:
        from diffucode.models import load_tokenizer

        tok = None
        base = default_model_path()
        if args.random and base is not None:
            tok = load_tokenizer(base)  # the bundled 4096-token BPE: a realistic vocabulary size
        model, tok = build_tiny_model(
            attention="block_causal", block_len=4, shift=False, hidden_size=args.hidden, num_layers=args.layers,
            num_heads=max(1, args.hidden // 64), num_kv_heads=max(1, args.hidden // 256),
            intermediate_size=int(args.hidden * 3.5) // 64 * 64 or 2 * args.hidden, max_seq_len=4096,
            tokenizer=tok, seed=0)
        model.to(device=args.device, dtype=dtype)
        info = {"source": f"build_tiny_model(hidden_size={args.hidden}, num_layers={args.layers}), random weights",
                "trained": False}
    else:
        path = args.model or default_model_path()
        model, tok = load_model(path, device=args.device, dtype=dtype)
        info = {"source": str(path), "trained": True}
    info.update(
        attention=model.attention, block_len=model.block_len, shift=model.shift,
        params=sum(p.numel() for p in model.parameters()),
        vocab=model.backbone.get_input_embeddings().num_embeddings,
        dtype=str(model.dtype).replace("torch.", ""),
    )
    return model, tok, info


class _Enough(Exception):
    """Raised by the forward counter once the timed part of a truncated reference run is over."""


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device):
    _sync(device)
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.process_time() - c0, time.perf_counter() - w0


def _run_engine(model, batches, kw, device):
    """Decode every batch; returns (completions, nfe, cpu s, wall s)."""
    from diffucode.sampling import GenerationConfig, generate

    cfg = GenerationConfig(stop_at_eos=False, **kw)
    outs, nfe, cpu, wall = [], 0, 0.0, 0.0
    for ids, amask in batches:
        out, c, w = _timed(lambda: generate(model, ids, amask, cfg), device)
        nfe += out.nfe
        cpu += c
        wall += w
        outs.extend(out.sequences[:, ids.shape[1]:].cpu())
    return outs, nfe, cpu, wall


def _run_truncated(model, batches, kw, device, n):
    """Time the first ``n`` forwards (and the steps between them) of each batch's decode."""
    from diffucode.sampling import GenerationConfig, generate

    cfg = GenerationConfig(stop_at_eos=False, **kw)
    count = [0]

    def counter(module, args):
        count[0] += 1
        if count[0] > n:
            raise _Enough

    hook = model.backbone.register_forward_pre_hook(counter)
    cpu = wall = 0.0
    try:
        for ids, amask in batches:
            count[0] = 0
            _sync(device)
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                generate(model, ids, amask, cfg)
            except _Enough:
                pass
            _sync(device)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
    finally:
        hook.remove()
    return cpu, wall


def _run_ar(model, tok, batches, L, device):
    outs, cpu, wall = [], 0.0, 0.0
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for ids, amask in batches:
        seq, c, w = _timed(lambda: model.backbone.generate(
            ids, attention_mask=amask, max_new_tokens=L, min_new_tokens=L, do_sample=False, use_cache=True,
            pad_token_id=pad), device)
        cpu += c
        wall += w
        outs.extend(seq[:, ids.shape[1]:].cpu())
    return outs, cpu, wall


def _agree(outs, ref):
    import torch

    same = sum(int((a == b).sum()) for a, b in zip(outs, ref))
    return round(same / sum(a.numel() for a in ref), 4)


class _Row:
    def __init__(self, name, model, kw, kind="engine", blocks_of=None, trained=True):
        self.name, self.model, self.kw, self.kind = name, model, kw, kind
        self.blocks_of = blocks_of  # block length of its decoding structure (for the floor run)
        self.trained = trained
        self.compiled = False  # a torch.compile twin (--compile)
        self.compile_cost = None  # (cpu s, wall s) of its warm-up and of its first full-length run


def _compile_pick(r: _Row) -> bool:
    """The rows that get a torch.compile twin with --compile (a few: compiling is slow on a CPU)."""
    return r.kind == "engine" and ("1 token/step" in r.name or "every block in one forward" in r.name
                                   or r.name.endswith(", dual cache") or ", dual cache, 8 tokens/step" in r.name)


def _compiled_twin(model, cache: dict):
    """A copy of ``model`` whose backbone is ``torch.compile(dynamic=True)`` (one per source model)."""
    if id(model) not in cache:
        cache[id(model)] = copy.deepcopy(model).compile_backbone(dynamic=True)
    return cache[id(model)]


def _plan(model, args, trained: bool, L: int) -> list[_Row]:
    """The configurations that fit this model (see the module docstring)."""
    thr = args.threshold
    rows = []
    if model.attention == "block_causal":
        Bk = int(model.block_len)
        rows.append(_Row(f"reference: entropy, 1 token/step, no cache (B={Bk})", model,
                         dict(alg="entropy", block_cache=False), kind="reference", blocks_of=Bk))
        rows.append(_Row(f"exact KV cache, entropy, 1 token/step (B={Bk})", model, dict(alg="entropy"), blocks_of=Bk))
        if trained:
            for la in (0, 1, 3):
                rows.append(_Row(f"exact cache, threshold {thr}" + (f", lookahead {la}" if la else "") + f" (B={Bk})",
                                 model, dict(alg="entropy", threshold=thr, lookahead=la), blocks_of=Bk))
        rows.append(_Row(f"exact cache, {Bk} tokens/step = every block in one forward (B={Bk})", model,
                         dict(alg="entropy", steps=L // Bk), blocks_of=Bk))
        if trained:  # SDAR-style larger blocks on the trained B = 4 model: a different attention pattern (see agree)
            for B2, sub in ((16, None), (16, 4), (32, 8)):
                if L % B2 == 0 and B2 > Bk and B2 % Bk == 0:
                    rows.append(_Row(f"B={B2} blocks (attention reinterpreted), "
                                     + (f"sub-blocks of {sub}, " if sub else "") + f"threshold {thr}, exact cache",
                                     model, dict(alg="entropy", threshold=thr, block_len=B2, sub_block_len=sub),
                                     blocks_of=sub or B2))
        if not trained:  # the same random weights as SDAR-style larger blocks (speed only)
            for B2, k in ((16, 8), (16, 16), (32, 16), (32, 32)):
                if L % B2 == 0:
                    m2 = copy.deepcopy(model).set_attention("block_causal", block_len=B2)
                    rows.append(_Row(f"block-causal B={B2} (reinterpreted), exact cache, {k} tokens/step", m2,
                                     dict(alg="entropy", steps=L // k),
                                     blocks_of=B2))
            for B2, sub in ((16, 4), (32, 8)):  # sub-blocks: a whole block per forward, a sub-block revealed
                if L % B2 == 0:
                    rows.append(_Row(f"B={B2} blocks, sub-blocks of {sub}, {sub} tokens/step, exact cache", model,
                                     dict(alg="entropy", block_len=B2, sub_block_len=sub, steps=L // sub),
                                     blocks_of=sub))
            bi = copy.deepcopy(model).set_attention("bidirectional")
            if L % 32 == 0:
                for cache, k in (("dual", 4), ("dual", 8), ("prefix", 8)):
                    rows.append(_Row(f"bidirectional (reinterpreted), blocks of 32, {cache} cache, {k} tokens/step", bi,
                                     dict(alg="entropy", block_len=32, cache=cache, steps=L // k), blocks_of=32))
                if L // 32 >= 4:
                    rows.append(_Row("bidirectional (reinterpreted), blocks of 32, dual cache refreshed every 4 blocks, "
                                     "8 tokens/step", bi, dict(alg="entropy", block_len=32, cache="dual", refresh_every=4,
                                                               steps=L // 8), blocks_of=32))
    elif model.attention == "bidirectional":
        rows.append(_Row("reference: entropy, 1 token/step, no cache", model, dict(alg="entropy"), kind="reference",
                         blocks_of=L))
        bl = 32 if L % 32 == 0 else L
        if trained:
            for cache in ("none", "prefix", "dual"):
                rows.append(_Row(f"threshold {thr}, blocks of {bl}, {cache} cache", model,
                                 dict(alg="entropy", threshold=thr, block_len=bl, cache=cache), blocks_of=bl))
            for k in (2, 4):
                if L // bl >= k:
                    rows.append(_Row(f"threshold {thr}, blocks of {bl}, dual cache refreshed every {k} blocks", model,
                                     dict(alg="entropy", threshold=thr, block_len=bl, cache="dual", refresh_every=k),
                                     blocks_of=bl))
            rows.append(_Row(f"threshold {thr}, blocks of {bl}, prefix cache, lookahead 1", model,
                             dict(alg="entropy", threshold=thr, block_len=bl, cache="prefix", lookahead=1), blocks_of=bl))
        else:
            for cache, k in (("none", 8), ("prefix", 8), ("dual", 4), ("dual", 8)):
                rows.append(_Row(f"blocks of {bl}, {cache} cache, {k} tokens/step", model,
                                 dict(alg="entropy", block_len=bl, cache=cache, steps=L // k), blocks_of=bl))
            if L // bl >= 4:
                rows.append(_Row(f"blocks of {bl}, dual cache refreshed every 4 blocks, 8 tokens/step", model,
                                 dict(alg="entropy", block_len=bl, cache="dual", refresh_every=4, steps=L // 8),
                                 blocks_of=bl))
    else:  # causal: the engine is AR decoding
        rows.append(_Row("engine, causal model (blocks of 1), KV cache", model, dict(alg="entropy"), kind="reference",
                         blocks_of=1))
    return rows


def _floor_kw(row: _Row, L: int) -> dict:
    """Every block of the row's structure in one forward: no threshold, steps = number of blocks."""
    kw = {k: v for k, v in row.kw.items() if k not in ("threshold", "lookahead", "steps")}
    kw["steps"] = max(1, L // row.blocks_of)  # with sub-blocks (blocks_of = the sub-block): one forward each
    return kw


def _fmt_table(report) -> str:
    lines = []
    for shape in report["shapes"]:
        lines.append(f"\nL = {shape['max_new_tokens']}, batch {shape['batch_size']} ({report['model']['source']}, "
                     f"{report['model']['dtype']})")
        lines.append("| configuration | tokens/s (CPU) | NFE / prompt | tokens / NFE | vs reference | vs AR | vs floor | agree |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in shape["rows"]:
            agree = "-" if r.get("agree") is None else f"{100 * r['agree']:.1f}%"
            lines.append(f"| {r['config']} | {r['tokens_per_cpu_s']:.0f} | {r['nfe_per_prompt']:g} | "
                         f"{r['tokens_per_nfe']:.2f} | {r['vs_reference']:.2f}x | {r['vs_autoregressive']:.2f}x | "
                         f"{r['vs_floor']:.2f}x | {agree} |")
        for r in shape["rows"]:
            if r.get("compile_cost"):
                c = r["compile_cost"]
                lines.append(f"compile cost of '{r['config']}': warm-up {c['warmup_cpu_s']} CPU-s "
                             f"({c['warmup_wall_s']} s wall), first full run {c['first_full_run_cpu_s']} CPU-s "
                             f"({c['first_full_run_wall_s']} s wall)")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model directory or name (default: the bundled model)")
    p.add_argument("--random", action="store_true",
                   help="random weights, block-causal B=4, --hidden/--layers (default 512 x 14: ~52M parameters "
                        "with the bundled 4096-token vocabulary)")
    p.add_argument("--tiny", action="store_true", help="random weights with the tiny test tokenizer (smoke runs)")
    p.add_argument("--hidden", type=int, default=512, help="random model width")
    p.add_argument("--layers", type=int, default=14, help="random model depth")
    p.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available, else cpu)")
    p.add_argument("--dtypes", default="float32",
                   help="comma-separated weight dtypes, each a set of rows in the same interleaved run "
                        "(float32, bfloat16)")
    p.add_argument("--lengths", default="128,256,512", help="completion lengths L (comma-separated)")
    p.add_argument("--batch-sizes", default="1,8", help="prompts decoded together (comma-separated); batch b "
                                                        "decodes b prompts in one call")
    p.add_argument("--threshold", type=float, default=0.9, help="confidence threshold of the threshold rows")
    p.add_argument("--reference-steps", type=int, default=32,
                   help="time only the first N forwards of the uncached reference and scale to its forward count "
                        "(0: run it all)")
    p.add_argument("--no-floor", action="store_true", help="skip the floor runs")
    p.add_argument("--compile", action="store_true",
                   help="also run torch.compile(backbone, dynamic=True) twins of a few rows (one token/step, one "
                        "forward per block, dual cache) in the same interleaved run; their compile time (the warm-up "
                        "and the first full-length run) is reported separately, not in their tokens/s")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the fastest is kept")
    p.add_argument("--markdown", action="store_true", help="also print the tables (markdown) on stderr")
    add_output_arg(p)
    args = p.parse_args(argv)
    try:
        lengths = _int_list("--lengths", args.lengths)
        batch_sizes = _int_list("--batch-sizes", args.batch_sizes)
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in ("float32", "bfloat16", "float16")]
    if bad or not dtypes:
        p.error(f"--dtypes: unknown {bad or args.dtypes!r}; choose from float32, bfloat16, float16")
    if sum([bool(args.model), args.random, args.tiny]) > 1:
        p.error("--model, --random and --tiny exclude each other")
    for flag in ("hidden", "layers", "threads", "repeats"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.reference_steps < 0:
        p.error(f"--reference-steps must be >= 0, got {args.reference_steps}")
    if not 0 < args.threshold <= 1:
        p.error(f"--threshold must be in (0, 1], got {args.threshold}")
    check_output(p, args.output)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)

    from diffucode.sampling.remasking import dream_schedule

    compiled = {}  # id(source model) -> its torch.compile twin (--compile)
    loaded = []
    for dt in dtypes:
        model, tok, info = _load(args, getattr(torch, dt))
        loaded.append((dt, model, tok, info))
    trained = loaded[0][3]["trained"]
    for dt, model, _, _ in loaded:
        if model.attention == "block_causal":
            bad_L = [L for L in lengths if L % int(model.block_len)]
            if bad_L:
                p.error(f"--lengths: {bad_L} not a multiple of the model's block length {model.block_len}")
    tok = loaded[0][2]
    tok.padding_side = "left"
    texts, prompt_source = _prompts(max(batch_sizes))

    shapes = []
    for L in lengths:
        for bsz in batch_sizes:
            enc = tok(texts[:bsz], return_tensors="pt", padding=True)
            batches = [(enc.input_ids.to(args.device), enc.attention_mask.to(args.device))]
            rows = []
            for dt, model, _, _ in loaded:
                for r in _plan(model, args, trained, L):
                    r.dtype = dt
                    rows.append(r)
            if args.compile:
                twins = []
                for r in rows:
                    if _compile_pick(r):
                        t = _Row(r.name + " [torch.compile]", _compiled_twin(r.model, compiled), r.kw, kind=r.kind,
                                 blocks_of=r.blocks_of, trained=r.trained)
                        t.dtype, t.compiled = r.dtype, True
                        twins.append(t)
                rows.extend(twins)
            # warm-up: a short run of every path (first-call allocations, kernel choice)
            for r in rows:
                Lw = r.blocks_of if r.blocks_of and r.blocks_of <= L else 8
                kw = {k: v for k, v in r.kw.items() if k != "steps"}
                if "block_len" in kw:
                    kw["block_len"] = min(kw["block_len"], Lw)
                _, _, wc, ww = _run_engine(r.model, batches,
                                           dict(kw, max_new_tokens=max(Lw, 4) if "block_len" not in kw else Lw),
                                           args.device)
                if r.compiled:  # compiling happens here and at the first run of each new shape: one full run now
                    _, _, fc, fw = _run_engine(r.model, batches, dict(r.kw, max_new_tokens=L), args.device)
                    r.compile_cost = {"warmup_cpu_s": round(wc, 2), "warmup_wall_s": round(ww, 2),
                                      "first_full_run_cpu_s": round(fc, 2), "first_full_run_wall_s": round(fw, 2)}
            for dt, model, tk, _ in loaded:
                _run_ar(model, tk, batches, 2, args.device)

            res = {id(r): None for r in rows}
            floors = {id(r): None for r in rows}
            ar = {}
            ref_nfe = {}
            for _ in range(args.repeats):
                for r in rows:
                    kw = dict(r.kw, max_new_tokens=L)
                    if r.kind == "reference" and args.reference_steps:
                        cpu, wall = _run_truncated(r.model, batches, kw, args.device, args.reference_steps)
                        got = ("truncated", cpu, wall)
                    else:
                        outs, nfe, cpu, wall = _run_engine(r.model, batches, kw, args.device)
                        got = (outs, nfe, cpu, wall)
                    prev = res[id(r)]
                    if prev is None or got[-2] < prev[-2]:
                        res[id(r)] = got
                    if not args.no_floor and r.kind != "reference" and not r.compiled:
                        fkw = dict(_floor_kw(r, L), max_new_tokens=L)
                        _, fnfe, fcpu, fwall = _run_engine(r.model, batches, fkw, args.device)
                        if floors[id(r)] is None or fcpu < floors[id(r)][1]:
                            floors[id(r)] = (fnfe, fcpu, fwall)
                for dt, model, tk, _ in loaded:
                    outs, cpu, wall = _run_ar(model, tk, batches, L, args.device)
                    if dt not in ar or cpu < ar[dt][1]:
                        ar[dt] = (outs, cpu, wall)

            n_tok = L * bsz
            out_rows = []
            for dt in dtypes:
                drows = [r for r in rows if r.dtype == dt]
                ref = drows[0]
                exact1 = next((r for r in drows if r.name.startswith("exact KV cache, entropy, 1 token")), None)
                got = res[id(ref)]
                if got[0] == "truncated":
                    # its full forward count: the exact-cache one-token run's (identical decoding, block-causal),
                    # else the Dream schedule's (a step that reveals nothing reuses the logits)
                    if exact1 is not None:
                        full_nfe = res[id(exact1)][1] // len(batches)
                    elif ref.model.attention == "bidirectional":
                        full_nfe = L - sum(1 for c in dream_schedule(L, L) if c == 0)
                    else:
                        full_nfe = L
                    n = min(args.reference_steps, full_nfe)
                    scale = full_nfe / n
                    ref_cpu, ref_wall = got[1] * scale, got[2] * scale
                    ref_outs = res[id(exact1)][0] if exact1 is not None else None
                    ref_note = (f"first {n} of its {full_nfe} forwards timed, scaled"
                                + ("; tokens from the exact-cache 1-token run (identical)" if exact1 is not None else ""))
                    ref_nfe_pp = full_nfe
                else:
                    ref_outs, nfe, ref_cpu, ref_wall = got
                    ref_note = "run in full"
                    ref_nfe_pp = nfe / len(batches)
                ar_outs, ar_cpu, ar_wall = ar[dt]
                ar_row = {"config": "autoregressive: transformers generate, KV cache (same backbone, causal)",
                          "dtype": dt, "cpu_s": round(ar_cpu, 4), "wall_s": round(ar_wall, 4),
                          "tokens_per_cpu_s": round(n_tok / ar_cpu, 2), "tokens_per_wall_s": round(n_tok / ar_wall, 2),
                          "nfe_per_prompt": L, "tokens_per_nfe": 1.0}
                for r in drows:
                    if r is ref:
                        cpu, wall, nfe_pp, outs, note = ref_cpu, ref_wall, ref_nfe_pp, ref_outs, ref_note
                    else:
                        outs, nfe, cpu, wall = res[id(r)]
                        nfe_pp, note = nfe / len(batches), None
                    row = {"config": r.name, "dtype": dt, "settings": r.kw, "cpu_s": round(cpu, 4),
                           "wall_s": round(wall, 4), "tokens_per_cpu_s": round(n_tok / cpu, 2),
                           "tokens_per_wall_s": round(n_tok / wall, 2), "nfe_per_prompt": round(nfe_pp, 2),
                           "tokens_per_nfe": round(L / nfe_pp, 3), "vs_reference": round(ref_cpu / cpu, 3),
                           "vs_reference_wall": round(ref_wall / wall, 3), "vs_autoregressive": round(ar_cpu / cpu, 3),
                           "vs_autoregressive_wall": round(ar_wall / wall, 3),
                           "agree": _agree(outs, ref_outs) if (outs is not None and ref_outs is not None) else None}
                    if note:
                        row["note"] = note
                    if r.compiled:
                        row["compile_cost"] = r.compile_cost  # not in its tokens/s (fastest repeat after these)
                    fl = floors.get(id(r))
                    if r is ref and not args.no_floor:
                        # the reference's floor: its uncached structure with one forward per block
                        fkw = dict(_floor_kw(r, L), max_new_tokens=L)
                        _, fnfe, fcpu, fwall = _run_engine(r.model, batches, fkw, args.device)
                        fl = (fnfe, fcpu, fwall)
                    if fl is not None:
                        row.update(floor_nfe_per_prompt=round(fl[0] / len(batches), 2), floor_cpu_s=round(fl[1], 4),
                                   vs_floor=round(cpu / fl[1], 3))
                    else:
                        row["vs_floor"] = float("nan")
                    out_rows.append(row)
                ar_row.update(vs_reference=round(ref_cpu / ar_cpu, 3), vs_autoregressive=1.0,
                              vs_reference_wall=round(ref_wall / ar_wall, 3), vs_autoregressive_wall=1.0,
                              vs_floor=1.0, agree=_agree(ar_outs, ref_outs) if ref_outs is not None else None,
                              note="its own floor: L forwards of one token")
                out_rows.append(ar_row)
            shapes.append({"max_new_tokens": L, "batch_size": bsz, "rows": out_rows})
            print(f"[bench decode] L={L} batch={bsz} done", file=sys.stderr, flush=True)

    info = loaded[0][3]
    report = {
        "benchmark": "decode_speed",
        "machine": {"device": args.device, "cpu_threads": args.threads, "torch": torch.__version__,
                    "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "gpu": torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else None},
        "model": {**info, "dtypes": dtypes},
        "prompts": {"source": prompt_source, "note": "batch b decodes the first b prompts in one call"},
        "timing": (f"one interleaved run, fastest of {args.repeats} repeat(s) after a warm-up; process CPU time "
                   f"(ratios use it) and wall time; exactly L tokens per prompt (no end-of-text stop)"),
        "threshold": args.threshold,
        "shapes": shapes,
    }
    if args.markdown:
        print(_fmt_table(report), file=sys.stderr)
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
