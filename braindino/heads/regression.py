"""Regression head: slice pooling (mean or attention) → MLP → one scalar per volume."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from braindino.heads._checks import require
from braindino.heads.pooling import PooledScalarHead

REGRESSION_LOSSES = ("mse", "mae", "huber")


class RegressionHead(PooledScalarHead):
    """Predict one scalar per volume (e.g. age) from ``[B, S, D]`` slice features.

    ``pooling`` is ``"mean"`` (BrainDINO) or ``"attention"`` (DinoAtten3D-style). ``forward``
    returns ``{"prediction": [B]}`` plus ``"attention": [B, S]`` with attention pooling.
    ``loss`` is MSE by default, or MAE / Huber (``huber_delta``) — on targets standardised with a
    :class:`TargetScaler` fit on the training split.
    """

    def __init__(
        self, in_dim: int, loss: str = "mse", huber_delta: float = 1.0, **pooled: Any
    ) -> None:
        """``pooled``: ``pooling``, ``hidden``, ``attn_dim``, ``dropout`` of the shared body."""
        super().__init__(in_dim, **pooled)
        where = "RegressionHead"
        require(
            loss in REGRESSION_LOSSES,
            f"{where}(loss)",
            f"unknown loss {loss!r}",
            f"use one of {', '.join(REGRESSION_LOSSES)}",
        )
        require(
            isinstance(huber_delta, (int, float)) and float(huber_delta) > 0,
            f"{where}(huber_delta)",
            f"must be > 0, got {huber_delta!r}",
            "pass a positive delta (in standardised target units, e.g. 1.0)",
        )
        self.loss_name = loss
        self.huber_delta = float(huber_delta)

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        """MSE, MAE or Huber between ``outputs["prediction"]`` and ``[B]`` (scaled) targets."""
        prediction = outputs["prediction"]
        require(
            isinstance(targets, Tensor) and targets.numel() == prediction.numel(),
            "RegressionHead.loss(targets)",
            f"expected {prediction.numel()} targets, got "
            f"{tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__}",
            "pass one float target per volume as a [B] tensor",
        )
        targets = targets.reshape(prediction.shape).to(prediction)
        if self.loss_name == "mae":
            return F.l1_loss(prediction, targets)
        if self.loss_name == "huber":
            return F.huber_loss(prediction, targets, delta=self.huber_delta)
        return F.mse_loss(prediction, targets)
