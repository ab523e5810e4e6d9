"""Small deterministic CSV/TSV writer for subject tables, truth tables and manifests."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write ``rows`` (columns: ``columns`` or every key in first-seen order; blanks for missing).

    A ``.tsv`` suffix writes tab-separated values. Floats keep Python's shortest repr, so the
    same rows always give the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=columns, delimiter=delimiter, lineterminator="\n", restval=""
        )
        writer.writeheader()
        writer.writerows(rows)
    return path
