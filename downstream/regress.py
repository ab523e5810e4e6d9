"""Frozen-encoder regress protocol (see `--help`); the work is in braindino.downstream."""

import sys

from braindino.cli import run_cli
from braindino.downstream.cli import main

if __name__ == "__main__":
    run_cli(lambda: main("regress", sys.argv[1:]))
