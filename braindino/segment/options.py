"""What one segmentation run is asked to do (``SegmentOptions``) and the checks on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from braindino.downstream.options import check_run_numbers
from braindino.errors import ConfigError
from braindino.segment.model import HEADS


@dataclass
class SegmentOptions:
    """One ``downstream/segment.py`` run. ``None`` means the task's (or protocol's) default.

    ``heads``: ``decoder`` (multi-block features, x16 transposed-conv decoder) and/or ``linear``
    (the linear-probe baseline); both by default, on the same splits. ``compare``: baseline
    encoders (``random`` = random init of the main encoder's architecture).
    ``unfreeze_encoder``: also train the encoder at ``encoder_lr`` (off by default; reported).
    """

    task: str
    encoder: str | None = None
    data_root: str | None = None
    out: str | None = None
    label_fractions: list[float] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    compare: list[str] = field(default_factory=list)
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
    bootstrap: int = 1000
    save_predictions: bool = True
    overrides: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    cohort: str | None = None
    cache: str | None = None
    progress: bool = True

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

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict of the options."""
        return asdict(self)
