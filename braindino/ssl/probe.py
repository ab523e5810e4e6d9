"""Frozen-feature probes on the synthetic cohort: is the encoder learning anatomy/pathology?

A probe task is a set of labelled images with a subject each (for grouped cross-validation), read
from the cohort's ``truth.csv`` files. Volume tasks (``brats_sequence``, ``brain_age``,
``diagnosis``) encode a few central axial slices per volume and average their features. Slice
tasks (``tumour_slice``, ``stroke_slice``) label single axial slices of the central band of each
volume by whether the ground-truth lesion mask crosses them, pooling every MRI sequence of the
subject, so the label is pathology while contrast, pose and slice level vary around it. The
feature of an image is the L2-normalised CLS token (``pooling="cls"``) or that concatenated with
the L2-normalised mean patch token (``"cls+patch"``), taken from the last block or concatenated
over the last ``blocks`` blocks (DINOv2's linear evaluation uses the last 4). The score
is the balanced accuracy of a cosine k-NN (or logistic-regression) classifier under
subject-grouped stratified k-fold cross-validation (no subject in train and test of one fold).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from braindino.errors import ConfigError, DataError
from braindino.eval_mode import evaluating
from braindino.metrics import balanced_accuracy
from braindino.metrics.probe_cv import knn_cv_predictions, logreg_cv_predictions

SEQUENCE_COLUMNS = {"file_T1": "T1", "file_T1c": "T1c", "file_T2": "T2", "file_FLAIR": "FLAIR"}
VOLUME_TASKS = ("brats_sequence", "brain_age", "diagnosis")
# slice task -> the truth.csv column that marks its subjects (glioma or stroke cases)
SLICE_TASKS = {"tumour_slice": "glioma_pattern", "stroke_slice": "lesion_ml"}
POOLINGS = ("cls", "cls+patch")
CLASSIFIERS = ("knn", "logreg")


def _unknown(what: str, value: str, choices: Sequence[str], path: str) -> ConfigError:
    fix = f"use one of {', '.join(choices)}"
    return ConfigError(f"unknown probe {what} '{value}'", path=path, fix=fix)


def check_probe_options(
    pooling: str = "cls", blocks: int = 1, classifier: str = "knn", prefix: str = ""
) -> None:
    """One clear ConfigError for an unknown pooling or classifier or a bad block count
    (``prefix``: where the options live, e.g. ``"probe."`` in the pretrain config)."""
    if pooling not in POOLINGS:
        raise _unknown("pooling", pooling, POOLINGS, f"{prefix}pooling")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ConfigError(
            f"probe blocks must be a positive int, got {blocks!r}",
            path=f"{prefix}blocks",
            fix="use 1 (last block) or e.g. 4 (DINOv2's linear-eval features)",
        )
    if classifier not in CLASSIFIERS:
        raise _unknown("classifier", classifier, CLASSIFIERS, f"{prefix}classifier")


@dataclass(frozen=True)
class ProbeItem:
    """One labelled volume of a probe task."""

    path: Path
    label: str
    subject: str


def _truth_rows(cohort: Path, exclude: Sequence[str] = ()) -> list[tuple[Path, dict[str, str]]]:
    rows = []
    for truth in sorted(cohort.glob("*/truth.csv")):
        if truth.parent.name in ("pretrain_pool", *exclude):
            continue
        with truth.open(newline="", encoding="utf-8") as handle:
            rows += [(truth.parent, row) for row in csv.DictReader(handle)]
    if not rows and exclude:
        raise DataError(
            f"no dataset with a truth.csv is left after excluding {', '.join(exclude)}",
            path=cohort,
            fix="exclude only the datasets that were pretrained on",
        )
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


def probe_items(cohort: str | Path, task: str, exclude: Sequence[str] = ()) -> list[ProbeItem]:
    """The labelled volumes of one probe task.

    ``brats_sequence``: the four MRI sequences of every tumour case (4 classes).
    ``brain_age``: healthy/dementia T1 volumes, age above vs below the cohort median (2 classes).
    ``diagnosis``: ADNI/OASIS-like T1 volumes, cognitively normal vs impaired (MCI/AD) (2 classes).
    Dataset folders named in ``exclude`` (e.g. those used for pretraining) are left out.
    """
    rows = _truth_rows(Path(cohort), exclude)
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
    raise _unknown("task", task, (*VOLUME_TASKS, *SLICE_TASKS), "probe.tasks")


def central_slices(
    path: Path, size: int, count: int, preprocess: Mapping | None = None
) -> np.ndarray:
    """``count`` evenly spaced axial slices from the central half of a preprocessed volume,
    as float32 z-scores ``[count, size, size]``."""
    stack = _preprocess(path, size, preprocess)
    n = len(stack.z)
    picks = np.linspace(n * 0.25, n * 0.75, count).round().astype(int).clip(0, n - 1)
    return stack.slices[picks].astype(np.float32) * stack.scale + stack.offset


def _preprocess(path: Path, size: int, preprocess: Mapping | None):
    from braindino.io import read_volume
    from braindino.preprocess import preprocess_config, preprocess_volume

    overrides = {"slices": {"size": size}, **(dict(preprocess) if preprocess else {})}
    return preprocess_volume(read_volume(path), preprocess_config(overrides))


def _evenly(indices: np.ndarray, count: int) -> np.ndarray:
    if len(indices) <= count:
        return indices
    return indices[np.linspace(0, len(indices) - 1, count).round().astype(int)]


def lesion_slices(
    image: Path,
    mask: Path,
    size: int,
    per_class: int = 4,
    min_fraction: float = 0.002,
    preprocess: Mapping | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled axial slices of one volume: ``(slices [n, size, size] float32 z-scores,
    has_lesion bool [n])``.

    Only the central band (20-80 %) of the volume's slices is used. A slice is positive when
    the mask (any label > 0, resampled like the image) covers at least ``min_fraction`` of its
    pixels, negative when it covers none; at most ``per_class`` evenly spaced slices of each.
    """
    from braindino.io import read_volume
    from braindino.preprocess import volume_to_slices

    stack = _preprocess(image, size, preprocess)
    labels = read_volume(mask, check=False).data > 0
    area = volume_to_slices(labels, stack.z, stack.geometry, order=0).mean(axis=(1, 2))
    n = len(stack.z)
    band = np.arange(n)[int(n * 0.2) : int(np.ceil(n * 0.8))]
    positive = _evenly(band[area[band] >= min_fraction], per_class)
    negative = _evenly(band[area[band] == 0], per_class)
    picks = np.concatenate([positive, negative])
    slices = stack.slices[picks].astype(np.float32) * stack.scale + stack.offset
    return slices, np.arange(len(picks)) < len(positive)


def slice_task(
    cohort: str | Path,
    task: str,
    size: int,
    per_class: int = 4,
    preprocess: Mapping | None = None,
    exclude: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A slice task's ``(images [n, 1, size, size], labels [n], subjects [n])``.

    ``tumour_slice``: slices of every sequence of each glioma case, tumour (any label) vs none.
    ``stroke_slice``: T1 slices of each stroke case, lesion vs none.
    Dataset folders named in ``exclude`` are left out.
    """
    marker = SLICE_TASKS[task]
    images, labels, groups = [], [], []
    for folder, row in _truth_rows(Path(cohort), exclude):
        if not row.get(marker) or not row.get("file_seg"):
            continue
        for column in (c for c in SEQUENCE_COLUMNS if row.get(c)):
            image, mask = folder / row[column], folder / row["file_seg"]
            slices, positive = lesion_slices(image, mask, size, per_class, preprocess=preprocess)
            images.append(slices)
            labels += ["lesion" if p else "clear" for p in positive]
            groups += [f"{folder.name}/{row['subject']}"] * len(positive)
    if not images:
        raise DataError(
            f"probe task '{task}' found no cases with a lesion mask",
            path=cohort,
            fix="generate the cohort with its glioma/stroke datasets (python -m braindino.synth)",
        )
    return np.concatenate(images)[:, None], np.array(labels), np.array(groups)


def _volume_task(cohort, task, size, count, preprocess, exclude, cache):
    items = probe_items(cohort, task, exclude)
    for item in items:
        if item.path not in cache:
            cache[item.path] = central_slices(item.path, size, count, preprocess)
    images = np.stack([cache[item.path] for item in items])
    labels = np.array([item.label for item in items])
    groups = np.array([item.subject for item in items])
    return images, labels, groups


class ProbeSet:
    """The preprocessed images and labels of several probe tasks, built once and reused.

    ``images`` of a task are ``[n, s, size, size]``: n samples of s slices whose features are
    averaged (s = ``slices_per_volume`` for volume tasks, 1 for slice tasks). Dataset folders
    in ``exclude_datasets`` (those whose images were pretrained on) are left out of every task.

    ``labelled``: the user's own classification tasks (task names or YAML files, read through
    ``braindino.tasks`` from ``data_root``, else the synthetic stand-ins in ``cohort``; see
    :mod:`braindino.ssl.task_probe`), scored like the built-in ones under their task names.
    """

    def __init__(
        self,
        cohort: str | Path | None,
        tasks: Sequence[str],
        image_size: int,
        slices_per_volume: int = 3,
        preprocess: Mapping | None = None,
        pooling: str = "cls",
        blocks: int = 1,
        slices_per_class: int = 4,
        exclude_datasets: Sequence[str] = (),
        labelled: Sequence[str] = (),
        data_root: str | Path | None = None,
        encoder: torch.nn.Module | None = None,
    ):
        from braindino.ssl.task_probe import labelled_task_data

        check_probe_options(pooling=pooling, blocks=blocks)
        if tasks and cohort is None:
            raise ConfigError(
                f"the built-in probe tasks {', '.join(tasks)} need the synthetic cohort",
                path="probe.cohort",
                fix="give the cohort folder (python -m braindino.synth --out DIR), or set "
                "probe.tasks=[] and probe only on probe.labelled tasks",
            )
        self.pooling = pooling
        self.blocks = blocks
        self.tasks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        cache: dict[Path, np.ndarray] = {}
        for task in tasks:
            if task in SLICE_TASKS:
                data = slice_task(
                    cohort, task, image_size, slices_per_class, preprocess, exclude_datasets
                )
            else:
                data = _volume_task(
                    cohort, task, image_size, slices_per_volume, preprocess, exclude_datasets, cache
                )
            self._check_size(task, data[1], cohort)
            self.tasks[task] = data
        for spec in labelled:
            name, data = labelled_task_data(
                spec, encoder, image_size, slices_per_volume, data_root, cohort
            )
            self._check_size(name, data[1], data_root or cohort)
            self.tasks[name] = data

    @staticmethod
    def _check_size(task: str, labels: np.ndarray, where) -> None:
        if len(labels) < 10 or len(set(labels)) < 2:
            raise DataError(
                f"probe task '{task}' has only {len(labels)} samples in {len(set(labels))} classes",
                path=str(where),
                fix="use a larger cohort or dataset, or drop the task from probe.tasks / "
                "probe.labelled",
            )

    @torch.no_grad()
    def features(self, backbone: torch.nn.Module, task: str, batch: int = 64) -> np.ndarray:
        """Per-sample features: the mean over its slices of the pooled, normed tokens (of the
        last ``blocks`` blocks, concatenated)."""
        normalize = torch.nn.functional.normalize
        images = self.tasks[task][0]
        n, s, size = images.shape[:3]
        flat = torch.from_numpy(images.reshape(n * s, 1, size, size))
        device = next(backbone.parameters()).device
        out = []
        with evaluating(backbone):
            for start in range(0, len(flat), batch):
                x = flat[start : start + batch].to(device)
                if self.blocks == 1:
                    layers = [backbone.forward_features(x)]
                else:
                    layers = backbone.get_intermediate_layers(x, self.blocks)
                parts = []
                for tokens in layers:
                    parts.append(normalize(tokens["cls"].float(), dim=-1))
                    if self.pooling == "cls+patch":
                        parts.append(normalize(tokens["patches"].float().mean(1), dim=-1))
                out.append(torch.cat(parts, dim=-1).cpu())
        return torch.cat(out).view(n, s, -1).mean(1).numpy()

    def evaluate(
        self, backbone: torch.nn.Module, k: int = 5, folds: int = 5, classifier: str = "knn"
    ) -> dict[str, float]:
        """Balanced accuracy per task of a ``knn`` or ``logreg`` probe (subject-grouped CV)."""
        predictions = self.predictions(backbone, k, folds, classifier)
        return {task: balanced_accuracy(y, p) for task, (y, p, _) in predictions.items()}

    def predictions(
        self, backbone: torch.nn.Module, k: int = 5, folds: int = 5, classifier: str = "logreg"
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per task ``(labels, out-of-fold predictions, groups)`` of the probe that
        :meth:`evaluate` scores (same folds), for per-subject intervals and paired tests."""
        check_probe_options(classifier=classifier)
        out = {}
        for task, (_, labels, groups) in self.tasks.items():
            x = self.features(backbone, task)
            if classifier == "knn":
                predicted = knn_cv_predictions(x, labels, groups, k=k, folds=folds)
            else:
                predicted = logreg_cv_predictions(x, labels, groups, folds=folds)
            out[task] = (labels, predicted, groups)
        return out
