"""``load_manifest(task)``: a task's samples as a table, read by its adapter from its data root.

A manifest is a pandas DataFrame with one row per sample: ``subject``, ``dataset``, ``image``
(``image2`` ... for multi-image samples, absolute paths), ``label`` (class name; class tasks),
``target`` (class index, or the regression value after ``labels.transform`` such as log1p),
``value`` (regression: the untransformed value, in the table's units), ``time``/``event``
(survival), ``patient`` and ``timepoint`` (several scans of one person: see ``timepoints``) and,
when the data gave one, ``split``. ``frame.attrs`` records the task, its target type, the class
names, the data read (``sources``: root and subject count per dataset), how many rows were left
out and why (``dropped``: no label, no image, conflicting duplicate, censored before a threshold,
follow-up timepoint ...) and each of them (``excluded``: ``{subject, reason}``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from braindino.errors import DataError
from braindino.tasks.adapters_csv import csv_manifest
from braindino.tasks.adapters_native import folders_manifest, table_manifest
from braindino.tasks.droplog import DropLog
from braindino.tasks.labels import LabelRules
from braindino.tasks.registry import as_list, load_task
from braindino.tasks.synthetic import synthetic_root
from braindino.tasks.timepoints import assign_patients

ADAPTERS = {"table": table_manifest, "folders": folders_manifest, "csv": csv_manifest}
FIRST_COLUMNS = ["subject", "dataset", "image"]
LAST_COLUMNS = ["label", "target", "value", "time", "event", "patient", "timepoint", "split"]


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


def _frame(
    rows: list[dict], task: DictConfig, classes: list[str], log: DropLog, sources: dict
) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    images = image_columns(frame)
    for col in ("label", "target", "time", "event", "patient", "timepoint"):
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
    frame.attrs.update(task=task.name, target=task.target, classes=classes, sources=sources)
    frame.attrs.update(dropped=dict(log.counts), excluded=list(log.excluded))
    return frame


def _source_root(root: Path | None, source: str, task: DictConfig) -> Path | str | None:
    """Where a union task's source reads: ``data.source_roots``, else ``root/<source>`` when that
    folder exists, else ``root`` itself (one folder holding every source), else synthetic."""
    configured = task.data.source_roots.get(source)
    if configured is not None or root is None:
        return configured
    return root / source if (root / source).is_dir() else root


def _union_manifest(task: DictConfig, root: Path | None, cohort: Path | None) -> pd.DataFrame:
    rules = LabelRules.from_config(task)
    parts, log, sources = [], DropLog(), {}
    for source in as_list(task.data.sources):
        source_task = load_task(source)
        part = load_manifest(source_task, _source_root(root, source, task), cohort=cohort).copy()
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
        for column in ("subject", "patient"):
            part[column] = [f"{source}/{s}" for s in part[column]]
        part["dataset"] = source
        parts.append(part)
        sources.update(part.attrs["sources"])
        log.merge(DropLog(part.attrs["dropped"], part.attrs["excluded"]), f"{source}.")
    rows = pd.concat(parts, ignore_index=True).to_dict("records")
    return _frame(rows, task, rules.classes, log, sources)


def load_manifest(
    task: str | DictConfig, root: str | Path | None = None, cohort: str | Path | None = None
) -> pd.DataFrame:
    """The samples of ``task`` (a name or a ``load_task`` config) as a manifest table.

    Args:
        task: task name or merged task config.
        root: the dataset folder, or a generic CSV manifest file (read by the csv adapter
            whatever the task's own adapter); default ``data.root``, else the task's synthetic
            stand-in. A union task (``knn``) reads each source from ``data.source_roots``, else
            ``root/<source>`` when that folder exists, else ``root``.
        cohort: the synthetic cohort folder to use (default: the cache folder's).

    Raises:
        DataError: missing table/column/image file, unknown label value, no samples found.
    """
    if not isinstance(task, DictConfig):
        task = load_task(task)
    cohort_path = Path(cohort) if cohort is not None else None
    if task.data.adapter == "union":
        chosen = root if root is not None else task.data.root
        union_root = None if chosen is None else data_root(task, chosen)
        return _union_manifest(task, union_root, cohort_path)
    path = data_root(task, root, cohort_path)
    adapter = "csv" if path.is_file() else task.data.adapter  # a CSV file: a generic manifest
    rows, log = ADAPTERS[adapter](task, path)
    classes = as_list(task.labels.classes)
    if task.target == "class" and not classes:
        classes = sorted({r["label"] for r in rows})
    frame = _frame(rows, task, classes, log, {})
    frame = assign_patients(frame, task, log)
    subjects = int(frame["subject"].nunique())
    frame.attrs["sources"] = {str(task.name): {"root": str(path), "subjects": subjects}}
    frame.attrs.update(dropped=dict(log.counts), excluded=list(log.excluded))
    frame.attrs["timepoint"] = str(task.data.timepoint)
    return frame


def image_columns(manifest: pd.DataFrame) -> list[str]:
    """The manifest's image columns in order (``image``, ``image2`` ...)."""
    return sorted((c for c in manifest.columns if c.startswith("image")), key=lambda c: (len(c), c))
