"""Regression metrics: MAE, RMSE, R² (scikit-learn) and Pearson r (SciPy)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from braindino.metrics._inputs import same_length, vector


def _pair(y_true: Any, y_pred: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    truth = vector(y_true, f"{name}(y_true)")
    predicted = vector(y_pred, f"{name}(y_pred)")
    same_length(name, y_true=truth, y_pred=predicted)
    return truth, predicted


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in the targets' units."""
    return float(mean_absolute_error(*_pair(y_true, y_pred, "mae")))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the targets' units."""
    return float(np.sqrt(mean_squared_error(*_pair(y_true, y_pred, "rmse"))))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination 1 − SS_res/SS_tot; NaN when ``y_true`` is constant."""
    truth, predicted = _pair(y_true, y_pred, "r2")
    if truth.size < 2 or np.all(truth == truth[0]):
        return float("nan")
    return float(r2_score(truth, predicted))


def pearson_r(y_true: Any, y_pred: Any) -> float:
    """Pearson correlation; NaN when fewer than 2 subjects or either side is constant."""
    truth, predicted = _pair(y_true, y_pred, "pearson_r")
    if truth.size < 2 or np.all(truth == truth[0]) or np.all(predicted == predicted[0]):
        return float("nan")
    return float(pearsonr(truth, predicted).statistic)
