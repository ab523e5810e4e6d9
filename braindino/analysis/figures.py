"""The analysis report's figures (matplotlib, Agg; saved by ``downstream.plots``' writer): each
encoder side by side on the same slices."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from braindino.downstream.plots import _save


def _show(ax, array: np.ndarray, shape: tuple[int, ...], **kwargs) -> None:
    """``array`` (a slice ``[X, Y]`` or a patch map ``[x, y, ...]`` over a slice of ``shape``)
    in neurological convention: the patient's right on the right, anterior up."""
    extent = (-0.5, shape[0] - 0.5, -0.5, shape[1] - 0.5)
    ax.imshow(np.swapaxes(array, 0, 1), origin="lower", extent=extent, **kwargs)
    ax.axis("off")


def _grey(ax, image: np.ndarray, title: str = "") -> None:
    _show(ax, image, image.shape, cmap="gray")
    ax.set_title(title, fontsize=8)


def plot_probes(rows: list[dict], path: Path) -> Path:
    """Balanced accuracy with 95 % intervals per probe x scale, each encoder beside the
    position-only baselines (``rows``: dicts with probe, scale, series (an encoder or a
    baseline), value, low, high)."""
    keys = sorted({(r["probe"], r["scale"]) for r in rows})
    series = list(dict.fromkeys(r["series"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(keys), 3.2))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        for j, key in enumerate(keys):
            found = [r for r in rows if (r["probe"], r["scale"]) == key and r["series"] == name]
            if not found:
                continue
            r, x = found[0], j + i * width
            err = [[r["value"] - r["low"]], [r["high"] - r["value"]]]
            label = name if j == 0 else None
            ax.bar(x, r["value"], width, yerr=err, color=f"C{i}", capsize=2, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"{p}\nx{s}" for p, s in keys], fontsize=8)
    ax.set_ylabel("balanced accuracy (test subjects)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_pca(images: np.ndarray, maps: dict[str, np.ndarray], titles: list[str], path: Path):
    """Rows: slices ``images [n, H, W]``; columns: the slice, then each encoder's PCA colours
    ``[n, h, w, 3]`` over it."""
    n, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.2 * cols, 2.2 * n), squeeze=False)
    for i in range(n):
        _grey(axes[i, 0], images[i], titles[i])
        for j, (label, rgb) in enumerate(maps.items(), start=1):
            _show(axes[i, j], rgb[i], images[i].shape)
            axes[i, j].set_title(f"{label}: PC1-3", fontsize=8)
    return _save(fig, path)


def plot_attention(image: np.ndarray, maps: dict[str, np.ndarray], title: str, path: Path):
    """Rows: encoders; columns: the slice, the mean over heads, then each head
    (``maps[label]``: ``[heads, h, w]``), laid over the slice."""
    heads = max(m.shape[0] for m in maps.values())
    cols = 2 + heads
    fig, axes = plt.subplots(len(maps), cols, figsize=(1.9 * cols, 2.0 * len(maps)), squeeze=False)
    for i, (label, attention) in enumerate(maps.items()):
        _grey(axes[i, 0], image, f"{label}\n{title}")
        panels = [("mean", attention.mean(axis=0))] + [
            (f"head {h}", attention[h]) for h in range(attention.shape[0])
        ]
        for j, (name, values) in enumerate(panels, start=1):
            _grey(axes[i, j], image, name)
            _show(
                axes[i, j], values, image.shape, cmap="inferno", alpha=0.6, interpolation="bilinear"
            )
        for j in range(len(panels) + 1, cols):
            axes[i, j].axis("off")
    return _save(fig, path)


def plot_retrieval(panels: dict[str, list[tuple]], path: Path) -> Path:
    """Per encoder and query: the query slice and its nearest slices of other subjects
    (``panels[label]``: ``[(query image, query title, [(image, title), ...]), ...]``)."""
    rows = [(label, entry) for label, entries in panels.items() for entry in entries]
    cols = 1 + max(len(entry[2]) for _, entry in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.0 * len(rows)), squeeze=False)
    for i, (label, (query, title, hits)) in enumerate(rows):
        _grey(axes[i, 0], query, f"{label}\nquery {title}")
        for j in range(1, cols):
            if j <= len(hits):
                _grey(axes[i, j], hits[j - 1][0], hits[j - 1][1])
            else:
                axes[i, j].axis("off")
    return _save(fig, path)


def plot_embedding(coords: dict[str, dict[str, np.ndarray]], colour: list, name: str, path: Path):
    """Rows: encoders; columns: PCA and t-SNE of the per-volume features, coloured by
    ``colour`` (one value per volume; numbers as a colour scale, others as categories)."""
    methods = list(next(iter(coords.values())))
    fig, axes = plt.subplots(
        len(coords), len(methods), figsize=(3.2 * len(methods), 2.8 * len(coords)), squeeze=False
    )
    numeric = all(isinstance(v, (int, float, np.number)) for v in colour)
    for i, (label, by_method) in enumerate(coords.items()):
        for j, method in enumerate(methods):
            ax, xy = axes[i, j], by_method[method]
            if numeric:
                points = ax.scatter(xy[:, 0], xy[:, 1], c=np.asarray(colour, float), s=18)
                fig.colorbar(points, ax=ax, label=name)
            else:
                for k, value in enumerate(dict.fromkeys(colour)):
                    rows = [c == value for c in colour]
                    ax.scatter(xy[rows, 0], xy[rows, 1], s=18, color=f"C{k}", label=str(value))
                ax.legend(fontsize=6, title=name, title_fontsize=6)
            ax.set_title(f"{label}: {method}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)
