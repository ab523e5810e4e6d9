"""The periodic frozen probe of a pretraining run (``probe:`` section of the pretrain config).

The probe data (the synthetic cohort's probe tasks and the user's ``probe.labelled`` tasks) is
read once, on first use; each call scores the EMA teacher's backbone with ``probe.classifier``.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from braindino.errors import ConfigError
from braindino.ssl.probe import ProbeSet, check_probe_options


def check_probe_config(p: DictConfig) -> None:
    """The probe section names its data and valid probe options (one clear ConfigError)."""
    if not p.cohort and (list(p.tasks) or not list(p.labelled)):
        raise ConfigError(
            "probe.enabled but no probe.cohort",
            path="probe.cohort",
            fix="give the synthetic cohort folder (python -m braindino.synth --out DIR), or "
            "probe your own tasks: probe.tasks=[] probe.labelled=[TASK] probe.data_root=DIR",
        )
    check_probe_options(str(p.pooling), p.blocks, str(p.classifier), prefix="probe.")


class PeriodicProbe:
    """Scores a backbone on the configured probe tasks; ``probes`` is built on the first call."""

    def __init__(self, probe: DictConfig, img_size: int):
        check_probe_config(probe)
        self.cfg = probe
        self.size = int(probe.image_size or img_size)
        self.probes: ProbeSet | None = None

    def __call__(self, backbone: torch.nn.Module) -> dict[str, float]:
        """Balanced accuracy per probe task of ``backbone``'s frozen features."""
        p = self.cfg
        if self.probes is None:
            self.probes = ProbeSet(
                p.cohort,
                list(p.tasks),
                self.size,
                int(p.slices_per_volume),
                pooling=str(p.pooling),
                blocks=int(p.blocks),
                labelled=list(p.labelled),
                data_root=p.data_root,
                encoder=backbone,
            )
        return self.probes.evaluate(backbone, classifier=str(p.classifier))
