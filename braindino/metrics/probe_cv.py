"""Grouped cross-validated probe scores of frozen features: cosine k-NN and standardised L2
logistic regression, balanced accuracy over subject-grouped stratified folds (scikit-learn).

These are the periodic probes of pretraining; one subject's samples never sit on both sides of
a fold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def grouped_cv_predictions(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    folds: int,
    make_model: Callable[[int], object],
) -> np.ndarray:
    """Out-of-fold predictions of ``make_model(n_train)`` under subject-grouped stratified
    ``folds``-fold CV (shuffled, seed 0)."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    predictions = np.empty(len(labels), dtype=labels.dtype)
    for train, test in splitter.split(features, labels, groups):
        model = make_model(len(train)).fit(features[train], labels[train])  # type: ignore[attr-defined]
        predictions[test] = model.predict(features[test])
    return predictions


def knn_cv_predictions(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 5, folds: int = 5
) -> np.ndarray:
    """Out-of-fold predictions of cosine k-NN under subject-grouped stratified CV (seed 0)."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    return grouped_cv_predictions(
        x,
        labels,
        groups,
        folds,
        lambda n: KNeighborsClassifier(n_neighbors=min(k, n), metric="cosine"),
    )


def logreg_cv_predictions(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5, c: float = 0.1
) -> np.ndarray:
    """Out-of-fold predictions of standardised L2 logistic regression (``C = c``) under
    subject-grouped stratified CV (seed 0)."""
    return grouped_cv_predictions(
        features,
        labels,
        groups,
        folds,
        lambda n: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)),
    )


def knn_balanced_accuracy(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 5, folds: int = 5
) -> float:
    """Cosine k-NN balanced accuracy under subject-grouped stratified k-fold CV (seed 0)."""
    predictions = knn_cv_predictions(features, labels, groups, k=k, folds=folds)
    return float(balanced_accuracy_score(labels, predictions))


def logreg_balanced_accuracy(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5, c: float = 0.1
) -> float:
    """Standardised L2 logistic regression (``C = c``) balanced accuracy, subject-grouped CV."""
    predictions = logreg_cv_predictions(features, labels, groups, folds=folds, c=c)
    return float(balanced_accuracy_score(labels, predictions))
