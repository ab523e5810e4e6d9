"""Evaluation metrics: numpy arrays (or tensors) in, floats out; scikit-learn, lifelines and
SciPy do the computing wherever they provide the metric.

- classification: :func:`macro_auc`, :func:`balanced_accuracy`
- regression: :func:`mae`, :func:`rmse`, :func:`r2`, :func:`pearson_r`
- survival: :func:`concordance_index` (alias ``c_index``), :func:`kaplan_meier_split`,
  :func:`logrank_p`
- representation: :func:`knn_accuracy`; grouped-CV probes :func:`knn_balanced_accuracy`,
  :func:`logreg_balanced_accuracy`
- uncertainty: :func:`bootstrap_ci`
- segmentation: :func:`dice`, :func:`hd95` (BraTS conventions for empty masks)
- by config name: :data:`METRICS`, :func:`get_metric`, :data:`HIGHER_IS_BETTER`

A metric that is undefined on its input (one class for an AUC, no comparable pair for a
C-index, a constant target for R²) returns NaN, which :func:`bootstrap_ci` skips; invalid
input (shapes, NaN, labels out of range) raises :class:`braindino.errors.BrainDinoError`.
"""

from braindino.metrics.bootstrap import bootstrap_ci
from braindino.metrics.classification import balanced_accuracy, macro_auc
from braindino.metrics.knn import knn_accuracy
from braindino.metrics.probe_cv import knn_balanced_accuracy, logreg_balanced_accuracy
from braindino.metrics.registry import HIGHER_IS_BETTER, METRICS, get_metric
from braindino.metrics.regression import mae, pearson_r, r2, rmse
from braindino.metrics.segmentation import HD95_EMPTY_MM, dice, hd95
from braindino.metrics.survival import (
    KaplanMeierCurve,
    KaplanMeierSplit,
    c_index,
    concordance_index,
    kaplan_meier_split,
    logrank_p,
)

__all__ = [
    "HD95_EMPTY_MM",
    "HIGHER_IS_BETTER",
    "METRICS",
    "KaplanMeierCurve",
    "KaplanMeierSplit",
    "balanced_accuracy",
    "bootstrap_ci",
    "c_index",
    "concordance_index",
    "dice",
    "get_metric",
    "hd95",
    "kaplan_meier_split",
    "knn_accuracy",
    "knn_balanced_accuracy",
    "logrank_p",
    "logreg_balanced_accuracy",
    "macro_auc",
    "mae",
    "pearson_r",
    "r2",
    "rmse",
]
