"""``load_manifest(task)``: a task's samples as a table, read by its adapter from its data root.

A manifest is a pandas DataFrame with one row per sample: ``subject``, ``dataset``, ``image``
(``image2`` ... for multi-image samples, absolute paths), ``label`` (class name; class tasks),
``target`` (class index, or the regression value after ``labels.transform`` such as log1p),
``value`` (regression: the untransformed value, in the table's units), ``time``/``event``
(survival) and, when the data gave one, ``split``. ``frame.attrs`` records the task, its target
type, the class names and how many rows were dropped and why (no label, no image, duplicate row,
censored before a threshold ...).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from braindino.errors import DataError
from braindino.tasks.adapters_csv import csv_manifest
from braindino.tasks.adapters_native import folders_manifest, table_manifest
from braindino.tasks.labels import LabelRules
from braindino.tasks.registry import as_list, load_task
from braindino.tasks.synthetic import synthetic_root

ADAPTERS = {"table": table_manifest, "folders": folders_manifest, "csv": csv_manifest}
FIRST_COLUMNS = ["subject", "dataset", "image"]
LAST_COLUMNS = ["label", "target", "value", "time", "event", "split"]


def data_root(task: DictConfig, root: str | Path | None = None, cohort: Path | None = None) -> Path:
    """The folder (or manifest file) a task reads: ``root``, else ``data.root``, else the
    synthetic stand-in (the cohort is generated on first use)."""
    chosen = root if root is not None else task.data.root
    if chosen is None:
        if not task.data.synthetic:
            raise DataError(
                f"task {task.name} has no data root and no synthetic stand-in",
                path=f"task {task.name}",
                fix="give the data folder (--data-root / data.root=DIR)",
            )
        return synthetic_root(str(task.data.synthetic), cohort)
    path = Path(chosen).expanduser()
    if not path.exists():
        raise DataError(
            "data root not found", path=path, fix="give an existing dataset folder or CSV"
        )
    return path.resolve()


def _frame(rows: list[dict], task: DictConfig, classes: list[str], dropped: dict) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    images = sorted((c for c in frame.columns if c.startswith("image")), key=lambda c: (len(c), c))
    for col in ("label", "target", "time", "event"):
        if col not in frame.columns:
            frame[col] = None
    ordered = (
        FIRST_COLUMNS[:2]
        + images
        + [c for c in LAST_COLUMNS if c in frame.columns]
        + [c for c in frame.columns if c not in FIRST_COLUMNS + images + LAST_COLUMNS]
    )
    frame = frame[ordered]
    frame["target"] = pd.to_numeric(frame["target"], errors="coerce")
    frame["time"] = pd.to_numeric(frame["time"], errors="coerce")
    if task.target == "regression":
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    elif "value" in frame.columns:
        frame = frame.drop(columns="value")
    if task.target == "survival":
        frame["event"] = frame["event"].astype(int)
    frame.attrs.update(
        {"task": task.name, "target": task.target, "classes": classes, "dropped": dropped}
    )
    return frame


def _union_manifest(task: DictConfig, cohort: Path | None) -> pd.DataFrame:
    rules = LabelRules.from_config(task)
    parts, dropped = [], {}
    for source in as_list(task.data.sources):
        source_task = load_task(source)
        root = task.data.source_roots.get(source)
        part = load_manifest(source_task, root, cohort=cohort).copy()
        labels = [rules.class_of(str(v)) for v in part["label"]]
        bad = [str(v) for v, new in zip(part["label"], labels) if new is None]
        if bad:
            raise DataError(
                f"label(s) {sorted(set(bad))} of task {source} have no class in task {task.name}",
                path=f"task {task.name}",
                fix=f"map them with labels.map (classes: {', '.join(rules.classes)})",
            )
        part["label"] = labels
        part["target"] = [float(rules.classes.index(lab)) for lab in labels]
        part["subject"] = [f"{source}/{s}" for s in part["subject"]]
        part["dataset"] = source
        parts.append(part)
        dropped.update({f"{source}.{k}": v for k, v in part.attrs.get("dropped", {}).items()})
    rows = pd.concat(parts, ignore_index=True).to_dict("records")
    return _frame(rows, task, rules.classes, dropped)


def load_manifest(
    task: str | DictConfig, root: str | Path | None = None, cohort: str | Path | None = None
) -> pd.DataFrame:
    """The samples of ``task`` (a name or a ``load_task`` config) as a manifest table.

    Args:
        task: task name or merged task config.
        root: the dataset folder, or a generic CSV manifest file (read by the csv adapter
            whatever the task's own adapter); default ``data.root``, else the task's synthetic
            stand-in.
        cohort: the synthetic cohort folder to use (default: the cache folder's).

    Raises:
        DataError: missing table/column/image file, unknown label value, no samples found.
    """
    if not isinstance(task, DictConfig):
        task = load_task(task)
    cohort_path = Path(cohort) if cohort is not None else None
    if task.data.adapter == "union":
        return _union_manifest(task, cohort_path)
    path = data_root(task, root, cohort_path)
    adapter = "csv" if path.is_file() else task.data.adapter  # a CSV file: a generic manifest
    rows, dropped = ADAPTERS[adapter](task, path)
    classes = as_list(task.labels.classes)
    if task.target == "class" and not classes:
        classes = sorted({r["label"] for r in rows})
    return _frame(rows, task, classes, dropped)
