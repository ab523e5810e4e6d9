"""Subject tables: find the file, read it as text, pick columns by name (first that exists)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from braindino.errors import DataError


def find_table(root: Path, candidates: Sequence[str]) -> Path:
    """The first of ``candidates`` (paths relative to ``root``, globs allowed) that exists."""
    for name in candidates:
        if any(ch in name for ch in "*?["):
            found = sorted(p for p in root.glob(name) if p.is_file())
            if found:
                return found[0]
        elif (root / name).is_file():
            return root / name
    listed = ", ".join(candidates) or "(none configured)"
    raise DataError(
        f"no subject table found (looked for {listed})",
        path=root,
        fix="put the dataset's table there, or name it with data.table=FILE",
    )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV/Excel table with every cell as stripped text (nothing parsed or dropped)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".xls", ".xlsx"):
            frame = pd.read_excel(path, dtype=str)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except ImportError as exc:
        raise DataError(
            f"reading {suffix} needs an extra package ({exc})",
            path=path,
            fix="save the sheet as CSV next to it (same name, .csv) or install openpyxl/xlrd",
        ) from exc
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"cannot read the table ({detail})", path=path, fix="check it is a CSV/TSV file"
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.fillna("").astype(str).apply(lambda col: col.str.strip())


def pick_column(frame: pd.DataFrame, candidates: Sequence[str], path: Path | str, key: str) -> str:
    """The first of ``candidates`` that ``frame`` has (exact, then case-insensitive match).

    Raises DataError naming the config ``key``, the file, the names tried and the columns present.
    """
    for name in candidates:
        if name in frame.columns:
            return name
    lowered = {c.lower(): c for c in frame.columns}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    present = ", ".join(frame.columns[:30]) + (" ..." if len(frame.columns) > 30 else "")
    tried = " or ".join(f"'{c}'" for c in candidates) or "(none configured)"
    raise DataError(
        f"column {tried} not found; the table has: {present}",
        path=path,
        fix=f"name the right column with {key}=COLUMN",
    )
