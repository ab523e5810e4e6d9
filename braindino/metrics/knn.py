"""k-nearest-neighbour accuracy of frozen features under cosine distance (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from braindino.metrics._inputs import finite, require, same_length, to_numpy, vector

DEFAULT_KS = (1, 3, 5, 10, 20, 50)


def _matrix(values: Any, where: str) -> np.ndarray:
    array = to_numpy(values).astype(np.float64)
    require(
        array.ndim == 2 and array.shape[0] >= 1,
        where,
        f"expected a non-empty [N, D] feature matrix, got shape {array.shape}",
        "pass one feature vector per subject",
    )
    return finite(array, where, "check the feature extraction")


def knn_accuracy(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[int, float]:
    """Accuracy of a majority-vote k-NN classifier (cosine distance) for every k in ``ks``.

    Neighbours come from ``train_x`` only; ``test_x`` is scored against ``test_y``. Votes are
    uniform, and a tie goes to the smallest label (scikit-learn). A k larger than the training
    set is undefined and maps to NaN.
    """
    train = _matrix(train_x, "knn_accuracy(train_x)")
    test = _matrix(test_x, "knn_accuracy(test_x)")
    require(
        train.shape[1] == test.shape[1],
        "knn_accuracy(test_x)",
        f"feature width {test.shape[1]} differs from train_x's {train.shape[1]}",
        "encode both splits with the same encoder and features",
    )
    train_labels = vector(train_y, "knn_accuracy(train_y)", numeric=False)
    test_labels = vector(test_y, "knn_accuracy(test_y)", numeric=False)
    same_length("knn_accuracy", train_x=train, train_y=train_labels)
    same_length("knn_accuracy", test_x=test, test_y=test_labels)
    for k in ks:
        require(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1,
            "knn_accuracy(ks)",
            f"holds {k!r}; every k must be an integer >= 1",
            "pass e.g. ks=(1, 3, 5, 10, 20, 50)",
        )
    accuracy: dict[int, float] = {}
    for k in ks:
        if k > len(train):
            accuracy[int(k)] = float("nan")
            continue
        classifier = KNeighborsClassifier(n_neighbors=int(k), metric="cosine", algorithm="brute")
        predicted = classifier.fit(train, train_labels).predict(test)
        accuracy[int(k)] = float(np.mean(predicted == test_labels))
    return accuracy
