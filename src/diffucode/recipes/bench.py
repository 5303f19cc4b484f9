"""`diffucode bench`: not implemented yet."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffucode bench", description="Not implemented yet.")
    parser.parse_args(argv)
    print("diffucode bench: not implemented yet", file=sys.stderr)
    return 1
