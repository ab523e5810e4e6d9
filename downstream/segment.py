"""Tumour / lesion segmentation over a frozen encoder (see `--help`); the work is in
braindino.segment."""

import sys

from braindino.cli import run_cli
from braindino.segment.cli import main

if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
