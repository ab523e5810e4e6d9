"""PCA maps: the first principal components of patch tokens as the colour of each patch.

The components are fitted on the foreground patches of the slices shown (float64 SVD of the
centred tokens); each component is scaled to [0, 1] between its 1st and 99th percentile over
those patches, and background patches are black.
"""

from __future__ import annotations

import numpy as np


def principal_components(x: np.ndarray, count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(mean [D], components [count, D])`` of rows ``x [N, D]`` (float64 SVD of the centred
    rows; each component's sign fixed so that its largest-magnitude loading is positive)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:count]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    return mean, components * signs[:, None]


def pca_rgb(patches: np.ndarray, foreground: np.ndarray, count: int = 3) -> np.ndarray:
    """Patch tokens ``[S, h, w, D]`` -> colours ``[S, h, w, count]`` in [0, 1]: the first
    ``count`` principal components fitted on the ``foreground`` patches ``[S, h, w]`` (bool),
    each scaled between its 1st and 99th percentile there; background patches are 0."""
    rows = patches[foreground]
    mean, components = principal_components(rows, count)
    scores = (patches.reshape(-1, patches.shape[-1]) - mean) @ components.T
    low, high = np.percentile(scores[foreground.reshape(-1)], [1, 99], axis=0)
    colours = np.clip((scores - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
    colours[~foreground.reshape(-1)] = 0.0
    return colours.reshape(*patches.shape[:-1], count).astype(np.float32)
