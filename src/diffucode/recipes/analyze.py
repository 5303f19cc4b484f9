"""`diffucode analyze`: not implemented yet."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffucode analyze", description="Not implemented yet.")
    parser.parse_args(argv)
    print("diffucode analyze: not implemented yet", file=sys.stderr)
    return 1
