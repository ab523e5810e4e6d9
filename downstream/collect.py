"""Collect a downstream sweep's run folders into one table (results.csv + results.md).

python downstream/collect.py runs/sweep        # after slurm/downstream.sbatch's array
"""

from __future__ import annotations

import argparse

from braindino.cli import run_cli


def main() -> int:
    """Parse the sweep folder, collect its metrics.json files, write and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("root", help="the sweep folder (the --out given to the array jobs)")
    args = parser.parse_args()

    from braindino.downstream.collect import collect, write_table

    table = collect(args.root)
    csv, md = write_table(table, args.root)
    print(md.read_text(encoding="utf-8"), end="")
    print(f"{len(table)} rows: {csv}")
    return 0


if __name__ == "__main__":
    run_cli(main)
