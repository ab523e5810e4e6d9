"""Tumour / lesion segmentation over a frozen encoder (see `--help`); the work is in
braindino.downstream (the segmentation kind of the protocol)."""

import sys

from braindino.cli import run_cli
from braindino.downstream.cli import main

if __name__ == "__main__":
    run_cli(lambda: main("segment", sys.argv[1:]))
