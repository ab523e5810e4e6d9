"""Overlay figures of a segmentation: input slice, ground truth and prediction side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

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
            ax.imshow(
                shown - 1,
                cmap=colours,
                vmin=0,
                vmax=max(1, len(values)) - 1,
                alpha=0.55,
                interpolation="nearest",
            )
        ax.set_title(f"{name} (z={z})", fontsize=9)
        ax.axis("off")
    handles = [
        Patch(color=COLOURS[i], label=f"{v} {names[i] if i < len(names) else ''}".strip())
        for i, v in enumerate(values)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
