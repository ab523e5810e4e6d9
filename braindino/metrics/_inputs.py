"""Input conversion and checks shared by the metric functions (numpy or tensors in)."""

from __future__ import annotations

from typing import Any

import numpy as np

from braindino.errors import BrainDinoError


def require(ok: bool, where: str, problem: str, fix: str) -> None:
    """Raise one ``BrainDinoError`` naming ``where`` (function and argument) unless ``ok``."""
    if not ok:
        raise BrainDinoError(problem, path=where, fix=fix)


def to_numpy(values: Any) -> np.ndarray:
    """A numpy array from a list, array or (CPU/GPU, grad or not) torch tensor."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def finite(array: np.ndarray, where: str, fix: str) -> np.ndarray:
    """``array`` unchanged when it holds no NaN or infinity; else one ``BrainDinoError``."""
    require(bool(np.all(np.isfinite(array))), where, "contains NaN or infinite values", fix)
    return array


def vector(values: Any, where: str, numeric: bool = True) -> np.ndarray:
    """A non-empty 1-D array (float64 and finite when ``numeric``)."""
    array = to_numpy(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    require(
        array.ndim == 1 and array.size >= 1,
        where,
        f"expected a non-empty 1-D array, got shape {array.shape}",
        "pass one value per subject",
    )
    if numeric:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            require(False, where, f"holds non-numeric values ({array.dtype})", "pass numbers")
        finite(array, where, "drop those subjects or fix the predictions before scoring")
    return array


def same_length(where: str, **arrays: np.ndarray) -> int:
    """Require every array to have the same first-axis length; return it."""
    lengths = {name: len(array) for name, array in arrays.items()}
    require(
        len(set(lengths.values())) == 1,
        where,
        "arrays of different lengths: "
        + ", ".join(f"{name}={length}" for name, length in lengths.items()),
        "pass one entry per subject in every argument",
    )
    return next(iter(lengths.values()))


def event_flags(event: Any, n: int, where: str) -> np.ndarray:
    """Event indicators as bool ``[n]`` (None → all events observed)."""
    if event is None:
        return np.ones(n, dtype=bool)
    array = vector(event, where)
    require(
        bool(np.all(np.isin(array, (0.0, 1.0)))),
        where,
        "event flags must be 0 (censored) or 1 (event observed)",
        "map the vital-status column to 0/1",
    )
    return array.astype(bool)
