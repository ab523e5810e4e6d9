"""Small heads trained on frozen per-slice features ``[B, S, D]`` (optional padding mask ``[B, S]``,
True on padding slices), and the helper that trains them with validation-only model selection.

- :class:`MeanPoolHead` — BrainDINO: mean over slices → LayerNorm → Linear → GELU → Linear.
- :class:`AttentionPoolingHead` — DinoAtten3D: slice attention → embedding MLP → classifier,
  composite loss CE + SupCon + 0.1·class-variance.
- :class:`RegressionHead` with :class:`TargetScaler`; :class:`CoxHead` with
  :func:`survival_targets`.
- :func:`fit_head`, :func:`predict`, :class:`HeadData`, :func:`pad_slices`; :func:`build_head`
  by config name (mean_mlp, attention, regression, cox).

Every head returns a dict of tensors and has a ``loss(outputs, targets)`` method.
"""

from braindino.heads.attention import AttentionPoolingHead
from braindino.heads.cox import CoxHead, survival_targets
from braindino.heads.data import HeadData, pad_slices
from braindino.heads.fit import FitHistory, fit_head, predict
from braindino.heads.mean_pool import MeanPoolHead
from braindino.heads.pooling import AttentionPooling, MeanPooling, masked_mean
from braindino.heads.registry import HEAD_NAMES, build_head, describe_head
from braindino.heads.regression import RegressionHead
from braindino.heads.scaler import TargetScaler

__all__ = [
    "HEAD_NAMES",
    "AttentionPooling",
    "AttentionPoolingHead",
    "CoxHead",
    "FitHistory",
    "HeadData",
    "MeanPoolHead",
    "MeanPooling",
    "RegressionHead",
    "TargetScaler",
    "build_head",
    "describe_head",
    "fit_head",
    "masked_mean",
    "pad_slices",
    "predict",
    "survival_targets",
]
