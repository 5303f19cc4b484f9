"""Thin wrapper: the benchmark lives in ``diffucode.benchmarks.train_step`` (also ``diffucode bench train``).

    python benchmarks/train_step.py --help
"""

from diffucode.benchmarks.train_step import main

if __name__ == "__main__":
    raise SystemExit(main())
