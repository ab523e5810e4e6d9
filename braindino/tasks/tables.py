"""Subject tables: find the file, read it as text, pick columns by name (first that exists)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from braindino.errors import DataError

#: Words in a file name that mark a release's data dictionary, not its subject table
#: (UCSF-PDGM ships ``UCSF-PDGM-metadata_glossary.csv`` beside ``UCSF-PDGM-metadata_v5.csv``).
NOT_A_TABLE = ("glossary", "dictionary", "readme", "codebook")


def table_files(root: Path, candidates: Sequence[str]) -> list[Path]:
    """Every file matching ``candidates`` (paths relative to ``root``, globs allowed) in the
    candidates' order (a glob's matches sorted by name); data dictionaries (``*glossary*`` ...)
    are left out."""
    out: list[Path] = []
    for name in candidates:
        if any(ch in name for ch in "*?["):
            found = sorted(p for p in root.glob(name) if p.is_file())
        else:
            found = [root / name] if (root / name).is_file() else []
        for path in found:
            if path not in out and not any(w in path.name.lower() for w in NOT_A_TABLE):
                out.append(path)
    return out


def find_table(root: Path, candidates: Sequence[str], columns: Sequence[str] = ()) -> Path:
    """The first of ``candidates`` (paths relative to ``root``, globs allowed) that exists and,
    when ``columns`` are given, has one of them (so a release's other CSVs are passed over)."""
    found = table_files(root, candidates)
    for path in found:
        if not columns or has_column(path, columns):
            return path
    if found:
        return found[0]  # reading it names the missing column
    listed = ", ".join(candidates) or "(none configured)"
    raise DataError(
        f"no subject table found (looked for {listed})",
        path=root,
        fix="put the dataset's table there, or name it with data.table=FILE",
    )


def read_table(path: Path, header_only: bool = False) -> pd.DataFrame:
    """A CSV/TSV/Excel table with every cell as stripped text (nothing parsed or dropped);
    ``header_only`` reads just the column names."""
    suffix = path.suffix.lower()
    rows = 0 if header_only else None
    try:
        if suffix in (".xls", ".xlsx"):
            frame = pd.read_excel(path, dtype=str, nrows=rows)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, nrows=rows)
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


def has_column(path: Path, names: Sequence[str]) -> bool:
    """Whether the table at ``path`` has one of ``names`` (case-insensitive); unreadable: False."""
    try:
        header = read_table(path, header_only=True).columns
    except DataError:
        return False
    lowered = {c.lower() for c in header}
    return any(n.lower() in lowered for n in names)


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
