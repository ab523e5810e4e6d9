"""Percentile bootstrap confidence intervals, resampling subjects with replacement."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from braindino.metrics._inputs import require, to_numpy


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Any,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(point, low, high)``: the metric on all subjects and its (1 − alpha) percentile interval.

    Every array holds one row per subject; each of the ``n`` resamples draws subjects with
    replacement (the same rows from every array) and recomputes ``metric_fn(*arrays)``.
    Resamples where the metric is undefined — it returns NaN (e.g. one class left for an AUC,
    no events for a C-index) or raises ``ValueError``/``ZeroDivisionError`` — are skipped; a
    warning says so when more than half are. The point estimate must be defined. Seeded, so
    a rerun gives the same interval.
    """
    require(
        callable(metric_fn),
        "bootstrap_ci(metric_fn)",
        "is not callable",
        "pass a function such as braindino.metrics.macro_auc",
    )
    require(
        isinstance(n, int) and n >= 1,
        "bootstrap_ci(n)",
        f"must be an integer >= 1, got {n!r}",
        "use e.g. n=1000",
    )
    require(
        isinstance(alpha, (int, float)) and 0 < alpha < 1,
        "bootstrap_ci(alpha)",
        f"must be in (0, 1), got {alpha!r}",
        "use alpha=0.05 for a 95 % interval",
    )
    require(len(arrays) >= 1, "bootstrap_ci(arrays)", "none given", "pass the metric's inputs")
    data = [to_numpy(array) for array in arrays]
    lengths = {len(array) for array in data}
    require(
        len(lengths) == 1 and data[0].ndim >= 1 and len(data[0]) >= 1,
        "bootstrap_ci(arrays)",
        f"need non-empty arrays of one length (one row per subject), got lengths "
        f"{[len(array) for array in data]}",
        "pass aligned per-subject arrays",
    )
    size = len(data[0])
    point = float(metric_fn(*data))
    require(
        math.isfinite(point),
        f"bootstrap_ci({getattr(metric_fn, '__name__', 'metric_fn')})",
        f"the metric is undefined on the full data ({point})",
        "check the inputs: e.g. every class present for AUC, at least one event for a C-index",
    )
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        rows = rng.integers(0, size, size)
        try:
            value = float(metric_fn(*(array[rows] for array in data)))
        except (ValueError, ZeroDivisionError):
            continue
        if math.isfinite(value):
            values.append(value)
    require(
        len(values) > 0,
        "bootstrap_ci(arrays)",
        f"the metric is undefined on all {n} resamples",
        "use more subjects (e.g. more of each class or more events)",
    )
    if len(values) < n / 2:
        warnings.warn(
            f"bootstrap_ci: only {len(values)} of {n} resamples gave a defined metric",
            stacklevel=2,
        )
    low, high = np.quantile(np.asarray(values), [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)
