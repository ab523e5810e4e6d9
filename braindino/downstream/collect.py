"""Gather the run folders of a downstream sweep (e.g. a SLURM job array) into one table.

Every ``metrics.json`` below the sweep root contributes one row per trained head result: task,
encoder, label fraction, seed, the task's primary metric with its 95 % bootstrap interval, the
number of test subjects and the run folder. ``write_table`` saves ``results.csv`` and
``results.md`` next to the runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from braindino.errors import DataError

COLUMNS = ["task", "encoder", "fraction", "seed", "metric", "value", "low", "high", "n_test", "run"]


def _rows(path: Path, root: Path) -> list[dict]:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        primary = metrics["primary_metric"]
        results = metrics["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"not a downstream metrics file ({exc!r})",
            path=path,
            fix="delete the half-written run folder or rerun that array element",
        ) from exc
    rows = []
    for result in results:
        stats = result["metrics"].get(primary) or {}
        rows.append(
            {
                "task": metrics["task"],
                "encoder": result["encoder"],
                "fraction": float(result["fraction"]),
                "seed": int(result["seed"]),
                "metric": primary,
                "value": stats.get("value"),
                "low": stats.get("low"),
                "high": stats.get("high"),
                "n_test": result.get("n_test"),
                "run": path.parent.relative_to(root).as_posix(),
            }
        )
    return rows


def collect(root: str | Path) -> pd.DataFrame:
    """One row per (run folder, encoder, fraction, seed) under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("sweep folder not found", path=root, fix="pass the --out of the sweep")
    files = sorted(root.rglob("metrics.json"))
    if not files:
        raise DataError(
            "no metrics.json below this folder",
            path=root,
            fix="wait for the array jobs to finish (squeue) or check their logs",
        )
    rows = [row for path in files for row in _rows(path, root)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["task", "encoder", "fraction", "seed"], ignore_index=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return "n/a" if value is None else str(value)


def write_table(table: pd.DataFrame, root: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` and a Markdown ``results.md`` into ``root``; returns both paths."""
    root = Path(root)
    csv, md = root / "results.csv", root / "results.md"
    table.to_csv(csv, index=False)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv, md


def collect_main(argv: list[str] | None = None) -> int:
    """The ``collect`` command line: parse the sweep folder, write and print the table."""
    import argparse

    parser = argparse.ArgumentParser(
        description="Collect a downstream sweep's run folders into one table (results.csv + "
        "results.md), e.g. after slurm/downstream.sbatch's job array."
    )
    parser.add_argument("root", help="the sweep folder (the --out given to the array jobs)")
    args = parser.parse_args(argv)
    table = collect(args.root)
    csv, md = write_table(table, args.root)
    print(md.read_text(encoding="utf-8"), end="")
    print(f"{len(table)} rows: {csv}")
    return 0
