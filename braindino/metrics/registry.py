"""Metric functions by the names task configs use (``metric:`` / ``metrics:`` keys)."""

from __future__ import annotations

from collections.abc import Callable

from braindino.errors import ConfigError
from braindino.metrics.classification import balanced_accuracy, macro_auc
from braindino.metrics.knn import knn_accuracy
from braindino.metrics.regression import mae, pearson_r, r2, rmse
from braindino.metrics.segmentation import dice, hd95
from braindino.metrics.survival import concordance_index, logrank_p

METRICS: dict[str, Callable[..., object]] = {
    "macro_auc": macro_auc,  # (y_true, proba)
    "balanced_accuracy": balanced_accuracy,  # (y_true, y_pred or proba)
    "mae": mae,  # (y_true, y_pred), likewise rmse, r2, pearson_r
    "rmse": rmse,
    "r2": r2,
    "pearson_r": pearson_r,
    "c_index": concordance_index,  # (time, risk, event)
    "concordance_index": concordance_index,
    "logrank_p": logrank_p,  # (time, risk, event)
    "knn_accuracy": knn_accuracy,  # (train_x, train_y, test_x, test_y, ks)
    "dice": dice,  # (pred, target)
    "hd95": hd95,  # (pred, target, spacing)
}

HIGHER_IS_BETTER = {
    "macro_auc": True,
    "balanced_accuracy": True,
    "mae": False,
    "rmse": False,
    "r2": True,
    "pearson_r": True,
    "c_index": True,
    "concordance_index": True,
    "logrank_p": False,
    "knn_accuracy": True,
    "dice": True,
    "hd95": False,
}


def get_metric(name: str) -> Callable[..., object]:
    """The metric function called ``name`` (e.g. ``"macro_auc"``, ``"c_index"``)."""
    if name not in METRICS:
        raise ConfigError(
            f"unknown metric {name!r}",
            path="metric",
            fix=f"use one of {', '.join(sorted(METRICS))}",
        )
    return METRICS[name]
