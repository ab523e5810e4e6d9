"""Comparing two encoders on the same test subjects: the paired difference of a metric with a
paired-bootstrap interval, and McNemar's exact test on per-subject correctness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest

from braindino.metrics._inputs import require, same_length, vector
from braindino.metrics.bootstrap import bootstrap_ci


def paired_difference(
    metric_fn: Callable[..., float],
    first: Sequence[Any],
    second: Sequence[Any],
    n: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(difference, low, high)`` of ``metric_fn(*first) − metric_fn(*second)``, the two
    argument lists holding one row per subject for the **same** subjects in the same order; the
    95 % interval resamples subjects, the same rows for both (a paired bootstrap)."""
    require(
        len(first) == len(second) and len(first) >= 1,
        "paired_difference(second)",
        f"takes {len(second)} arrays against {len(first)}",
        "pass the same metric arguments for both encoders",
    )
    k = len(first)

    def difference(*arrays: np.ndarray) -> float:
        return float(metric_fn(*arrays[:k])) - float(metric_fn(*arrays[k:]))

    return bootstrap_ci(difference, *first, *second, n=n, seed=seed)


def mcnemar_p(first_correct: Any, second_correct: Any) -> float:
    """McNemar's exact two-sided p-value for two classifiers scored on the same subjects:
    a binomial test of the discordant pairs (first right and second wrong, and the reverse)
    against an even split; 1.0 when there is no discordant pair."""
    a = vector(first_correct, "mcnemar_p(first_correct)").astype(bool)
    b = vector(second_correct, "mcnemar_p(second_correct)").astype(bool)
    same_length("mcnemar_p", first_correct=a, second_correct=b)
    only_first, only_second = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_first + only_second == 0:
        return 1.0
    return float(binomtest(only_first, only_first + only_second, 0.5).pvalue)
