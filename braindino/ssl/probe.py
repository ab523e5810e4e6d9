"""Frozen-feature k-NN probes on the synthetic cohort: is the encoder learning anatomy/contrast?

A probe task is a set of volumes with a label and a subject (for grouped cross-validation), read
from the cohort's ``truth.csv`` files. Each volume is preprocessed like the pretraining data; a few
central axial slices are encoded; the volume's feature is the mean of their normed CLS tokens; the
score is the balanced accuracy of a cosine k-NN classifier under subject-grouped stratified k-fold
cross-validation (so no subject is in train and test of one fold).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from braindino.errors import ConfigError, DataError

SEQUENCE_COLUMNS = {"file_T1": "T1", "file_T1c": "T1c", "file_T2": "T2", "file_FLAIR": "FLAIR"}


@dataclass(frozen=True)
class ProbeItem:
    """One labelled volume of a probe task."""

    path: Path
    label: str
    subject: str


def _truth_rows(cohort: Path) -> list[tuple[Path, dict[str, str]]]:
    rows = []
    for truth in sorted(cohort.glob("*/truth.csv")):
        if truth.parent.name == "pretrain_pool":
            continue
        with truth.open(newline="", encoding="utf-8") as handle:
            rows += [(truth.parent, row) for row in csv.DictReader(handle)]
    if not rows:
        raise DataError(
            "no truth.csv found under the cohort folder",
            path=cohort,
            fix="generate it with python -m braindino.synth --out DIR",
        )
    return rows


def _sequence_items(rows) -> list[ProbeItem]:
    items = []
    for folder, row in rows:
        if all(row.get(col) for col in SEQUENCE_COLUMNS):
            for col, name in SEQUENCE_COLUMNS.items():
                items.append(ProbeItem(folder / row[col], name, f"{folder.name}/{row['subject']}"))
    return items


def _t1_items(rows, label_of) -> list[ProbeItem]:
    items = []
    for folder, row in rows:
        label = label_of(row)
        if label is not None and row.get("file_T1") and not row.get("file_seg"):
            items.append(
                ProbeItem(folder / row["file_T1"], label, f"{folder.name}/{row['subject']}")
            )
    return items


def probe_items(cohort: str | Path, task: str) -> list[ProbeItem]:
    """The labelled volumes of one probe task.

    ``brats_sequence``: the four MRI sequences of every tumour case (4 classes).
    ``brain_age``: healthy/dementia T1 volumes, age above vs below the cohort median (2 classes).
    ``diagnosis``: ADNI/OASIS-like T1 volumes, cognitively normal vs impaired (MCI/AD) (2 classes).
    """
    rows = _truth_rows(Path(cohort))
    if task == "brats_sequence":
        return _sequence_items(rows)
    if task == "brain_age":
        ages = [float(r["age"]) for _, r in rows if r.get("age") and not r.get("file_seg")]
        median = float(np.median(ages)) if ages else 0.0
        return _t1_items(
            rows, lambda r: None if not r.get("age") else str(float(r["age"]) > median)
        )
    if task == "diagnosis":
        return _t1_items(
            rows,
            lambda r: {"CN": "normal", "MCI": "impaired", "AD": "impaired"}.get(r["diagnosis"]),
        )
    raise ConfigError(
        f"unknown probe task '{task}'",
        path="probe.tasks",
        fix="use brats_sequence, brain_age or diagnosis",
    )


def central_slices(
    path: Path, size: int, count: int, preprocess: Mapping | None = None
) -> np.ndarray:
    """``count`` evenly spaced axial slices from the central half of a preprocessed volume,
    as float32 z-scores ``[count, size, size]``."""
    from braindino.io import read_volume
    from braindino.preprocess import preprocess_config, preprocess_volume

    overrides = {"slices": {"size": size}, **(dict(preprocess) if preprocess else {})}
    stack = preprocess_volume(read_volume(path), preprocess_config(overrides))
    n = len(stack.z)
    picks = np.linspace(n * 0.25, n * 0.75, count).round().astype(int).clip(0, n - 1)
    return stack.slices[picks].astype(np.float32) * stack.scale + stack.offset


class ProbeSet:
    """The preprocessed slices and labels of several probe tasks, built once and reused."""

    def __init__(
        self,
        cohort: str | Path,
        tasks: Sequence[str],
        image_size: int,
        slices_per_volume: int = 3,
        preprocess: Mapping | None = None,
    ):
        self.tasks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        cache: dict[Path, np.ndarray] = {}
        for task in tasks:
            items = probe_items(cohort, task)
            if len(items) < 10:
                raise DataError(
                    f"probe task '{task}' has only {len(items)} volumes",
                    path=cohort,
                    fix="generate a larger cohort (--subjects) or drop the task from probe.tasks",
                )
            for item in items:
                if item.path not in cache:
                    cache[item.path] = central_slices(
                        item.path, image_size, slices_per_volume, preprocess
                    )
            images = np.stack([cache[item.path] for item in items])
            labels = np.array([item.label for item in items])
            groups = np.array([item.subject for item in items])
            self.tasks[task] = (images, labels, groups)

    @torch.no_grad()
    def features(self, backbone: torch.nn.Module, task: str, batch: int = 64) -> np.ndarray:
        """Per-volume features: mean over its slices of the L2-normalised CLS token."""
        images = self.tasks[task][0]
        n, s, size = images.shape[:3]
        flat = torch.from_numpy(images.reshape(n * s, 1, size, size))
        device = next(backbone.parameters()).device
        was_training = backbone.training
        backbone.eval()
        out = []
        for start in range(0, len(flat), batch):
            cls = backbone.forward_features(flat[start : start + batch].to(device))["cls"]
            out.append(torch.nn.functional.normalize(cls.float(), dim=-1).cpu())
        backbone.train(was_training)
        return torch.cat(out).view(n, s, -1).mean(1).numpy()

    def evaluate(self, backbone: torch.nn.Module, k: int = 5, folds: int = 5) -> dict[str, float]:
        """Balanced k-NN accuracy per task (subject-grouped stratified CV)."""
        return {
            task: knn_balanced_accuracy(self.features(backbone, task), labels, groups, k, folds)
            for task, (_, labels, groups) in self.tasks.items()
        }


def knn_balanced_accuracy(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 5, folds: int = 5
) -> float:
    """Cosine k-NN balanced accuracy under subject-grouped stratified k-fold CV (seed 0)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.neighbors import KNeighborsClassifier

    x = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    predictions = np.empty(len(labels), dtype=labels.dtype)
    for train, test in splitter.split(x, labels, groups):
        knn = KNeighborsClassifier(n_neighbors=min(k, len(train)), metric="cosine")
        predictions[test] = knn.fit(x[train], labels[train]).predict(x[test])
    return float(balanced_accuracy_score(labels, predictions))
