"""Thin wrapper: the benchmark lives in ``diffucode.benchmarks.serve_throughput`` (also ``diffucode bench serve``).

    python benchmarks/serve_throughput.py --help
"""

from diffucode.benchmarks.serve_throughput import main

if __name__ == "__main__":
    raise SystemExit(main())
