"""Train a head on cached features with model selection on the validation split only."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from braindino.eval_mode import evaluating
from braindino.heads._checks import check_positive_int, require
from braindino.heads.data import as_head_data
from braindino.heads.selection import FitHistory, train_with_selection

Outputs = dict[str, Tensor] | Tensor
LossFn = Callable[[Any, Tensor], Tensor]
MetricFn = Callable[[Any, Tensor], float]
OPTIMIZERS = ("adam", "adamw")


def _concat(chunks: list[Outputs]) -> Outputs:
    if isinstance(chunks[0], Tensor):
        return torch.cat(chunks)  # type: ignore[arg-type]
    return {key: torch.cat([chunk[key] for chunk in chunks]) for key in chunks[0]}  # type: ignore[index]


def _to_cpu(outputs: Outputs) -> Outputs:
    if isinstance(outputs, Tensor):
        return outputs.detach().cpu()
    return {key: value.detach().cpu() for key, value in outputs.items()}


def _device_of(head: nn.Module) -> torch.device:
    for parameter in head.parameters():
        return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def predict(head: nn.Module, data: Any, batch_size: int = 256) -> Outputs:
    """Run ``head`` in eval mode over every volume of ``data``; outputs concatenated on the CPU.

    ``data`` is a :class:`HeadData` or ``(features, targets[, padding_mask])``; the result has
    the head's output structure (a dict of ``[N, ...]`` tensors, e.g. logits and attention).
    The head's train/eval mode is restored afterwards.
    """
    data = as_head_data(data, "predict(data)")
    check_positive_int(batch_size, "predict(batch_size)")
    device = _device_of(head)
    with evaluating(head):
        chunks = []
        for start in range(0, len(data), batch_size):
            index = torch.arange(start, min(start + batch_size, len(data)))
            chunks.append(_to_cpu(head(*data.inputs(index, device))))
    return _concat(chunks)


def _check_settings(
    epochs: int, lr: float, weight_decay: float, batch_size: int, patience: int | None, opt: str
) -> None:
    check_positive_int(epochs, "fit_head(epochs)")
    check_positive_int(batch_size, "fit_head(batch_size)")
    require(
        isinstance(lr, (int, float)) and 0 < float(lr) < float("inf"),
        "fit_head(lr)",
        f"must be a positive learning rate, got {lr!r}",
        "pass e.g. 1e-4 (classification) or 1e-3 (regression)",
    )
    require(
        isinstance(weight_decay, (int, float)) and float(weight_decay) >= 0,
        "fit_head(weight_decay)",
        f"must be >= 0, got {weight_decay!r}",
        "pass e.g. 1e-5 or 0",
    )
    if patience is not None:
        check_positive_int(patience, "fit_head(patience)")
    require(
        opt in OPTIMIZERS,
        "fit_head(optimizer)",
        f"unknown optimizer {opt!r}",
        f"use one of {', '.join(OPTIMIZERS)}",
    )


def _finite(value: Tensor | float, where: str, epoch: int, fix: str) -> float:
    number = float(value)
    require(math.isfinite(number), where, f"is {number} at epoch {epoch}", fix)
    return number


def fit_head(
    head: nn.Module,
    train_data: Any,
    val_data: Any,
    loss_fn: LossFn | None = None,
    epochs: int = 50,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    patience: int | None = 10,
    metric_fn: MetricFn | None = None,
    maximize: bool = False,
    optimizer: str = "adamw",
    eval_batch_size: int = 256,
    param_groups: list[dict[str, Any]] | None = None,
) -> FitHistory:
    """Train ``head`` on ``train_data``, select the epoch by the validation score, restore it.

    Data are :class:`HeadData` or ``(features, targets[, padding_mask])``. ``loss_fn(outputs,
    targets)`` defaults to ``head.loss``. After every epoch the head is run on ``val_data``;
    ``metric_fn(outputs, targets) -> float`` scores it (``maximize`` says which way is better),
    or, without ``metric_fn``, the validation loss is minimised. Training stops after
    ``patience`` epochs without a strict improvement (``None``: run all ``epochs``), and the
    weights of the best validation epoch are loaded back into ``head``, which is left in eval
    mode. There is no test argument on purpose: the test split is for the final evaluation only.

    The optimiser (Adam or AdamW) is built from ``head.parameters()`` — every trainable
    parameter of the head — at ``lr``, or from ``param_groups`` (optimiser groups, each with
    its own ``lr``, e.g. a head and the LoRA adapters of its encoder). The state kept for the
    best epoch is the trainable parameters and the buffers (frozen weights never change).
    Shuffling and dropout are seeded by ``seed`` without touching the caller's global RNG
    state, so a run is reproducible. A non-finite training loss or validation score raises
    :class:`BrainDinoError` instead of training on NaN. Data other than :class:`HeadData`
    (e.g. an adapted encoder's slices) give each batch through ``inputs(index, device)``.
    """
    _check_settings(epochs, lr, weight_decay, batch_size, patience, optimizer)
    train = as_head_data(train_data, "fit_head(train_data)")
    val = as_head_data(val_data, "fit_head(val_data)")
    require(len(train) >= 1, "fit_head(train_data)", "is empty", "pass at least one volume")
    require(len(val) >= 1, "fit_head(val_data)", "is empty", "pass at least one volume")
    if loss_fn is None:
        require(
            callable(getattr(head, "loss", None)),
            "fit_head(loss_fn)",
            f"none given and {type(head).__name__} has no .loss method",
            "pass loss_fn(outputs, targets) -> scalar tensor",
        )
        loss_fn = head.loss  # type: ignore[assignment]
    assert loss_fn is not None
    parameters = [p for p in head.parameters() if p.requires_grad]
    require(
        len(parameters) > 0,
        "fit_head(head)",
        "has no trainable parameters",
        "unfreeze the head (requires_grad=True) before training",
    )
    optimizer_class = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    groups = param_groups if param_groups is not None else [{"params": parameters}]
    opt = optimizer_class(groups, lr=float(lr), weight_decay=float(weight_decay))
    require(
        metric_fn is not None or not maximize,
        "fit_head(maximize)",
        "is True but no metric_fn is given, and the validation loss must be minimised",
        "pass metric_fn (e.g. validation AUC) or leave maximize=False",
    )
    metric_name = getattr(metric_fn, "__name__", "metric") if metric_fn else "val_loss"
    history = FitHistory(metric_name=metric_name, maximize=bool(maximize))
    device = _device_of(head)
    lr_fix = "lower the learning rate, or check the features and targets for NaN/inf"
    shuffle = torch.Generator().manual_seed(seed)

    def train_epoch(epoch: int) -> float:
        head.train()
        total, seen = 0.0, 0
        for batch_index in torch.randperm(len(train), generator=shuffle).split(batch_size):
            outputs = head(*train.inputs(batch_index, device))
            loss = loss_fn(outputs, train.targets[batch_index].to(device))
            _finite(loss.detach(), "fit_head: the training loss", epoch, lr_fix)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch_index)
            seen += len(batch_index)
        return total / seen

    def validate(epoch: int) -> tuple[float, float]:
        outputs = predict(head, val, eval_batch_size)
        with torch.no_grad():
            where = "fit_head: the validation loss"
            val_loss = _finite(loss_fn(outputs, val.targets), where, epoch, lr_fix)
        if metric_fn is None:
            return val_loss, val_loss
        score = _finite(
            metric_fn(outputs, val.targets),
            f"fit_head(metric_fn): {metric_name} on the validation split",
            epoch,
            "make sure the validation split holds every class (or pass metric_fn=None "
            "to select on validation loss)",
        )
        return score, val_loss

    kept = {n for n, p in head.named_parameters() if p.requires_grad}
    kept |= {n for n, _ in head.named_buffers()}

    def snapshot() -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in head.state_dict().items() if k in kept}

    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        best = train_with_selection(epochs, train_epoch, validate, snapshot, history, patience)
    head.load_state_dict(best, strict=False)  # the frozen rest is unchanged
    head.eval()
    return history
