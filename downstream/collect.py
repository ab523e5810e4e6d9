"""Collect a downstream sweep's run folders into one table (results.csv + results.md).

python downstream/collect.py runs/sweep        # after slurm/downstream.sbatch's array
"""

from __future__ import annotations

from braindino.cli import run_cli
from braindino.downstream.collect import collect_main

if __name__ == "__main__":
    run_cli(collect_main)
