"""The generic CSV manifest adapter.

Columns: ``subject, image[, image2 ...], target[, time, event][, split][, patient, timepoint]``
(``patient``: rows of several subjects that are scans of one person, kept in one split). Image
paths may be absolute or relative to the CSV's folder. The column names above come first; failing
them, the task's ``data.subject_column`` / ``label_column`` / ``time_column`` / ``event_column``
are tried. A class task without ``labels.classes`` takes the sorted distinct labels as its classes.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from braindino.errors import DataError
from braindino.tasks.droplog import DropLog
from braindino.tasks.labels import LabelRules, unknown_labels_error
from braindino.tasks.registry import as_list
from braindino.tasks.tables import find_table, pick_column, read_table
from braindino.tasks.targets import DropRowError, TargetColumns, row_fields

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}  # fmt: skip
_IMAGE_COLUMN = re.compile(r"^image(\d*)$", re.IGNORECASE)


def manifest_image_columns(columns: list[str], path: Path) -> list[str]:
    """The ``image``, ``image2`` ... columns of a manifest, in number order."""
    found = []
    for col in columns:
        match = _IMAGE_COLUMN.match(col)
        if match:
            found.append((int(match.group(1) or 1), col))
    if not found or min(found)[0] != 1:
        raise DataError(
            f"no 'image' column; the manifest has: {', '.join(columns)}",
            path=path,
            fix="name the image path column 'image' (more images: image2, image3 ...)",
        )
    return [col for _, col in sorted(found)]


def _image_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _split_value(value: str, subject: str, path: Path) -> str | None:
    if not value:
        return None
    name = SPLIT_NAMES.get(value.strip().lower())
    if name is None:
        raise DataError(
            f"split '{value}' of subject {subject} is not train, val or test",
            path=path,
            fix="use train, val or test (or leave the cell empty)",
        )
    return name


def csv_manifest(task: DictConfig, root: Path) -> tuple[list[dict], DropLog]:
    """Samples of a generic CSV manifest (``root`` is the CSV file or its folder)."""
    data = task.data
    path = root if root.is_file() else find_table(root, as_list(data.table) or ["manifest.csv"])
    frame = read_table(path)
    rules = LabelRules.from_config(task)

    def column(key: str, *first: str) -> str:
        """The manifest's ``first`` column, else the task's ``data.<key>`` one."""
        return pick_column(frame, [*first, *as_list(data[key])], path, f"data.{key}")

    subject_col = column("subject_column", "subject")
    images = manifest_image_columns(list(frame.columns), path)
    cols = TargetColumns()
    if task.target in ("class", "regression"):
        cols.label = column("label_column", "target", "label")
    if task.target == "survival":
        cols.time, cols.event = column("time_column", "time"), column("event_column", "event")
    split_col = "split" if "split" in frame.columns else None
    if task.target == "class" and not rules.classes:
        values = frame[cols.label][~frame[cols.label].map(rules.is_missing)]
        rules.classes = sorted(set(values))
    rows, log, unknown, missing_files = [], DropLog(), [], []
    base = path.parent
    for _, rec in frame.iterrows():
        subject = rec[subject_col]
        try:
            fields = row_fields(rec.rename(subject), task, rules, cols, path)
        except DropRowError as why:
            log.drop(str(why.args[0]), subject)
            continue
        if not isinstance(fields, dict):
            unknown.append(fields)
            continue
        files = [_image_path(rec[col], base) for col in images if rec[col]]
        missing_files += [str(f) for f in files if not f.exists()]
        row = {"subject": subject, "dataset": task.name}
        row.update({col.lower(): str(f) for col, f in zip(images, files)})
        row.update(fields)
        if split_col is not None:
            row["split"] = _split_value(rec[split_col], subject, path)
        for extra in ("patient", "timepoint"):  # several scans of one patient (kept together)
            if extra in frame.columns and rec[extra]:
                row[extra] = rec[extra]
        rows.append(row)
    if unknown:
        raise unknown_labels_error(unknown, str(cols.label), str(path), rules)
    if missing_files:
        raise DataError(
            f"image file not found: {missing_files[0]} ({len(missing_files)} missing in all)",
            path=path,
            fix="correct the paths (relative paths are taken from the manifest's folder)",
        )
    if not rows:
        raise DataError("the manifest has no labelled rows", path=path, fix="add rows")
    return rows, log
