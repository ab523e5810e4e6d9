"""``dense_probe``: a linear read-out of frozen patch tokens, one label per patch, trained on
some subjects and scored on others, beside the position-only baseline it must beat.

Slices of one template space can be labelled from the grid position alone, so every slice is
padded by ``shift`` patches on each side and placed at a random whole-patch offset (the same
offsets for every encoder); the position baseline (logistic regression on the one-hot patch
cell) is reported on the shifted slices the probe sees and on the unshifted ones, which shows how
much position alone would give away. Scores: balanced accuracy over test patches, with a 95 %
bootstrap interval over test subjects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from braindino.analysis.cases import LabelledCase
from braindino.analysis.patches import foreground_patches, patch_labels, place, resize_slices
from braindino.analysis.tokens import patch_tokens
from braindino.errors import ConfigError, DataError
from braindino.metrics import balanced_accuracy
from braindino.metrics.bootstrap import bootstrap_ci


@dataclass
class DenseProbeResult:
    """A dense probe's scores and test predictions. ``balanced_accuracy``,
    ``position_baseline`` (shifted slices, what the probe sees) and ``position_unshifted`` are
    ``(point, low, high)``; ``y_true``/``y_pred``/``test_subject`` hold one entry per test patch
    (``test_subject`` indexes ``test_subjects``)."""

    classes: list[str]
    scale: int
    shift: int
    grid: tuple[int, int]
    train_subjects: list[str]
    test_subjects: list[str]
    n_train_patches: int
    balanced_accuracy: tuple[float, float, float]
    position_baseline: tuple[float, float, float]
    position_unshifted: tuple[float, float, float]
    class_counts: dict[str, int] = field(default_factory=dict)
    y_true: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    y_pred: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    test_subject: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def same_test_patches(self, other: DenseProbeResult) -> bool:
        """Whether ``other`` was scored on the same test patches (same subjects, labels, order):
        an encoder of another patch size or grid is not."""
        return (
            (self.grid, self.scale, self.shift) == (other.grid, other.scale, other.shift)
            and self.test_subjects == other.test_subjects
            and np.array_equal(self.y_true, other.y_true)
            and np.array_equal(self.test_subject, other.test_subject)
        )

    def recall(self) -> dict[str, float]:
        """Per class present among the test patches: the share of its patches predicted as it
        (the per-class terms whose mean is the balanced accuracy)."""
        return {
            name: float(np.mean(self.y_pred[self.y_true == c] == c))
            for c, name in enumerate(self.classes)
            if np.any(self.y_true == c)
        }

    def as_dict(self) -> dict:
        """JSON-ready summary (no per-patch arrays)."""

        def ci(value):
            return {"value": value[0], "low": value[1], "high": value[2]}

        return {
            "classes": self.classes,
            "scale": self.scale,
            "shift_patches": self.shift,
            "grid": list(self.grid),
            "train_subjects": self.train_subjects,
            "test_subjects": self.test_subjects,
            "train_patches": self.n_train_patches,
            "test_patches": len(self.y_true),
            "test_class_counts": self.class_counts,
            "test_recall": self.recall(),
            "balanced_accuracy": ci(self.balanced_accuracy),
            "position_baseline": ci(self.position_baseline),
            "position_baseline_unshifted": ci(self.position_unshifted),
        }


def split_subjects(subjects: Sequence[str], train_fraction: float, seed: int):
    """Subjects into (train, test) at random (``seed``), at least one on each side."""
    unique = sorted(set(subjects))
    if len(unique) < 2:
        raise DataError(
            f"a dense probe needs at least 2 subjects, got {len(unique)}",
            path="cases",
            fix="give more subjects (e.g. --probe-subjects 12)",
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train = min(max(1, round(train_fraction * len(unique))), len(unique) - 1)
    return sorted(unique[i] for i in order[:n_train]), sorted(unique[i] for i in order[n_train:])


def _one_hot(cells: np.ndarray, n_cells: int) -> sparse.csr_matrix:
    rows = np.arange(len(cells))
    return sparse.csr_matrix((np.ones(len(cells)), (rows, cells)), shape=(len(cells), n_cells))


def _logreg(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000, class_weight="balanced")


def _subject_bootstrap(metric_of_rows, groups, n_groups, bootstrap: int, seed: int):
    """``bootstrap_ci`` of ``metric_of_rows(rows)`` resampling subjects (``groups`` per row)."""
    members = [np.flatnonzero(groups == g) for g in range(n_groups)]

    def metric(ids: np.ndarray) -> float:
        return metric_of_rows(np.concatenate([members[int(i)] for i in ids]))

    return bootstrap_ci(metric, np.arange(n_groups), n=bootstrap, seed=seed)


def paired_probe_difference(
    first: DenseProbeResult, second: DenseProbeResult, bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """``(difference, low, high)``: ``first``'s balanced accuracy minus ``second``'s on the same
    test patches, with a 95 % paired bootstrap interval that resamples test subjects (the same
    subjects for both). Both must come from the same cases, split and seed."""
    if not first.same_test_patches(second):
        raise ValueError(
            "paired_probe_difference: the two results were not scored on the same patches"
        )
    truth = first.y_true

    def difference(rows: np.ndarray) -> float:
        return balanced_accuracy(truth[rows], first.y_pred[rows]) - balanced_accuracy(
            truth[rows], second.y_pred[rows]
        )

    return _subject_bootstrap(
        difference, first.test_subject, len(first.test_subjects), bootstrap, seed
    )


def _case_rows(
    encoder: nn.Module,
    case: LabelledCase,
    n_classes: int,
    scale: int,
    margin: int,
    rule: str,
    rng: np.random.Generator,
    batch_size: int,
) -> dict:
    """One case's patches as probe rows: token ``x``, class ``y``, patch cell on the shifted
    canvas (``cell``) and unshifted (``cell0``), ``foreground``; and the canvas ``grid``."""
    patch = int(encoder.patch_size[0])
    images, labels = resize_slices(case.images, case.labels, scale)
    per_patch = patch_labels(labels, patch, n_classes, rule)
    s, h, w = per_patch.shape
    grid = (h + 2 * margin, w + 2 * margin)
    offsets = rng.integers(0, 2 * margin + 1, size=(s, 2))
    canvas = np.stack(
        [
            place(image, (dy * patch, dx * patch), margin * patch, image.min())
            for image, (dy, dx) in zip(images, offsets)
        ]
    )
    rows = np.arange(h)[None, :, None] + offsets[:, 0, None, None]  # [s, h, 1] on the canvas
    cols = np.arange(w)[None, None, :] + offsets[:, 1, None, None]  # [s, 1, w]
    tokens = patch_tokens(encoder, canvas, batch_size)["patches"]
    unshifted = (np.arange(h)[:, None] + margin) * grid[1] + np.arange(w)[None, :] + margin
    return {
        "x": tokens[np.arange(s)[:, None, None], rows, cols].reshape(s * h * w, -1),
        "y": per_patch.reshape(-1).astype(np.int64),
        "cell": (rows * grid[1] + cols).reshape(-1),
        "cell0": np.broadcast_to(unshifted, (s, h, w)).reshape(-1),
        "foreground": foreground_patches(images, patch).reshape(-1),
        "grid": grid,
    }


def dense_probe(
    encoder: nn.Module,
    cases: Sequence[LabelledCase],
    classes: Sequence[str],
    *,
    scale: int = 1,
    shift: int = 2,
    rule: str = "majority",
    foreground_only: bool = False,
    train_fraction: float = 0.5,
    c: float = 0.1,
    max_train_patches: int = 20000,
    bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 16,
) -> DenseProbeResult:
    """Linear probe of ``encoder``'s patch tokens for the per-patch class of ``cases``.

    Args:
        encoder: a ``MaskableViT`` (frozen; run in eval mode).
        cases: labelled slices (``analysis.labelled_case``); labels index ``classes``.
        classes: class names, index 0 the background / no-structure class.
        scale: integer factor the slices are enlarged by before encoding (a patch then covers
            ``1 / scale`` of the anatomy it covers at scale 1).
        shift: slices are padded by ``shift * scale`` patches per side and placed at a random
            whole-patch offset (seeded per case by ``seed``: the same for every encoder); 0: off.
        rule: patch label = ``majority`` class of its pixels or its ``centre`` pixel's class.
        foreground_only: score only patches that are mostly image foreground
            (:func:`foreground_patches`), e.g. brain patches of skull-stripped images.
        train_fraction: share of subjects the probe trains on (seeded); the others are tested.
        c: inverse L2 strength of the standardised logistic regression (class-balanced).
        max_train_patches: training patches drawn at random (seeded) when there are more.
        bootstrap: resamples of the test subjects for the 95 % intervals.
        seed: the split, shifts, training subsample and bootstrap seed.
        batch_size: slices per forward pass.
    """
    if not isinstance(scale, int) or scale < 1 or shift < 0:
        raise ConfigError(
            f"scale must be an int >= 1 and shift >= 0, got {scale!r}, {shift!r}",
            path="dense_probe",
            fix="use e.g. scale=2, shift=2",
        )
    train, test = split_subjects([case.subject for case in cases], train_fraction, seed)
    rng = np.random.default_rng([seed, 1])
    parts: dict[str, list] = {k: [] for k in ("x", "y", "cell", "cell0", "group", "train")}
    margin = shift * scale
    grid = (0, 0)
    for case in cases:
        rows = _case_rows(encoder, case, len(classes), scale, margin, rule, rng, batch_size)
        grid = rows.pop("grid")
        foreground = rows.pop("foreground")
        keep = foreground if foreground_only else slice(None)
        for key, value in rows.items():
            parts[key].append(value[keep])
        in_train = case.subject in train
        group = train.index(case.subject) if in_train else test.index(case.subject)
        parts["group"].append(np.full(len(parts["y"][-1]), group))
        parts["train"].append(np.full(len(parts["y"][-1]), in_train))
    x, y, cell, cell0, group, is_train = (
        np.concatenate(parts[k]) for k in ("x", "y", "cell", "cell0", "group", "train")
    )
    train_rows = np.flatnonzero(is_train)
    if len(train_rows) > max_train_patches:
        train_rows = np.sort(rng.choice(train_rows, max_train_patches, replace=False))
    test_rows = np.flatnonzero(~is_train)
    if len(np.unique(y[train_rows])) < 2 or len(test_rows) == 0:
        raise DataError(
            "the training patches hold fewer than 2 classes (or no test patch is left)",
            path="cases",
            fix="give more subjects or slices holding the structures",
        )
    probe = make_pipeline(StandardScaler(), _logreg(c)).fit(x[train_rows], y[train_rows])
    predicted = probe.predict(x[test_rows])
    n_cells = grid[0] * grid[1]
    baselines = []
    for cells_used in (cell, cell0):
        position = _logreg(c).fit(_one_hot(cells_used[train_rows], n_cells), y[train_rows])
        baselines.append(position.predict(_one_hot(cells_used[test_rows], n_cells)))
    y_test, g_test = y[test_rows], group[test_rows]

    def score(pred):
        def metric(rows):
            return balanced_accuracy(y_test[rows], pred[rows])

        return _subject_bootstrap(metric, g_test, len(test), bootstrap, seed)

    counts = np.bincount(y_test, minlength=len(classes))
    return DenseProbeResult(
        classes=list(classes),
        scale=scale,
        shift=shift,
        grid=grid,
        train_subjects=train,
        test_subjects=test,
        n_train_patches=len(train_rows),
        balanced_accuracy=score(predicted),
        position_baseline=score(baselines[0]),
        position_unshifted=score(baselines[1]),
        class_counts={name: int(n) for name, n in zip(classes, counts)},
        y_true=y_test,
        y_pred=predicted,
        test_subject=g_test,
    )
