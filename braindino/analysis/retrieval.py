"""Slice retrieval: for a query slice, the most similar slices of *other* subjects by cosine
similarity of CLS tokens."""

from __future__ import annotations

import numpy as np


def nearest_slices(
    queries: np.ndarray,
    query_subjects: np.ndarray,
    bank: np.ndarray,
    bank_subjects: np.ndarray,
    k: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [Q, k], similarities [Q, k])``: per query row of ``queries [Q, D]`` the ``k``
    rows of ``bank [N, D]`` with the highest cosine similarity, best first, leaving out the
    query's own subject (``-1`` / NaN where fewer remain)."""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    similarity = unit(queries) @ unit(bank).T
    same = np.asarray(query_subjects)[:, None] == np.asarray(bank_subjects)[None, :]
    similarity[same] = -np.inf
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(similarity, order, axis=1)
    valid = np.isfinite(best)
    return np.where(valid, order, -1), np.where(valid, best, np.nan)
