"""Comparing two encoders on the same test subjects: the paired difference of a metric with a
paired-bootstrap interval, McNemar's exact test on per-subject correctness, and DeLong's test
for two correlated ROC AUCs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest, norm, rankdata

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


def _placements(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of one score vector: for each positive, the fraction of
    negatives it outranks (ties count half), and for each negative the fraction of positives
    that outrank it — from midranks, without the ``[positives, negatives]`` comparison table."""
    m, n = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(scores)  # midranks over all subjects
    pos_ranks, neg_ranks = ranks[positive], ranks[~positive]
    v10 = (pos_ranks - rankdata(scores[positive])) / n
    v01 = 1.0 - (neg_ranks - rankdata(scores[~positive])) / m
    return v10, v01


def delong_p(y_true: Any, first_scores: Any, second_scores: Any) -> tuple[float, float, float]:
    """``(auc_first, auc_second, p)``: DeLong, DeLong & Clarke-Pearson's (1988) two-sided test
    that two ROC AUCs measured on the **same** subjects are equal. ``y_true`` holds 0/1 (1 =
    positive) and the scores rank class 1 (probability or logit). The variance of the AUC
    difference comes from the per-subject structural components (their covariance over the
    positives and over the negatives); p is 1.0 when both scorers order every pair alike."""
    y = vector(y_true, "delong_p(y_true)")
    a = vector(first_scores, "delong_p(first_scores)")
    b = vector(second_scores, "delong_p(second_scores)")
    same_length("delong_p", y_true=y, first_scores=a, second_scores=b)
    require(
        bool(np.all((y == 0) | (y == 1))) and 2 <= y.sum() <= len(y) - 2,
        "delong_p(y_true)",
        "needs 0/1 labels with at least two positives and two negatives",
        "pass a two-class task's labels (DeLong compares binary AUCs)",
    )
    positive = y == 1
    (a10, a01), (b10, b01) = _placements(a, positive), _placements(b, positive)
    auc_a, auc_b = float(a10.mean()), float(b10.mean())
    cov10 = np.cov(np.stack([a10, b10]))  # 2 x 2 over positives
    cov01 = np.cov(np.stack([a01, b01]))  # 2 x 2 over negatives
    var = cov10 / len(a10) + cov01 / len(a01)
    spread = var[0, 0] + var[1, 1] - 2 * var[0, 1]
    if not spread > 1e-15:
        return auc_a, auc_b, 1.0
    z = (auc_a - auc_b) / np.sqrt(spread)
    return auc_a, auc_b, float(2 * norm.sf(abs(z)))
