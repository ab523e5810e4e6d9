"""Cox head: slice pooling → MLP → one log-risk per volume, trained with ``cox_loss``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from braindino.heads._checks import require
from braindino.heads.pooling import PooledScalarHead
from braindino.losses import cox_loss


def survival_targets(time: Any, event: Any) -> Tensor:
    """Pack follow-up times and event flags (1 = event, 0 = censored) into a ``[N, 2]`` tensor.

    This is the target layout :meth:`CoxHead.loss` and :func:`fit_head` expect for survival.
    """
    time_array = np.asarray(time, dtype=np.float64).reshape(-1)
    event_array = np.asarray(event, dtype=np.float64).reshape(-1)
    require(
        time_array.shape == event_array.shape,
        "survival_targets(event)",
        f"has {event_array.size} entries for {time_array.size} times",
        "pass one event flag per subject",
    )
    require(
        bool(np.all(np.isfinite(time_array)) and np.all(time_array >= 0)),
        "survival_targets(time)",
        "contains negative, NaN or infinite times",
        "drop subjects without a valid follow-up time",
    )
    require(
        bool(np.all(np.isin(event_array, (0.0, 1.0)))),
        "survival_targets(event)",
        "event flags must be 0 (censored) or 1 (event observed)",
        "map the vital-status column to 0/1 before training",
    )
    return torch.as_tensor(np.stack([time_array, event_array], axis=1), dtype=torch.float32)


class CoxHead(PooledScalarHead):
    """Predict a log hazard ratio per volume; higher risk = earlier event.

    ``forward`` returns ``{"risk": [B]}`` plus ``"attention": [B, S]`` with attention pooling.
    ``loss(outputs, targets)`` is :func:`braindino.losses.cox_loss` (Breslow ties) with targets
    from :func:`survival_targets` (column 0 time, column 1 event). The partial likelihood
    compares subjects within a batch, so train with large batches (or the whole split).
    """

    output = "risk"
    # The partial likelihood is unchanged by adding a constant to every risk, so an output
    # bias would never get a gradient: the last layer has none.
    final_bias = False

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        """Negative Breslow partial log-likelihood per event of ``outputs["risk"]``."""
        risk = outputs["risk"]
        require(
            isinstance(targets, Tensor)
            and targets.dim() == 2
            and targets.shape == (risk.shape[0], 2),
            "CoxHead.loss(targets)",
            f"expected a [{risk.shape[0]}, 2] tensor of (time, event), got "
            f"{tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__}",
            "build the targets with survival_targets(time, event)",
        )
        targets = targets.to(risk.device)
        return cox_loss(risk, targets[:, 0], targets[:, 1])
