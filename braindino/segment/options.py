"""What one segmentation run is asked to do (``SegmentOptions``) and the checks on it."""

from __future__ import annotations

from dataclasses import dataclass, field

from braindino.downstream.options import ProtocolOptions, check_run_numbers
from braindino.errors import ConfigError
from braindino.segment.model import HEADS


@dataclass
class SegmentOptions(ProtocolOptions):
    """One ``downstream/segment.py`` run. ``None`` means the task's (or protocol's) default.

    ``heads``: ``decoder`` (multi-block features, x16 transposed-conv decoder) and/or ``linear``
    (the linear-probe baseline); both by default, on the same splits. ``compare``: baseline
    encoders (``random`` = random init of the main encoder's architecture).
    ``unfreeze_encoder``: also train the encoder at ``encoder_lr`` (off by default; reported).
    """

    heads: list[str] = field(default_factory=lambda: list(HEADS))
    blocks: list[int] | None = None
    width: int = 128
    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    unfreeze_encoder: bool = False
    encoder_lr: float = 1e-5
    foreground_fraction: float = 0.5
    augment: bool = True
    patience: int | None = 10
    save_predictions: bool = True

    def __post_init__(self) -> None:
        bad = [h for h in self.heads if h not in HEADS]
        if bad or not self.heads:
            raise ConfigError(
                f"unknown head(s) {bad or '(none)'}", path="--head", fix="use decoder and/or linear"
            )
        check_run_numbers(
            self.seeds,
            self.label_fractions,
            {
                "--epochs": self.epochs,
                "--batch-size": self.batch_size,
                "--bootstrap": self.bootstrap,
                "--width": self.width,
            },
        )
        if not 0 <= self.foreground_fraction <= 1:
            raise ConfigError(
                f"must be in [0, 1], got {self.foreground_fraction}",
                path="--foreground-fraction",
                fix="use e.g. 0.5",
            )
