"""Adapters for native dataset layouts: ``table`` (images + a subject table: ADNI, OASIS, ABIDE,
IXI, UPENN-GBM, UCSF-PDGM, ATLAS) and ``folders`` (images only: BraTS case folders)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from braindino.errors import ConfigError, DataError
from braindino.tasks.images import list_files, match_images, subject_key
from braindino.tasks.labels import LabelRules
from braindino.tasks.registry import as_list
from braindino.tasks.tables import find_table, pick_column, read_table
from braindino.tasks.targets import Targets, apply_filter, table_targets


def image_columns(count: int) -> list[str]:
    """Manifest column names of a sample's images: ``image``, ``image2``, ``image3`` ..."""
    return ["image"] + [f"image{i}" for i in range(2, count + 1)]


def _sample(subject: str, dataset: str, images: list[Path], fields: dict) -> dict:
    row = {"subject": subject, "dataset": dataset}
    row.update({col: str(path) for col, path in zip(image_columns(len(images)), images)})
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


def table_manifest(task: DictConfig, root: Path) -> tuple[list[dict], dict[str, int]]:
    """Samples of a dataset whose labels sit in a subject table and images in its native tree."""
    data = task.data
    rules = LabelRules.from_config(task)
    table = find_table(root, as_list(data.table))
    frame = read_table(table)
    subject_col = pick_column(frame, as_list(data.subject_column), table, "data.subject_column")
    frame = apply_filter(frame, data.filter)
    targets: Targets = table_targets(task, rules, frame, table, subject_col)
    in_table = {subject_key(str(data.subject_prefix) + s) for s in frame[subject_col] if s}
    roles = _roles(task)
    found = match_images(list_files(root), {r: data.images[r] for r in roles})
    rows, seen = [], set()
    for raw_subject, fields in targets.rows:
        key = subject_key(str(data.subject_prefix) + raw_subject)
        if key in seen:
            targets.drop("duplicate_row")
            continue
        per_role = [found[role].get(key) for role in roles]
        if any(entry is None for entry in per_role):
            targets.drop("no_image")
            continue
        seen.add(key)
        subject = per_role[0][0]
        if data.scans == "all":
            for path in per_role[0][1]:
                rows.append(_sample(subject, task.name, [root / path], fields))
        else:
            rows.append(_sample(subject, task.name, [root / e[1][0] for e in per_role], fields))
    image_only = set(found[roles[0]]) - in_table
    if image_only:
        targets.dropped["image_without_table_row"] = len(image_only)
    if not rows:
        detail = f"{len(targets.rows)} labelled rows in {table.name}, none with all images"
        raise _no_samples(root, task, detail)
    return rows, targets.dropped


def folders_manifest(task: DictConfig, root: Path) -> tuple[list[dict], dict[str, int]]:
    """Samples of image-only case folders; with ``per_role_samples`` each image is one sample
    whose class is its role (sequence identification), else one unlabelled sample per case."""
    data = task.data
    rules = LabelRules.from_config(task)
    roles = _roles(task)
    found = match_images(list_files(root), {r: data.images[r] for r in roles})
    keys = sorted(set().union(*(found[r].keys() for r in roles)))
    rows, dropped = [], {}
    for key in keys:
        entries = {role: found[role][key] for role in roles if key in found[role]}
        subject = next(iter(entries.values()))[0]
        if data.per_role_samples:
            for role, (_, paths) in entries.items():
                label = rules.class_of(role)
                if label is None:
                    raise ConfigError(
                        f"role '{role}' is not one of labels.classes {rules.classes}",
                        path=f"task {task.name}",
                        fix="name the roles after the classes or map them with labels.map",
                    )
                chosen = paths if data.scans == "all" else paths[:1]
                for path in chosen:
                    fields = {"label": label, "target": float(rules.classes.index(label))}
                    rows.append(_sample(subject, task.name, [root / path], fields))
        elif len(entries) == len(roles):
            images = [root / entries[role][1][0] for role in roles]
            rows.append(_sample(subject, task.name, images, {"label": None}))
        else:
            dropped["missing_role"] = dropped.get("missing_role", 0) + 1
    if not rows:
        raise _no_samples(root, task, "no file matched")
    return rows, dropped
