"""Embedding maps: per-volume features in two dimensions, by PCA and by t-SNE (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

from braindino.analysis.pca_map import principal_components


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``features [V, D]`` -> ``[V, 2]``: the first two principal components (``pca``) or a
    t-SNE (``tsne``; PCA initialisation, perplexity ``min(30, (V - 1) / 3)``, seeded)."""
    x = np.asarray(features, np.float64)
    if method == "pca":
        mean, components = principal_components(x, 2)
        out = (x - mean) @ components.T
        return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if method == "tsne":
        perplexity = max(1.0, min(30.0, (len(x) - 1) / 3))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(x)
    raise ValueError(f"unknown embedding method {method!r} (pca or tsne)")
