"""Adapters for native dataset layouts: ``table`` (images + a subject table: ADNI, OASIS, ABIDE,
IXI, UPENN-GBM, UCSF-PDGM, ATLAS) and ``folders`` (images only: BraTS case folders)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from braindino.errors import ConfigError, DataError
from braindino.tasks.droplog import DropLog
from braindino.tasks.images import choose_scan, list_files, match_images, subject_key
from braindino.tasks.labels import LabelRules
from braindino.tasks.registry import as_list
from braindino.tasks.tables import find_table, pick_column, read_table
from braindino.tasks.targets import Targets, apply_filter, table_targets


def image_column_names(count: int) -> list[str]:
    """Manifest column names of a sample's images: ``image``, ``image2``, ``image3`` ..."""
    return ["image"] + [f"image{i}" for i in range(2, count + 1)]


def _sample(subject: str, dataset: str, images: list[Path], fields: dict) -> dict:
    row = {"subject": subject, "dataset": dataset}
    row.update({col: str(path) for col, path in zip(image_column_names(len(images)), images)})
    row.update(fields)
    return row


def _roles(task: DictConfig) -> list[str]:
    roles = as_list(task.data.inputs)
    if task.data.scans == "all" and len(roles) > 1 and not task.data.per_role_samples:
        raise ConfigError(
            "data.scans=all needs a single input role",
            path=f"task {task.name}",
            fix="use data.scans=first for multi-image samples",
        )
    return roles


def _no_samples(root: Path, task: DictConfig, detail: str) -> DataError:
    patterns = "; ".join(f"{r}: {task.data.images[r]}" for r in as_list(task.data.inputs))
    return DataError(
        f"no samples found for task {task.name} ({detail}); image patterns: {patterns}",
        path=root,
        fix="check data.root points at the dataset folder, or adjust data.images",
    )


TARGET_FIELDS = ("label", "target", "time", "event", "value")


def _by_subject(targets: Targets, prefix: str, duplicates: str) -> dict[str, list]:
    """The table rows grouped by subject key; several rows with different targets are excluded
    (``conflicting_duplicate``) unless ``duplicates`` is ``first``; same targets count once."""
    groups: dict[str, list] = {}
    for row in targets.rows:
        groups.setdefault(subject_key(prefix + row[0]), []).append(row)
    for key, rows in list(groups.items()):
        first = rows[0][1]
        if all(f[k] == first[k] for _, f, _ in rows[1:] for k in TARGET_FIELDS):
            continue  # one row, or one subject's visits or images with one label: rows are hints
        if duplicates == "first":
            targets.log.drop("conflicting_duplicate_kept_first", rows[0][0], len(rows) - 1)
            groups[key] = rows[:1]
        else:
            targets.log.drop("conflicting_duplicate", rows[0][0], len(rows))
            del groups[key]
    return groups


def table_manifest(task: DictConfig, root: Path) -> tuple[list[dict], DropLog]:
    """Samples of a dataset whose labels sit in a subject table and images in its native tree.

    Each subject's image is the scan its table rows name (``choose_scan``: image id, exam date,
    preferred series), so a label is never paired with another visit's image.
    """
    data = task.data
    rules = LabelRules.from_config(task)
    subject_names = as_list(data.subject_column)
    try:
        table = find_table(root, as_list(data.table), subject_names)
        frame = read_table(table)
        subject_col = pick_column(frame, subject_names, table, "data.subject_column")
        frame = apply_filter(frame, data.filter)
        targets: Targets = table_targets(task, rules, frame, table, subject_col)
    except DataError as exc:
        if not data.table_note or "found" not in exc.problem:
            raise
        raise DataError(f"{exc.problem} ({data.table_note})", exc.path, exc.fix) from exc
    prefix = str(data.subject_prefix)
    in_table = {subject_key(prefix + s) for s in frame[subject_col] if s}
    roles = _roles(task)
    found = match_images(list_files(root), {r: data.images[r] for r in roles})
    series = as_list(data.series)
    rows = []
    for key, group in _by_subject(targets, prefix, str(data.duplicates)).items():
        raw_subject, fields, _ = group[0]
        per_role = [found[role].get(key) for role in roles]
        if any(entry is None for entry in per_role):
            targets.log.drop("no_image", raw_subject)
            continue
        hints = [h for _, _, h in group]
        if data.scans == "all":
            chosen = [[p] for p in per_role[0].paths]
        else:
            tolerance = int(data.date_tolerance_days)
            picks = [choose_scan(entry, hints, series, tolerance)[0] for entry in per_role]
            if any(p is None for p in picks):
                targets.log.drop("no_image_of_labelled_visit", raw_subject)
                continue
            chosen = [picks]
        subject = per_role[0].subject
        rows += [_sample(subject, task.name, [root / p for p in paths], fields) for paths in chosen]
    for key in sorted(set(found[roles[0]]) - in_table):
        targets.log.drop("image_without_table_row", found[roles[0]][key].subject)
    if not rows:
        detail = f"{len(targets.rows)} labelled rows in {table.name}, none with all images"
        raise _no_samples(root, task, detail)
    return rows, targets.log


def folders_manifest(task: DictConfig, root: Path) -> tuple[list[dict], DropLog]:
    """Samples of image-only case folders; with ``per_role_samples`` each image is one sample
    whose class is its role (sequence identification), else one unlabelled sample per case."""
    data = task.data
    rules = LabelRules.from_config(task)
    roles = _roles(task)
    found = match_images(list_files(root), {r: data.images[r] for r in roles})
    keys = sorted(set().union(*(found[r].keys() for r in roles)))
    rows, log = [], DropLog()
    for key in keys:
        entries = {role: found[role][key] for role in roles if key in found[role]}
        subject = next(iter(entries.values())).subject
        if data.per_role_samples:
            for role, entry in entries.items():
                label = rules.class_of(role)
                if label is None:
                    raise ConfigError(
                        f"role '{role}' is not one of labels.classes {rules.classes}",
                        path=f"task {task.name}",
                        fix="name the roles after the classes or map them with labels.map",
                    )
                chosen = entry.paths if data.scans == "all" else entry.paths[:1]
                for path in chosen:
                    fields = {"label": label, "target": float(rules.classes.index(label))}
                    rows.append(_sample(subject, task.name, [root / path], fields))
        elif len(entries) == len(roles):
            images = [root / entries[role].paths[0] for role in roles]
            rows.append(_sample(subject, task.name, images, {"label": None}))
        else:
            log.drop("missing_role", subject)
    if not rows:
        raise _no_samples(root, task, "no file matched")
    return rows, log
