"""Thin wrapper: the benchmark lives in ``diffucode.benchmarks.decode_speed`` (also ``diffucode bench decode``).

    python benchmarks/decode_speed.py --help
"""

from diffucode.benchmarks.decode_speed import main

if __name__ == "__main__":
    raise SystemExit(main())
