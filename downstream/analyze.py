"""Representation analyses of a frozen encoder beside its random twin (see `--help`); the work
is in braindino.analysis."""

import sys

from braindino.analysis.cli import main
from braindino.cli import run_cli

if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
