"""Classification metrics: macro one-vs-rest AUC and balanced accuracy (scikit-learn)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from braindino.metrics._inputs import finite, require, same_length, to_numpy, vector


def _class_labels(y_true: Any, n_classes: int, where: str) -> np.ndarray:
    labels = vector(y_true, where)
    require(
        bool(np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < n_classes),
        where,
        f"labels must be integers in 0..{n_classes - 1} (one column of proba per class)",
        "encode classes as 0..C-1 in the order of the probability columns",
    )
    return labels.astype(np.int64)


def _scores(proba: Any, where: str, probabilities: bool = False) -> np.ndarray:
    scores = to_numpy(proba).astype(np.float64)
    if scores.ndim == 1:
        return np.stack([-scores, scores], axis=1)  # binary: any score of class 1 ranks
    require(
        scores.ndim == 2 and scores.shape[1] >= 2 and scores.shape[0] >= 1,
        where,
        f"expected [N] positive-class scores or [N, C] class scores, got shape {scores.shape}",
        "pass softmax probabilities (or logits) with one column per class",
    )
    finite(scores, where, "check the model outputs before scoring")
    if probabilities:
        require(
            bool(np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)),
            where,
            "rows are not class probabilities (each must be >= 0 and sum to 1); one-vs-rest AUC "
            "on raw logits would rank each class differently",
            "apply softmax to the logits first",
        )
    return scores


def macro_auc(y_true: Any, proba: Any) -> float:
    """Macro-averaged one-vs-rest ROC AUC.

    ``proba`` is ``[N, C]`` class probabilities (rows sum to 1, e.g. softmax of the logits) or,
    for two classes, ``[N]`` scores of class 1 (any monotone score: probability or logit).
    ``y_true`` holds integers 0..C-1. For two classes this is the plain binary AUC of class 1;
    for more it is the mean over classes of the AUC of "class c vs the rest" (scikit-learn's
    ``multi_class="ovr", average="macro"``). Undefined — returns NaN — when some class has no
    sample in ``y_true`` (e.g. a bootstrap resample); :func:`bootstrap_ci` skips those.
    """
    scores = _scores(proba, "macro_auc(proba)", probabilities=to_numpy(proba).ndim == 2)
    labels = _class_labels(y_true, scores.shape[1], "macro_auc(y_true)")
    same_length("macro_auc", y_true=labels, proba=scores)
    n_classes = scores.shape[1]
    if np.unique(labels).size < n_classes:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(labels, scores[:, 1]))
    per_class = [roc_auc_score(labels == c, scores[:, c]) for c in range(n_classes)]
    return float(np.mean(per_class))


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes present in ``y_true`` (scikit-learn's balanced accuracy).

    ``y_pred`` is predicted labels ``[N]`` or class scores ``[N, C]`` (argmax taken).
    """
    predicted = to_numpy(y_pred)
    if predicted.ndim == 2:
        predicted = _scores(predicted, "balanced_accuracy(y_pred)").argmax(axis=1)
    predicted = vector(predicted, "balanced_accuracy(y_pred)", numeric=False)
    truth = vector(y_true, "balanced_accuracy(y_true)", numeric=False)
    same_length("balanced_accuracy", y_true=truth, y_pred=predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        return float(balanced_accuracy_score(truth, predicted))
