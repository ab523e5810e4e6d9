"""Smooth random fields, evaluated cheaply as a tensor product of 1D Gaussian bumps.

A field is ``sum_abc C[a,b,c] Bx[:, a] By[:, b] Bz[:, c]`` with random coefficients and bumps
spaced at the correlation length, so a whole 2 mm brain costs three small matrix products
instead of a 3D convolution. Used for deformations, bias fields, lesion shapes and WMH blobs.
"""

from __future__ import annotations

import numpy as np


def _bumps(n_voxels: int, spacing_mm: float, correlation_mm: float) -> np.ndarray:
    """(n_voxels, K) Gaussian bumps of width ``correlation_mm`` covering the axis with margin."""
    extent = n_voxels * spacing_mm
    step = max(correlation_mm, spacing_mm)
    centres = np.arange(-step, extent + 2 * step, step)
    pos = (np.arange(n_voxels) + 0.5) * spacing_mm
    return np.exp(-0.5 * ((pos[:, None] - centres[None, :]) / step) ** 2).astype(np.float32)


def smooth_field(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing_mm: float,
    correlation_mm: float,
    channels: int = 1,
) -> np.ndarray:
    """``channels`` independent smooth fields on ``shape``, each of zero mean and unit SD.

    Returns float32 of shape ``(channels, *shape)``. Values vary over about ``correlation_mm``.
    """
    bx, by, bz = (_bumps(n, spacing_mm, correlation_mm) for n in shape)
    coef = rng.standard_normal((channels, bx.shape[1], by.shape[1], bz.shape[1])).astype(np.float32)
    out = np.empty((channels, *shape), dtype=np.float32)
    for c in range(channels):
        part = np.tensordot(bx, coef[c], axes=([1], [0]))  # (X, Ky, Kz)
        part = np.tensordot(part, by, axes=([1], [1]))  # (X, Kz, Y)
        part = np.tensordot(part, bz, axes=([1], [1]))  # (X, Y, Z)
        part -= part.mean()
        part /= max(float(part.std()), 1e-6)
        out[c] = part
    return out
