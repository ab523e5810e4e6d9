"""What one downstream run is asked to do (``RunOptions``) and the checks on it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from braindino.errors import ConfigError
from braindino.models.lora import LORA_TARGETS, check_lora_settings

# downstream script -> the task target types it runs
SCRIPTS = {
    "classify": ("class",),
    "regress": ("regression",),
    "survival": ("survival",),
    "knn": ("class",),
    "segment": ("segmentation",),
}
SEGMENTATION_HEADS = ("decoder", "linear")
ADAPTERS = ("none", "lora")
FEATURES = ("cls", "patch_mean", "registers_mean", "cls+patch_mean")
DEMO_ENCODER = Path("demo_out") / "encoder"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ProtocolOptions:
    """What every downstream run shares (classify/regress/survival/knn and segment). ``None``
    means: the task config's (or the protocol's) default.

    ``encoder``: export folder, ``random:<arch>`` or timm name (default: ``make demo``'s export).
    ``compare``: baseline encoders run on the same splits (``"random"`` = the main encoder's
    random-init twin). ``overrides``: task config ``key=value`` strings. ``preprocess``:
    preprocessing overrides for every encoder. ``adapter``: ``none`` (the frozen encoder) or
    ``lora`` (LoRA adapters of ``lora_rank`` / ``lora_alpha`` / ``lora_dropout`` on the
    ``lora_targets`` linear layers of every encoder block, trained with the head at
    ``adapter_lr``; volume heads then use no feature cache).
    """

    task: str
    encoder: str | None = None
    data_root: str | None = None
    out: str | None = None
    label_fractions: list[float] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    compare: list[str] = field(default_factory=list)
    bootstrap: int = 1000
    overrides: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    cohort: str | None = None
    cache: str | None = None
    progress: bool = True
    adapter: str = "none"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    adapter_lr: float = 1e-4

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict of the options."""
        return asdict(self)

    def check_adapter(self) -> None:
        """One-line errors for an unknown ``--adapter`` and bad LoRA settings."""
        check_choice(self.adapter, ADAPTERS, "adapter", "--adapter")
        if self.adapter == "lora":
            check_lora_settings(
                self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_targets
            )
            if not 0 < float(self.adapter_lr) < float("inf"):
                raise ConfigError(
                    f"must be a positive learning rate, got {self.adapter_lr!r}",
                    path="--adapter-lr",
                    fix="e.g. 1e-4",
                )

    def check_numbers(self, **positive: Any) -> None:
        """One-line errors for the numbers every downstream run takes: at least one seed, label
        fractions in (0, 1], and ``--epochs``, ``--batch-size``, ``--bootstrap`` and the
        ``positive`` flags (``name=value``) integers >= 1."""
        if not self.seeds:
            raise ConfigError("no seeds given", path="--seeds", fix="pass e.g. --seeds 0,1,2")
        flags = {
            "--epochs": getattr(self, "epochs", 1),
            "--batch-size": getattr(self, "batch_size", 1),
            "--bootstrap": self.bootstrap,
            **{f"--{name}": value for name, value in positive.items()},
        }
        for name, value in flags.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"must be >= 1, got {value!r}", path=name, fix="pass e.g. 16")
        for fraction in self.label_fractions or []:
            if not 0 < float(fraction) <= 1:
                raise ConfigError(
                    f"label fraction {fraction} is not in (0, 1]",
                    path="--label-fraction",
                    fix="use e.g. 0.01,0.1,1.0",
                )


@dataclass
class RunOptions(ProtocolOptions):
    """One classify / regress / survival / knn run: the shared options (``ProtocolOptions``)
    plus the script and the head's training settings."""

    script: str = "classify"
    head: str | None = None
    feature: str = "cls"
    epochs: int = 50
    lr: float | None = None
    batch_size: int = 16
    patience: int | None = 10

    def __post_init__(self) -> None:
        check_choice(self.script, [s for s in SCRIPTS if s != "segment"], "script", "script")
        check_choice(self.feature, FEATURES, "feature", "--feature")
        self.check_numbers()
        self.check_adapter()


@dataclass
class SegmentOptions(ProtocolOptions):
    """One ``downstream/segment.py`` run. ``None`` means the task's (or protocol's) default.

    ``heads``: ``decoder`` (multi-block features, x16 transposed-conv decoder) and/or ``linear``
    (the linear-probe baseline); both by default, on the same splits. ``compare``: baseline
    encoders (``random`` = random init of the main encoder's architecture).
    ``unfreeze_encoder``: also train the encoder at ``encoder_lr`` (off by default; reported);
    ``adapter="lora"`` instead trains LoRA adapters on it at ``adapter_lr`` (not both).
    """

    heads: list[str] = field(default_factory=lambda: list(SEGMENTATION_HEADS))
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
        bad = [h for h in self.heads if h not in SEGMENTATION_HEADS]
        if bad or not self.heads:
            raise ConfigError(
                f"unknown head(s) {bad or '(none)'}", path="--head", fix="use decoder and/or linear"
            )
        self.check_numbers(width=self.width)
        self.check_adapter()
        if self.adapter != "none" and self.unfreeze_encoder:
            raise ConfigError(
                f"--adapter {self.adapter} and --unfreeze-encoder both train the encoder",
                path="--adapter",
                fix="choose one: LoRA adapters, or the whole encoder",
            )
        if not 0 <= self.foreground_fraction <= 1:
            raise ConfigError(
                f"must be in [0, 1], got {self.foreground_fraction}",
                path="--foreground-fraction",
                fix="use e.g. 0.5",
            )


def check_choice(value: str, choices: Sequence[str], what: str, path: str) -> None:
    """A one-line error (at ``path``, naming the choices) unless ``value`` is in ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"unknown {what} {value!r}", path=path, fix=f"use one of {', '.join(choices)}"
        )


def default_encoder() -> str:
    """``demo_out/encoder`` (here or in the repository) if ``make demo`` made it; else an error
    that says how to get one."""
    for candidate in (Path.cwd() / DEMO_ENCODER, REPO_ROOT / DEMO_ENCODER):
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise ConfigError(
        "no encoder given and the demo encoder (demo_out/encoder) does not exist",
        path="--encoder",
        fix="run `make demo` first, or pass --encoder random:vit_tiny_patch16_dinov3 "
        "(or an export folder)",
    )


def default_out(task: str) -> Path:
    """``runs/downstream/<task>-<time>`` under the current folder."""
    return Path("runs") / "downstream" / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
