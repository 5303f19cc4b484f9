"""`diffucode generate`: decode a completion (or fill a hole) with a diffusion model.

    diffucode generate --tiny --max-new-tokens 16 "def add(a, b):"
    diffucode generate --model runs/mdm --prompt-file prompt.py --threshold 0.9 --block-len 32 --cache dual
    echo "def f(x):" | diffucode generate --json
    diffucode generate --prompt "def f(x):\n    " --suffix "\n    return y\n" --max-new-tokens 16   # infilling
    diffucode generate --show-steps "def fib(n):"            # watch the canvas fill in

Text in, text out: the prompt is tokenized here (with the chat template under --chat), the
engine (`diffucode.sampling.generate`) works on ids, and the completion is decoded, cut at the
first end token and at any --stop string. Without --model the bundled model is used; when
there is none, an UNTRAINED tiny model is built (and a warning says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffucode.recipes.model_flags import add_model_override_flags, model_overrides
from diffucode.sampling.algorithms import ALGORITHMS
from diffucode.sampling.presets import PRESETS, describe, preset_fields

UNTRAINED_WARNING = "warning: UNTRAINED tiny model: output is random (pass --model PATH for a trained one)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffucode generate",
        description="Decode a completion with a diffusion language model (any unmasking algorithm, "
                    "semi-autoregressive blocks, parallel decoding, KV caches, infilling).",
        epilog="The prompt comes from --prompt, --prompt-file, the positional argument or stdin (in that order; give one). "
               "Escapes such as \\n in --prompt / --suffix are taken literally: use $'...' quoting in bash for newlines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.epilog = (p.epilog or "") + " Presets (steps=L: one token per step): " + "; ".join(
        describe(name) for name in PRESETS) + "."
    p.add_argument("prompt_arg", nargs="?", metavar="PROMPT", help="the prompt text")
    src = p.add_argument_group("input")
    src.add_argument("--prompt", help="the prompt text")
    src.add_argument("--prompt-file", type=Path, help="read the prompt from this file")
    src.add_argument("--suffix", help="infilling: text after the hole; the --max-new-tokens masks go between prompt and suffix")
    src.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template (instruct models)")
    src.add_argument("--raw-prompt", action="store_true",
                     help="use the prompt exactly as given (by default a completion prompt whose last line opens a "
                          "block, such as 'def f(x):', gets the newline that starts the body)")

    mdl = p.add_argument_group("model")
    mdl.add_argument("--model", help="model directory, or a bundled model: nano (block diffusion, the default) or nano-mdm "
                                   "(bidirectional: --suffix infilling, --cache prefix/dual)")
    mdl.add_argument("--tiny", action="store_true", help="use an UNTRAINED tiny model (random output; for smoke tests)")
    mdl.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available)")
    mdl.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="weights dtype")
    mdl.add_argument("--compile", action="store_true",
                     help="torch.compile the backbone (dynamic shapes); the first decode pays the compilation "
                          "(minutes on a CPU): see the README's decoding benchmark for what it gains")
    add_model_override_flags(mdl)

    dec = p.add_argument_group("decoding (GenerationConfig fields)")
    dec.add_argument("--preset", choices=list(PRESETS), default=None,
                     help="start from a published configuration (flags given next to it override its fields); "
                          "see the list below and the README table")
    dec.add_argument("--max-new-tokens", type=int, default=None,
                     help="completion length (number of masks); default: the model's recommended length "
                          "(config key diffucode_max_new_tokens; the bundled models: 64, the length they were tuned "
                          "on), else 256, the default of eval / analyze (HumanEval-length solutions)")
    dec.add_argument("--steps", type=int, default=None, help="denoising steps (default: max-new-tokens, one token per step)")
    dec.add_argument("--alg", default="entropy", choices=ALGORITHMS, help="unmasking algorithm")
    dec.add_argument("--alg-temp", type=float, default=0.0, help="randomise which positions are revealed (Dream's alg_temp)")
    dec.add_argument("--temperature", type=float, default=0.0, help="token sampling temperature (0 = greedy)")
    dec.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    dec.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
    dec.add_argument("--block-len", type=int, default=None,
                     help="semi-autoregressive block length; block-causal models: a multiple of their block decodes "
                          "in larger blocks (SDAR-style, block-causal attention over --block-len for this decode)")
    dec.add_argument("--sub-block-len", type=int, default=None,
                     help="decode each block in sub-blocks of this many tokens, left to right (Fast-dLLM v2): a "
                          "forward runs the whole block, only the current sub-block's masks are revealed")
    dec.add_argument("--threshold", type=float, default=None,
                     help="parallel decoding: also reveal every token with probability >= this (a step still reveals at "
                          "least what --steps schedules, so it is never slower than --steps alone)")
    dec.add_argument("--lookahead", type=int, default=0,
                     help="with --threshold: also decode the next N blocks in the same forward passes (more tokens "
                          "per forward; blocks ahead reveal only tokens above the threshold)")
    dec.add_argument("--threshold-floor", default="schedule", choices=["schedule", "one"],
                     help="with --threshold, the least a step reveals: the --steps schedule's count, or one token "
                          "(Fast-dLLM's exact rule; --steps refused)")
    dec.add_argument("--block-schedule", default="masked", choices=["masked", "block"],
                     help="LLaDA-style algorithms: split each block's masked count over its steps (masked: LLaDA, "
                          "Fast-dLLM, Stable-DiffCoder) or the block length (block: SDAR; differs only in a partly "
                          "filled block)")
    dec.add_argument("--cache", default="none", choices=["none", "prefix", "dual"], help="KV cache for bidirectional models (approximate)")
    dec.add_argument("--refresh-every", type=int, default=1, metavar="K",
                     help="--cache dual: full-canvas refresh only at every K-th block; in between, the block just "
                          "completed is re-encoded in the next block's first forward (default 1: every block)")
    dec.add_argument("--no-block-cache", action="store_true", help="block-causal models: recompute everything each step (reference)")
    dec.add_argument("--fastdllm-dream", action="store_true",
                     help="Fast-dLLM's Dream-port rules: with --cache prefix/dual each block's first token comes "
                          "unconditionally from a full-canvas pass and other reveals rank by negative entropy (or "
                          "probability under --threshold); with --cache none and --threshold, at most "
                          "max-new-tokens/steps reveals per step plus carry-over")
    dec.add_argument("--eps", type=float, default=1e-3, help="Dream timestep schedule epsilon")
    dec.add_argument("--seed", type=int, default=None, help="random seed")
    dec.add_argument("-n", "--num-return-sequences", type=int, default=1, help="completions to draw")
    dec.add_argument("--no-stop-at-eos", action="store_true", help="keep decoding/printing past the end-of-text token")
    dec.add_argument("--no-early-exit", action="store_true", help="run every step even after the text is final")
    dec.add_argument("--stop", action="append", default=[], metavar="STR", help="cut the text at this string (repeatable)")

    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print one JSON object: completion, token_ids, order, nfe, seconds (lists when -n > 1)")
    out.add_argument("--echo", action="store_true", help="print the prompt (and suffix) around the completion")
    out.add_argument("--show-steps", action="store_true", help="animate the canvas filling in (plain frames when not a terminal)")
    out.add_argument("--delay", type=float, default=0.05, help="seconds per frame for --show-steps in a terminal")
    return p


def _explicit_flags(argv: list[str]) -> set[str]:
    """The option destinations given on the command line (a second parse with no defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _with_preset(name: str, decoding: dict, explicit: set[str]) -> dict:
    """The preset's fields, except those given as flags; its length unless --max-new-tokens is given."""
    fields = preset_fields(name, decoding["max_new_tokens"] if "max_new_tokens" in explicit else None)
    return {k: v for k, v in fields.items() if k not in explicit}


def complete_block_opener(prompt: str) -> str:
    """Add the newline after a prompt that ends by opening a Python block (``def f(x):``).

    BPE tokenizers of code merge ``:`` + newline + indentation into tokens seen in training; a
    prompt cut just after the colon leaves the model to continue from a token boundary it has rarely
    seen, which derails small models (``diffucode generate "def is_palindrome(s):"``).
    """
    import re

    last = prompt.rsplit("\n", 1)[-1]
    opener = re.fullmatch(r"\s*(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b.*:", last)
    return prompt + "\n" if opener else prompt


def _read_prompt(args, parser) -> str:
    given = [x for x in (args.prompt, args.prompt_file, args.prompt_arg) if x is not None]
    if len(given) > 1:
        parser.error("give the prompt once: --prompt, --prompt-file or a positional PROMPT")
    if args.prompt is not None:
        return args.prompt
    if args.prompt_file is not None:
        if not args.prompt_file.is_file():
            parser.error(f"--prompt-file: no such file: {args.prompt_file}")
        return args.prompt_file.read_text()
    if args.prompt_arg is not None:
        return args.prompt_arg
    try:
        interactive = sys.stdin is None or sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        interactive = True
    if not interactive:
        try:
            return sys.stdin.read()
        except OSError:
            pass
    parser.error("no prompt: pass --prompt TEXT, --prompt-file PATH, a positional PROMPT, or pipe text on stdin")


def _model_path(args):
    """The model directory to load (None: the untrained tiny model), resolved without torch."""
    from diffucode.bundled import bundled_model_path, resolve_model_path

    if args.tiny:
        return None
    if args.model is not None:
        return resolve_model_path(args.model)  # "nano", "nano-mdm" or a directory
    path = bundled_model_path()
    if path is None:
        print("note: no --model given and no bundled model installed", file=sys.stderr)
    return path


def _recommended_length(path) -> int:
    """The model's own completion length (config key diffucode_max_new_tokens), else 256; read from
    config.json without loading anything (a broken file is reported by the loader)."""
    if path is not None:
        try:
            cfg = json.loads((Path(path) / "config.json").read_text())
            n = cfg.get("diffucode_max_new_tokens") if isinstance(cfg, dict) else None
            if isinstance(n, int) and n > 0:
                return n
        except (OSError, ValueError):
            pass
    return 256


def _load(args, path):
    from diffucode.errors import resolve_device

    device = resolve_device(args.device)
    from diffucode.models import build_tiny_model, load_model

    if path is None:
        print(UNTRAINED_WARNING, file=sys.stderr)
        model, tok = build_tiny_model()
        return model.to(device), tok, "tiny-untrained"
    dtype = None if args.dtype == "auto" else args.dtype
    model, tok = load_model(path, dtype=dtype, device=device, **model_overrides(args))
    if args.compile:
        model.compile_backbone()
    return model, tok, str(args.model if args.model is not None else path)


class _Progress:
    """A forward-pass counter on stderr while decoding, only when stderr is a terminal (a hook on
    the model: the engine needs no knowledge of it)."""

    def __init__(self, model, enabled: bool):
        self.bar = self.handle = None
        if not enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(desc="decoding", unit=" forward passes", file=sys.stderr, leave=False, dynamic_ncols=True)
        self.handle = model.register_forward_hook(self._tick)

    def _tick(self, *_) -> None:  # a forward hook: returning None keeps the model's output
        self.bar.update(1)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        if self.bar is not None:
            self.bar.close()


def _completion_ids(row, prompt_len: int, end_ids: set[int]) -> list[int]:
    """The generated ids up to and including the first end token."""
    ids = row[prompt_len:].tolist()
    for i, t in enumerate(ids):
        if t in end_ids:
            return ids[: i + 1]
    return ids


def _cut_at_stops(text: str, stops: list[str]) -> str:
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def _show_steps(history, tok, mask_id: int, prompt_text: str, delay: float, stream) -> None:
    """Replay the per-step canvases of row 0: masks as a dim placeholder, new tokens highlighted."""
    special = set(tok.all_special_ids)
    pieces: dict[int, str] = {}

    def piece(t: int) -> str:
        if t not in pieces:
            pieces[t] = "·" if t in special else tok.decode([t])
        return pieces[t]

    frames = [h[0].tolist() for h in history]
    while len(frames) > 1 and frames[-1] == frames[-2]:
        frames.pop()
    total = len(frames)
    if stream.isatty():
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        console = Console(file=stream)
        prev = None
        with Live(console=console, refresh_per_second=60, auto_refresh=False) as live:
            for k, frame in enumerate(frames, start=1):
                text = Text()
                text.append(prompt_text, style="bold")
                for j, t in enumerate(frame):
                    if t == mask_id:
                        text.append("░", style="dim")
                    elif prev is None or prev[j] == mask_id:  # revealed at this step
                        text.append(piece(t), style="bold black on green")
                    else:
                        text.append(piece(t))
                text.append(f"\n[step {k}/{total}]", style="dim")
                live.update(text, refresh=True)
                prev = frame
                time.sleep(delay)
        return
    placeholder = "░"
    enc = getattr(stream, "encoding", None) or "utf-8"
    try:
        placeholder.encode(enc)
    except (UnicodeEncodeError, LookupError):
        placeholder = "_"
    for k, frame in enumerate(frames, start=1):
        body = "".join(placeholder if t == mask_id else piece(t) for t in frame)
        stream.write(f"--- step {k}/{total} ---\n{prompt_text}{body}\n")
    stream.flush()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prompt = _read_prompt(args, parser)
    if prompt == "" and not args.chat:
        parser.error("the prompt is empty: a diffusion model needs at least one prompt token")

    from diffucode.config import ConfigError
    from diffucode.sampling import GenerationConfig

    # Everything that can be checked without the model is checked before torch is imported.
    path = _model_path(args)
    if args.max_new_tokens is None:  # small models trained on short contexts recommend their own length
        args.max_new_tokens = _recommended_length(path)
    stop_ids: list[int] = []
    try:
        decoding = dict(
            max_new_tokens=args.max_new_tokens, steps=args.steps, alg=args.alg, alg_temp=args.alg_temp,
            temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, block_len=args.block_len,
            threshold=args.threshold, threshold_floor=args.threshold_floor, lookahead=args.lookahead,
            cache=args.cache, eps=args.eps, sub_block_len=args.sub_block_len, refresh_every=args.refresh_every,
            block_schedule=args.block_schedule,
            fastdllm_dream=args.fastdllm_dream,
        )
        if args.preset:
            decoding.update(_with_preset(args.preset, decoding, _explicit_flags(argv)))
        cfg = GenerationConfig(
            **decoding, block_cache=not args.no_block_cache,
            seed=args.seed, num_return_sequences=args.num_return_sequences, stop_at_eos=not args.no_stop_at_eos,
            stop_token_ids=stop_ids, early_exit=not args.no_early_exit, return_history=args.show_steps,
        )
    except ConfigError as e:
        print(f"diffucode generate: error: {e}", file=sys.stderr)
        return 2

    model, tok, model_name = _load(args, path)
    if not (args.chat or args.raw_prompt or args.suffix is not None):
        prompt = complete_block_opener(prompt)
    text = prompt
    if args.chat:
        if not getattr(tok, "chat_template", None):
            print(f"diffucode generate: error: --chat: the tokenizer of {model_name} has no chat template", file=sys.stderr)
            return 2
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tok.unk_token_id:
            stop_ids.append(im_end)
            import dataclasses

            cfg = dataclasses.replace(cfg, stop_token_ids=list(stop_ids))

    import torch

    ids = tok(text, return_tensors="pt").input_ids.to(model.device)  # [1, P]
    if ids.shape[1] == 0:
        parser.error("the prompt tokenizes to nothing")
    suffix = None
    if args.suffix is not None:
        suffix = tok(args.suffix, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
    from diffucode.sampling import generate

    t0 = time.perf_counter()
    progress = _Progress(model, enabled=_isatty(sys.stderr) and not args.show_steps)
    try:
        out = generate(model, ids, config=cfg, suffix_ids=suffix)
    except (ConfigError, ValueError) as e:
        print(f"diffucode generate: error: {e}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0

    if args.show_steps:
        # the engine's last frame may still hold masks after an early exit at the end token (they
        # become padding in the output): end on the canvas as returned
        frames = list(out.history) + [out.sequences[:, out.prompt_len:].cpu()]
        _show_steps(frames, tok, model.mask_token_id, text, args.delay, sys.stderr if args.json else sys.stdout)

    end_ids = {t for t in (model.eos_token_id, model.pad_token_id, *stop_ids) if t is not None} if cfg.stop_at_eos else set()
    P = out.prompt_len
    samples = []
    for b in range(out.sequences.shape[0]):
        comp_ids = _completion_ids(out.sequences[b], P, end_ids)
        completion = _cut_at_stops(tok.decode(comp_ids, skip_special_tokens=True), args.stop)
        samples.append({"completion": completion, "token_ids": comp_ids, "order": out.order[b, :len(comp_ids)].tolist()})

    if args.json:
        many = len(samples) > 1
        record = {key: ([s[key] for s in samples] if many else samples[0][key]) for key in ("completion", "token_ids", "order")}
        record.update(nfe=out.nfe, seconds=round(seconds, 4), num_steps=out.num_steps, prompt_tokens=int(ids.shape[1]),
                      model=model_name)
        print(json.dumps(record))
        return 0
    for i, s in enumerate(samples):
        if len(samples) > 1:
            print(f"### sample {i + 1}/{len(samples)}")
        body = s["completion"]
        if args.echo:
            body = text + body + (args.suffix or "")
        print(body)
    print(f"[{out.nfe} forward passes, {seconds:.2f}s, {model_name}]", file=sys.stderr)
    return 0
