"""The run reports' figures (matplotlib, Agg backend): one function per plot, each writes a PNG
(ROC, confusion, scatter, Kaplan-Meier, attention, label curves; segmentation overlays)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from sklearn.metrics import confusion_matrix, roc_curve

from braindino.metrics import KaplanMeierSplit


def _save(fig, path: Path, dpi: int = 100, rect: tuple | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_roc(frame: pd.DataFrame, classes: list[str], path: Path, title: str) -> Path:
    """One-vs-rest ROC curve per class from ``proba_<class>`` columns and ``target``."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    truth = frame["target"].to_numpy(int)
    for index, name in enumerate(classes):
        positives = truth == index
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, frame[f"proba_{name}"].to_numpy())
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_confusion(frame: pd.DataFrame, classes: list[str], path: Path, title: str) -> Path:
    """Confusion matrix (rows: true class, columns: predicted class) with counts."""
    matrix = confusion_matrix(frame["label"], frame["predicted"], labels=classes)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def plot_scatter(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """Predicted against true target with the identity line."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    truth, pred = frame["target"].to_numpy(float), frame["prediction"].to_numpy(float)
    ax.scatter(truth, pred, s=14)
    low, high = min(truth.min(), pred.min()), max(truth.max(), pred.max())
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set(xlabel="true", ylabel="predicted", title=title)
    return _save(fig, path)


def plot_kaplan_meier(split: KaplanMeierSplit, path: Path, title: str) -> Path:
    """High- vs low-risk Kaplan–Meier curves (split at the median risk) with the log-rank p."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in (("high risk", split.high), ("low risk", split.low)):
        ax.step(
            curve.timeline, curve.survival, where="post", label=f"{name} (n={curve.n_subjects})"
        )
        ax.fill_between(curve.timeline, curve.ci_lower, curve.ci_upper, step="post", alpha=0.2)
    ax.set(xlabel="time", ylabel="survival probability", ylim=(0, 1.02))
    ax.set_title(f"{title}\nlog-rank p = {split.logrank_p:.3g}")
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_attention(attention: pd.DataFrame, path: Path, title: str, bins: int = 20) -> Path:
    """Mean attention weight over relative slice position (0 = first, 1 = last), per group."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for group, part in attention.groupby("group", sort=True):
        slot = np.clip(np.digitize(part["position"], edges) - 1, 0, bins - 1)
        mean = pd.Series(part["weight"].to_numpy()).groupby(slot).mean()
        ax.plot(centres[mean.index], mean.to_numpy(), marker=".", label=str(group))
    ax.set(xlabel="relative slice position (inferior → superior)", ylabel="mean attention")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_label_scarcity(summary: pd.DataFrame, metric: str, path: Path, title: str) -> Path:
    """Primary metric (mean ± sd over seeds) against the label fraction, one line per encoder."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for encoder, part in summary.groupby("encoder", sort=False):
        part = part.sort_values("fraction")
        ax.errorbar(
            part["fraction"],
            part["mean"],
            yerr=part["std"].fillna(0),
            marker="o",
            capsize=3,
            label=str(encoder),
        )
    ax.set_xscale("log")
    ax.set(xlabel="fraction of training labels", ylabel=metric, title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_knn(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """k-NN accuracy against k, one line per encoder (full labels, mean over seeds)."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for encoder, part in summary.groupby("encoder", sort=False):
        ax.plot(part["k"], part["mean"], marker="o", label=str(encoder))
    ax.set_xscale("log")
    ax.set(xlabel="k", ylabel="k-NN accuracy", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


COLOURS = ["#e41a1c", "#4daf4a", "#ffd92f", "#377eb8", "#984ea3", "#ff7f00"]


def overlay_slice(truth: np.ndarray, predicted: np.ndarray) -> int:
    """The axial index (axis 2) with the most ground-truth voxels (else predicted, else the
    middle)."""
    for mask in (truth > 0, predicted > 0):
        counts = mask.sum(axis=(0, 1))
        if counts.any():
            return int(np.argmax(counts))
    return truth.shape[2] // 2


def plot_overlay(
    image: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    values: tuple[int, ...],
    path: Path,
    title: str,
    names: tuple[str, ...] = (),
) -> Path:
    """Three panels of one axial slice (canonical RAS arrays, shown with anterior up and the
    subject's right on the right, neurological style): input, truth and prediction overlays,
    one colour per label value (legend: ``values`` with their ``names``)."""
    z = overlay_slice(truth, predicted)
    show = lambda a: np.rot90(a[:, :, z])  # noqa: E731 - rows: A -> up, columns: R -> right
    colours = ListedColormap(COLOURS[: max(1, len(values))])
    overlay = {"cmap": colours, "vmin": 0, "vmax": max(1, len(values)) - 1, "alpha": 0.55}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (name, labels) in zip(
        axes, (("input", None), ("truth", truth), ("prediction", predicted))
    ):
        ax.imshow(show(image), cmap="gray")
        if labels is not None:
            index = np.zeros(labels.shape, float)
            for i, v in enumerate(values):
                index[labels == v] = i + 1
            shown = np.ma.masked_equal(show(index), 0)
            ax.imshow(shown - 1, interpolation="nearest", **overlay)
        ax.set_title(f"{name} (z={z})", fontsize=9)
        ax.axis("off")
    handles = [
        Patch(color=COLOURS[i], label=f"{v} {names[i] if i < len(names) else ''}".strip())
        for i, v in enumerate(values)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi=90, rect=(0, 0.06, 1, 1))
