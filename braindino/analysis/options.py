"""What one ``downstream/analyze.py`` run is asked to do (``AnalyzeOptions``: the one source of
the command line's defaults) and the checks on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from braindino.errors import ConfigError

ANALYSES = ("probe", "pca", "attention", "retrieval", "embedding")
PROBE_NAMES = ("tissue", "tumour")


@dataclass
class AnalyzeOptions:
    """One analysis run. ``encoder``: export folder, ``random:<arch>`` or timm name (default:
    ``make demo``'s export); ``compare``: encoders analysed beside it (``random`` = its
    random-init twin). The maps look at ``task``'s manifest, else the volumes under ``folder``,
    else the dense probes' synthetic subjects. ``tumour_task``: the tumour probe reads this
    segmentation task's cases (``tumour_root``: its release folder) instead of synthetic ones."""

    encoder: str | None = None
    compare: list[str] = field(default_factory=lambda: ["random"])
    task: str | None = None
    data_root: str | None = None
    folder: str | None = None
    out: str | None = None
    analyses: list[str] = field(default_factory=lambda: list(ANALYSES))
    probes: list[str] = field(default_factory=lambda: list(PROBE_NAMES))
    probe_subjects: int = 12
    probe_slices: int = 6
    scales: list[int] = field(default_factory=lambda: [1, 2])
    shift: int = 2
    tissue_modality: str = "T1"
    tumour_modality: str = "FLAIR"
    tumour_task: str | None = None
    tumour_root: str | None = None
    volumes: int = 8
    show: int = 3
    neighbours: int = 4
    bootstrap: int = 1000
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        for name, values, known in (
            ("--analyses", self.analyses, ANALYSES),
            ("--probes", self.probes, PROBE_NAMES),
        ):
            bad = [v for v in values if v not in known]
            if bad:
                raise ConfigError(
                    f"unknown {', '.join(bad)}", path=name, fix=f"use some of {', '.join(known)}"
                )
        counts = {
            "--probe-subjects": self.probe_subjects - 1,  # at least 2: one train, one test
            "--probe-slices": self.probe_slices,
            "--volumes": self.volumes,
            "--show": self.show,
            "--neighbours": self.neighbours,
            "--bootstrap": self.bootstrap,
        }
        for flag, value in counts.items():
            if value < 1:
                minimum = 2 if flag == "--probe-subjects" else 1
                raise ConfigError(f"must be >= {minimum}", path=flag, fix="pass a larger number")
        if not self.scales or any(s < 1 for s in self.scales) or self.shift < 0:
            raise ConfigError(
                f"scales {self.scales} / shift {self.shift}",
                path="--scales",
                fix="use integer scales >= 1 (e.g. 1,2) and --shift >= 0",
            )
        if self.task and self.folder:
            raise ConfigError(
                "both --task and --folder given", path="--folder", fix="give one of them"
            )

    def as_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict of the options."""
        return asdict(self)
