"""`diffucode analyze`: AR-ness sweeps, the entropy sink, and a step-by-step replay page.

    diffucode analyze arness --tiny --benchmark humaneval --limit 2 --temperatures 0.2,1.0 \
        --max-new-tokens 16 --no-pass-at-1 --output runs/arness_tiny
    diffucode analyze sink --tiny --benchmark humaneval --limit 4 --max-new-tokens 32 --output runs/sink_tiny
    diffucode analyze replay --tiny --prompt "def add(a, b):" --max-new-tokens 16 --output runs/replay.html

Outputs:
* ``arness``: ``DIR/arness.json`` (one point per (alg, temperature): AR-ness@k mean/var/std,
  a bootstrap interval over prompts, the per-prompt values, the mean of each decoding seed
  (``--seeds``) and their spread, pass@1; and ``differences``: each temperature against the
  first listed, a paired bootstrap over prompts), ``DIR/arness_vs_temperature.png``, ``DIR/arness_by_alg.png`` (several algs),
  ``DIR/config.yaml`` (the resolved sweep config), ``DIR/completions.jsonl`` with
  ``--save-completions``.
* ``sink``: ``DIR/sink.json`` (mean/std confidence and entropy per position, a summary)
  and ``DIR/confidence.png`` (the L-shaped curve).
* ``replay``: the HTML page, plus a decode-order heat map PNG next to it (``--heatmap``).

The model is ``--model PATH`` (any checkpoint ``diffucode.models.load_model`` reads; default:
the bundled model when this install has one) or ``--tiny`` (an untrained tiny model, for
smoke runs: its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from diffucode.errors import check_output_dir, check_output_file

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="checkpoint directory or a bundled model (nano, nano-mdm); default: nano")
    g.add_argument("--tiny", action="store_true", help="use an untrained tiny model (smoke runs; results mean nothing)")
    g.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available)")
    g.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="model dtype")
    g.add_argument("--chat", action="store_true", help="wrap prompts in the tokenizer's chat template (instruct models)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    from diffucode.recipes.model_flags import add_model_override_flags

    add_model_override_flags(g)


def _add_prompt_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompts")
    g.add_argument("--benchmark", choices=["humaneval", "synthetic"], help="prompt source (default: humaneval)")
    g.add_argument("--prompts-file", help="JSONL file with a \"prompt\" field per line (instead of --benchmark)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N prompts")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffucode analyze",
        description="How a diffusion model writes code: AR-ness, the entropy sink, decode-order pictures.",
        epilog="Run `diffucode analyze <what> --help` for each analysis's options.",
    )
    sub = parser.add_subparsers(dest="what", metavar="{arness,sink,replay}")

    a = sub.add_parser(
        "arness", help="AR-ness@k (and pass@1) vs temperature and remasking rule; JSON + PNGs",
        description="Decode each prompt with one token per step and measure local/global AR-ness@k "
        "for every (alg, temperature); pass@1 too when the prompts have tests. Each mean comes with a 95%% "
        "percentile bootstrap interval over prompts (arness.json keeps the per-prompt values); --seeds "
        "repeats every setting under several decoding seeds (mean and spread across seeds). With two or more "
        "--temperatures, each is compared with the first listed: the difference of the means with a paired "
        "bootstrap interval over prompts, and whether it excludes 0 (larger than the noise).",
    )
    _add_model_args(a)
    _add_prompt_args(a)
    g = a.add_argument_group("sweep (flags override --config and key=value overrides)")
    g.add_argument("--config", help="YAML file with SweepConfig keys")
    g.add_argument("overrides", nargs="*", help="SweepConfig overrides as key=value (e.g. top_p=null)")
    g.add_argument("--temperatures", type=_floats, help="comma-separated, e.g. 0.2,0.6,1.0,1.2")
    g.add_argument("--algs", type=_names, help=f"comma-separated remasking rules from {','.join(ALGS)}")
    g.add_argument("--ks", type=_ints, help="comma-separated k values, e.g. 1,2,4,8")
    g.add_argument("--max-new-tokens", type=int, help="completion length (default 256; 256 fits HumanEval/MBPP solutions and is what published diffusion-LM pass@k figures use, while `diffucode generate` defaults to the model's own recommended length (64 for the bundled nano models))")
    g.add_argument("--steps", type=int, help="decoding steps (default: max-new-tokens, one token per step)")
    g.add_argument("--alg-temp", type=float, help="randomness of the position choice (default 0)")
    g.add_argument("--top-p", type=float, help="nucleus sampling (default 0.95)")
    g.add_argument("--top-k", type=int, help="top-k sampling (default off)")
    g.add_argument("--num-samples", type=int, help="completions per prompt and setting (default 1)")
    g.add_argument("--batch-size", type=int, help="prompts per generate() call (default 8)")
    seed = g.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="base seed (default 0)")
    seed.add_argument("--seeds", type=_ints,
                      help="comma-separated decoding seeds, e.g. 0,1,2: every setting is decoded once per seed; "
                      "the output gives each seed's mean and their spread (std over seeds)")
    g.add_argument("--ci-resamples", type=int,
                   help="bootstrap resamples of the prompts for the 95%% intervals (default 1000)")
    g.add_argument("--ci-seed", type=int, help="seed of the bootstrap resampling (default 0)")
    g.add_argument("--ties", choices=["error", "left_to_right", "random"],
                   help="order of tokens revealed at the same step (default random)")
    g.add_argument("--stop-at-eos", action="store_true", default=None, help="let the engine stop early after EOS")
    g.add_argument("--no-pass-at-1", dest="pass_at_1", action="store_false", default=None,
                   help="do not run the tests for pass@1 (they run in the diffucode.execution sandbox)")
    g.add_argument("--timeout", dest="timeout_s", type=float, help="seconds per test program (default 10)")
    g.add_argument("--workers", type=int, help="test programs run in parallel (default: one per core)")
    a.add_argument("--save-completions", action="store_true", help="also write completions.jsonl (text + order)")
    a.add_argument("--output", required=True, help="output directory")

    s = sub.add_parser(
        "sink", help="first-step confidence over completion positions (the L-shaped curve); JSON + PNG",
        description="Prompt clean, completion fully masked: one forward pass per prompt; the max softmax "
        "probability at each completion position, averaged over prompts.",
    )
    _add_model_args(s)
    _add_prompt_args(s)
    s.add_argument("--prompt", action="append", help="a prompt text (repeatable; instead of --benchmark)")
    s.add_argument("--max-new-tokens", type=int, default=256, help="completion length L (default 256, as arness and eval)")
    s.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default 8)")
    s.add_argument("--per-prompt", action="store_true", help="also store every prompt's curve in sink.json")
    s.add_argument("--output", required=True, help="output directory")

    r = sub.add_parser(
        "replay", help="an HTML page replaying one completion step by step (+ a decode-order PNG)",
        description="Decode one prompt and write a self-contained HTML page (play/pause, step slider) "
        "and a heat map of the completion coloured by reveal step.",
    )
    _add_model_args(r)
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the prompt text")
    src.add_argument("--prompt-file", help="a file holding the prompt text")
    r.add_argument("--alg", default="entropy", choices=ALGS, help="remasking rule (default entropy)")
    r.add_argument("--temperature", type=float, default=0.2, help="sampling temperature (default 0.2)")
    r.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling (default 0.95)")
    r.add_argument("--alg-temp", type=float, default=0.0, help="randomness of the position choice (default 0)")
    r.add_argument("--max-new-tokens", type=int, default=128, help="completion length (default 128)")
    r.add_argument("--steps", type=int, default=None, help="decoding steps (default: max-new-tokens)")
    r.add_argument("--block-len", type=int, default=None, help="semi-autoregressive block length (default none)")
    r.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    r.add_argument("--keep-special", action="store_true", help="show all positions, EOS/pad included")
    r.add_argument("--heatmap", help="decode-order PNG path (default: OUTPUT with .png; 'none' to skip)")
    r.add_argument("--output", required=True, help="HTML file to write")
    return parser


def _load_model(args: argparse.Namespace):
    from diffucode.errors import resolve_device

    device = resolve_device(args.device)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tiny:
        if args.model:
            raise SystemExit("diffucode analyze: give --model or --tiny, not both")
        from diffucode.models import build_tiny_model

        model, tok = build_tiny_model()
        model.to(device)
        return model, tok, "tiny (untrained)"
    from diffucode.bundled import resolve_model_path
    from diffucode.models import default_model_path, load_model

    path = resolve_model_path(args.model) if args.model else default_model_path()
    if path is None:
        raise SystemExit("diffucode analyze: no --model given and this install has no bundled model (try --tiny)")
    from diffucode.recipes.model_flags import model_overrides

    model, tok = load_model(path, dtype=args.dtype, device=device, **model_overrides(args))
    return model, tok, str(args.model or path)


def _tasks(args: argparse.Namespace) -> list[dict]:
    from diffucode.analysis.prompts import load_prompts

    if args.prompts_file is None and args.benchmark is None:
        args.benchmark = "humaneval"
    return load_prompts(args.benchmark, args.prompts_file, args.limit)


def _need_engine() -> None:
    try:
        from diffucode.sampling import GenerationConfig, generate  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"diffucode analyze: the decoding engine (diffucode.sampling.generate) is not available: {e}")


def _run_arness(args: argparse.Namespace) -> int:
    from diffucode.analysis.plots import plot_arness_by_alg, plot_arness_vs_temperature
    from diffucode.analysis.sweep import SweepConfig, arness_sweep
    from diffucode.config import ConfigError, load_config, save_config

    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    flags = {k: v for k, v in vars(args).items() if k in fields and k != "chat" and v is not None}
    if args.chat:
        flags["chat"] = True
    try:
        cfg = load_config(SweepConfig, args.config, args.overrides)
        cfg = dataclasses.replace(cfg, **flags)  # re-runs the checks in __post_init__
    except (ConfigError, ValueError) as e:
        print(f"diffucode analyze arness: {e}", file=sys.stderr)
        return 2
    _need_engine()
    tasks = _tasks(args)
    check_output_dir(args.output, "--output")
    model, tok, model_name = _load_model(args)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    result = arness_sweep(model, tok, tasks, cfg, progress=True, keep_completions=args.save_completions)
    result["model"] = model_name
    result["prompts"] = args.prompts_file or args.benchmark
    result["num_prompts"] = len(tasks)
    if args.save_completions:
        with (out_dir / "completions.jsonl").open("w", encoding="utf-8") as f:
            for p in result["points"]:
                for c in p.pop("completions"):
                    f.write(json.dumps({"alg": p["alg"], "temperature": p["temperature"], **c}) + "\n")
    (out_dir / "arness.json").write_text(json.dumps(result, indent=2))
    title = f"AR-ness vs temperature ({Path(model_name).name}, {len(tasks)} prompts)"
    plot_arness_vs_temperature(result["points"], out_dir / "arness_vs_temperature.png", title=title)
    if len(cfg.algs) > 1:
        plot_arness_by_alg(result["points"], out_dir / "arness_by_alg.png", k=cfg.ks[0])
    _print_points(result, cfg)
    if result["pass_at_1_note"]:
        print(result["pass_at_1_note"])
    print(f"wrote {out_dir / 'arness.json'} and plots in {out_dir}")
    return 0


def _print_points(result: dict, cfg) -> None:
    """One line per point (first k: mean [interval], seed spread) and one per temperature difference."""
    k = str(cfg.ks[0])
    conf = f"{100 * cfg.ci_confidence:g}%"
    n = result["num_prompts"]
    print(f"AR-ness@{k}: mean [{conf} bootstrap interval over {n} prompts]"
          + (f"; seed sd = std of the {len(cfg.decode_seeds)} seeds' means" if len(cfg.decode_seeds) > 1 else ""))

    def cell(s: dict) -> str:
        sd = "" if s["seed_std"] is None else f" seed sd {s['seed_std']:.3f}"
        return f"{s['mean']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]{sd}"

    for p in result["points"]:
        pa = "" if p["pass@1"] is None else f"  pass@1 {p['pass@1']:.3f}"
        print(f"{p['alg']:>14} T={p['temperature']:<5g} local@{k} {cell(p['local'][k])}  "
              f"global@{k} {cell(p['global'][k])}{pa}")
    for d in result["differences"]:
        if str(d["k"]) != k:
            continue
        verdict = "larger than the noise" if d["larger_than_noise"] else "within noise"
        print(f"{d['alg']:>14} T={d['temperature']:g} - T={d['baseline_temperature']:g}: {d['kind']}@{k} "
              f"{d['difference']:+.3f} [{conf} paired bootstrap {d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] {verdict}")


def _run_sink(args: argparse.Namespace) -> int:
    from diffucode.analysis.plots import plot_confidence_curve
    from diffucode.analysis.sink import entropy_sink

    if args.prompt and (args.benchmark or args.prompts_file):
        print("diffucode analyze sink: give --prompt or --benchmark/--prompts-file, not both", file=sys.stderr)
        return 2
    try:
        prompts = args.prompt or [t["prompt"] for t in _tasks(args)]
    except ValueError as e:
        print(f"diffucode analyze sink: {e}", file=sys.stderr)
        return 2
    check_output_dir(args.output, "--output")
    model, tok, model_name = _load_model(args)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = entropy_sink(model, tok, prompts, gen_len=args.max_new_tokens, batch_size=args.batch_size,
                       chat=args.chat, progress=True)
    data = res.to_dict(per_prompt=args.per_prompt)
    data["config"] = {
        "model": model_name, "prompts": "command line" if args.prompt else (args.prompts_file or args.benchmark),
        "limit": args.limit, "max_new_tokens": args.max_new_tokens, "chat": args.chat,
    }
    (out_dir / "sink.json").write_text(json.dumps(data, indent=2))
    plot_confidence_curve(res.confidence_mean, out_dir / "confidence.png", std=res.confidence_std,
                          title=f"Entropy sink: step-1 confidence ({Path(model_name).name}, {res.num_prompts} prompts)")
    s = res.summary()
    print(f"first-position confidence {s['confidence_first']:.3f}, next {s['head'] - 1} mean "
          f"{s['confidence_head_mean']:.3f} (incl. first), rest {s['confidence_tail_mean']:.3f}, "
          f"head/tail {s['head_to_tail']:.2f}")
    print(f"wrote {out_dir / 'sink.json'} and {out_dir / 'confidence.png'}")
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from diffucode.analysis.plots import plot_decode_order
    from diffucode.analysis.replay import write_replay_html

    if args.prompt_file:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            print(f"diffucode analyze replay: --prompt-file {args.prompt_file}: {e.strerror}", file=sys.stderr)
            return 2
    else:
        prompt = args.prompt
    if not prompt:
        print("diffucode analyze replay: the prompt is empty", file=sys.stderr)
        return 2
    _need_engine()
    from diffucode.analysis.trace import trace_completion
    from diffucode.sampling import GenerationConfig

    try:
        # --keep-special shows every position, so the engine must not trim after the end token
        gcfg = GenerationConfig(
            max_new_tokens=args.max_new_tokens, steps=args.steps or args.max_new_tokens, alg=args.alg,
            alg_temp=args.alg_temp, temperature=args.temperature, top_p=args.top_p, block_len=args.block_len,
            seed=args.seed, stop_at_eos=not args.keep_special,
        )
    except ValueError as e:  # ConfigError names the flag
        print(f"diffucode analyze replay: {e}", file=sys.stderr)
        return 2
    check_output_file(args.output, "--output")
    if args.heatmap and args.heatmap.lower() != "none":
        check_output_file(args.heatmap, "--heatmap")
    model, tok, model_name = _load_model(args)
    trace = trace_completion(model, tok, prompt, gcfg, chat=args.chat, keep_special=args.keep_special)
    if not trace.tokens:
        print("diffucode analyze replay: the completion is empty (EOS first); try --keep-special", file=sys.stderr)
        return 1
    meta = {"model": model_name, "alg": args.alg, "temperature": args.temperature, "top_p": args.top_p,
            "alg_temp": args.alg_temp, "max_new_tokens": args.max_new_tokens, "nfe": trace.nfe, "seed": args.seed}
    out = write_replay_html(args.output, trace.tokens, trace.steps, prompt=trace.prompt,
                            title=f"diffucode replay: {Path(model_name).name}, {args.alg}, T={args.temperature:g}",
                            meta=meta)
    print(f"wrote {out}")
    if (args.heatmap or "").lower() != "none":
        png = Path(args.heatmap) if args.heatmap else out.with_suffix(".png")
        plot_decode_order(trace.tokens, trace.steps, png, prompt=trace.prompt)
        print(f"wrote {png}")
    return 0


def main(argv: list[str]) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.what is None:
        parser.print_help()
        return 2
    if getattr(args, "limit", None) is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    run = {"arness": _run_arness, "sink": _run_sink, "replay": _run_replay}[args.what]
    return run(args)
