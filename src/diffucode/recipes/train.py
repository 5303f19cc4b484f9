"""`diffucode train`: not implemented yet."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffucode train", description="Not implemented yet.")
    parser.parse_args(argv)
    print("diffucode train: not implemented yet", file=sys.stderr)
    return 1
