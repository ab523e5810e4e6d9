"""What one downstream run is asked to do (``RunOptions``) and the checks on it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from braindino.errors import ConfigError

# script family -> the task target types it runs
FAMILIES = {
    "classify": ("class",),
    "regress": ("regression",),
    "survival": ("survival",),
    "knn": ("class",),
}
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
    preprocessing overrides for every encoder.
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

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict of the options."""
        return asdict(self)


@dataclass
class RunOptions(ProtocolOptions):
    """One classify / regress / survival / knn run: the shared options (``ProtocolOptions``)
    plus the script family and the head's training settings."""

    family: str = "classify"
    head: str | None = None
    feature: str = "cls"
    epochs: int = 50
    lr: float | None = None
    batch_size: int = 16
    patience: int | None = 10

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(
                f"unknown family {self.family!r}",
                path="family",
                fix=f"use one of {', '.join(FAMILIES)}",
            )
        if self.feature not in FEATURES:
            raise ConfigError(
                f"unknown feature {self.feature!r}",
                path="--feature",
                fix=f"use one of {', '.join(FEATURES)}",
            )
        check_run_numbers(
            self.seeds,
            self.label_fractions,
            {
                "--epochs": self.epochs,
                "--batch-size": self.batch_size,
                "--bootstrap": self.bootstrap,
            },
        )


def check_run_numbers(
    seeds: list[int], label_fractions: list[float] | None, positive: dict[str, Any]
) -> None:
    """One-line errors for the numbers every downstream run takes: at least one seed, label
    fractions in (0, 1], and the ``positive`` options (flag -> value) integers >= 1."""
    if not seeds:
        raise ConfigError("no seeds given", path="--seeds", fix="pass e.g. --seeds 0,1,2")
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"must be >= 1, got {value!r}", path=name, fix="pass e.g. 16")
    for fraction in label_fractions or []:
        if not 0 < float(fraction) <= 1:
            raise ConfigError(
                f"label fraction {fraction} is not in (0, 1]",
                path="--label-fraction",
                fix="use e.g. 0.01,0.1,1.0",
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
