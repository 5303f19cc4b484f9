"""Thin wrapper: the benchmark lives in ``diffucode.benchmarks.sandbox_throughput`` (also ``diffucode bench sandbox``).

    python benchmarks/sandbox_throughput.py --help
"""

from diffucode.benchmarks.sandbox_throughput import main

if __name__ == "__main__":
    raise SystemExit(main())
