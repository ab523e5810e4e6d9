"""Training one segmentation head: Dice + cross-entropy on augmented, foreground-oversampled
slice batches; the model state kept is the one with the best validation Dice (selection on the
validation split only; the test split is never seen here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from braindino.downstream.segmentation.augment import AugmentSettings, augment_batch
from braindino.downstream.segmentation.cases import CaseSlices
from braindino.downstream.segmentation.model import SegmentationModel
from braindino.downstream.segmentation.slice_batches import SliceSampler
from braindino.heads.selection import FitHistory, train_with_selection
from braindino.losses import dice_loss
from braindino.metrics import dice
from braindino.models.lora import ADAPTER_MARK


@dataclass
class TrainSettings:
    """Optimisation of one head (AdamW, cosine decay after a short warm-up); built from a run's
    ``SegmentOptions`` (the one source of the defaults) by ``train_settings``."""

    epochs: int
    steps_per_epoch: int | None  # None: training slices / batch size
    batch_size: int
    lr: float
    encoder_lr: float  # only used with an unfrozen encoder
    foreground_fraction: float
    augment: AugmentSettings | None
    patience: int | None  # epochs without a better validation Dice before stopping
    progress: bool
    weight_decay: float = 1e-4


@torch.inference_mode()
def predict_proba(model: SegmentationModel, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Softmax class probabilities ``[n, K, S, S]`` (float32) of slices ``[n, M, S, S]``."""
    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.asarray(images[start : start + batch], np.float32))
        out.append(torch.softmax(model(x).float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def slice_grid_dice(
    model: SegmentationModel, cases: list[CaseSlices], regions: dict[str, list[int]]
) -> float:
    """Mean over cases and regions of the Dice on the cases' slice grids (BraTS empty rule)."""
    scores = []
    for case in cases:
        predicted = predict_proba(model, case.images).argmax(axis=1)
        truth = np.asarray(case.labels)
        for classes in regions.values():
            scores.append(dice(np.isin(predicted, classes), np.isin(truth, classes)))
    return float(np.mean(scores))


def _own_state(model: SegmentationModel) -> dict:
    """A copy of the trained tensors (head, mixer; the encoder when unfrozen, its LoRA
    adapters when adapted)."""
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if model.unfreeze_encoder
        or not k.startswith("encoder.")
        or (model.adapted and ADAPTER_MARK in k)
    }


def train_head(
    model: SegmentationModel,
    train: list[CaseSlices],
    val: list[CaseSlices],
    regions: dict[str, list[int]],
    settings: TrainSettings,
    seed: int,
) -> dict:
    """Train ``model`` in place and load its best-validation state; returns the history
    (:class:`~braindino.heads.selection.FitHistory` as a dict: per epoch the mean training loss
    and the validation Dice, the selected 1-based epoch) and the steps per epoch."""
    sampler = SliceSampler(train, settings.foreground_fraction)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = settings.steps_per_epoch or max(1, math.ceil(len(sampler) / settings.batch_size))
    total = steps * settings.epochs
    optimiser = torch.optim.AdamW(
        model.trainable_groups(settings.lr, settings.encoder_lr), weight_decay=settings.weight_decay
    )
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        ),
    )
    history = FitHistory(metric_name="val_dice", maximize=True)
    if not val:
        history.selected_on = "training (no validation split)"
    bar = tqdm(total=total, desc="train", disable=not settings.progress, leave=False)

    def train_epoch(epoch: int) -> float:
        model.train()
        losses = []
        for _ in range(steps):
            images, labels = sampler.draw(settings.batch_size, rng)
            if settings.augment is not None:
                images, labels = augment_batch(images, labels, gen, settings.augment)
            logits = model(images)
            loss = F.cross_entropy(logits, labels) + dice_loss(logits, labels)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            bar.update()
        return float(np.mean(losses))

    def validate(epoch: int) -> tuple[float, None]:
        score = slice_grid_dice(model, val or train, regions)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_dice=f"{score:.3f}")
        return score, None

    best = train_with_selection(
        settings.epochs, train_epoch, validate, lambda: _own_state(model), history,
        settings.patience,
    )  # fmt: skip
    bar.close()
    model.load_state_dict(best, strict=False)
    return {**history.to_dict(), "steps_per_epoch": steps}
