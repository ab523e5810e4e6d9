"""The one training loop every downstream model goes through: epochs of training, a score on
the validation split after each, the best-scoring state kept, early stopping after ``patience``
epochs without a strict improvement. Volume heads (:func:`~braindino.heads.fit.fit_head`) and the
segmentation decoder (:func:`~braindino.downstream.segmentation.train.train_head`) differ only in
what one epoch and one validation are."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class FitHistory:
    """Per-epoch training loss, validation loss and validation score of one training run.

    ``val_metric`` is the selection score (e.g. validation AUC or Dice, or the validation loss
    when no metric is given); ``best_epoch`` is 1-based and its weights are the ones restored.
    ``selected_on`` says which split the score came from.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_metric: float = float("nan")
    metric_name: str = "val_loss"
    maximize: bool = False
    stopped_early: bool = False
    seconds: float = 0.0
    selected_on: str = "validation"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the history."""
        return asdict(self)


def train_with_selection(
    epochs: int,
    train_epoch: Callable[[int], float],
    validate: Callable[[int], tuple[float, float | None]],
    snapshot: Callable[[], dict[str, Tensor]],
    history: FitHistory,
    patience: int | None,
) -> dict[str, Tensor]:
    """Run up to ``epochs`` epochs; returns the state of the best validation epoch.

    ``train_epoch(epoch)`` trains one epoch (1-based) and returns its mean training loss;
    ``validate(epoch)`` returns ``(score, validation loss or None)``; ``snapshot()`` copies
    the state worth keeping. The first epoch is always kept; a later one replaces it only when
    strictly better in ``history.maximize``'s direction. Training stops after ``patience``
    epochs without a gain (``None``: never early). ``history`` is filled in place.
    """
    best: dict[str, Tensor] = {}
    stale = 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        history.train_loss.append(float(train_epoch(epoch)))
        score, val_loss = validate(epoch)
        if val_loss is not None:
            history.val_loss.append(float(val_loss))
        history.val_metric.append(float(score))
        previous = history.best_val_metric
        improved = epoch == 1 or (score > previous if history.maximize else score < previous)
        if improved:
            history.best_epoch, history.best_val_metric = epoch, float(score)
            best = snapshot()
            stale = 0
            continue
        stale += 1
        if patience is not None and stale >= patience:
            history.stopped_early = epoch < epochs
            break
    history.seconds = time.perf_counter() - started
    return best
