"""Crop sizes drawn per training step from a mixture (DINOv3's high-resolution adaptation).

Each entry of ``highres.crop_sizes`` is one (global, local, Gram-teacher) size triple with a
weight; every step uses one triple for its whole batch, drawn from the step index and the run's
seed alone, so every process, DataLoader worker and resumed run agrees on it (no worker-local
random state). With no entries the run keeps the fixed sizes of the ``augment`` section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from braindino.data.multicrop import MultiCropAugmentation
from braindino.errors import ConfigError

_DRAW_STREAM = 0x63726F70  # keeps the size draw's random stream apart from any other use
_KEYS = ("global", "local", "gram", "weight")


@dataclass(frozen=True)
class CropSizes:
    """One mixture entry: global and local crop sides, the Gram teacher's side (None: from
    ``gram.resolution_ratio``), and the entry's weight (relative frequency)."""

    global_size: int
    local_size: int
    gram_size: int | None
    weight: float


def parse_crop_sizes(entries: Sequence[Mapping[str, Any]]) -> list[CropSizes]:
    """``highres.crop_sizes`` entries (``{global, local, gram, weight}`` mappings) as
    :class:`CropSizes`; a malformed entry is one ConfigError naming it."""
    parsed = []
    for i, entry in enumerate(entries):
        where = f"highres.crop_sizes[{i}]"
        if isinstance(entry, DictConfig):
            entry = OmegaConf.to_container(entry)
        if not isinstance(entry, Mapping) or not {"global", "local"} <= set(entry):
            raise ConfigError(
                f"entry {entry!r} is not a mapping with 'global' and 'local' sizes",
                path=where,
                fix="write {global: 512, local: 96, gram: 768, weight: 0.3}",
            )
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown}", path=where, fix=f"use only {list(_KEYS)}"
            )
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
            raise ConfigError(
                f"weight {weight!r} is not a positive number",
                path=where,
                fix="give each entry a weight > 0 (relative frequency)",
            )
        gram = entry.get("gram")
        parsed.append(
            CropSizes(int(entry["global"]), int(entry["local"]), gram and int(gram), float(weight))
        )
    return parsed


def draw_entry(step: int, seed: int, weights: Sequence[float]) -> int:
    """The mixture entry of training step ``step``: index ``i`` with probability
    ``weights[i] / sum(weights)``, a pure function of (``seed``, ``step``)."""
    u = np.random.default_rng([int(seed), int(step), _DRAW_STREAM]).random()
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    return int(min(np.searchsorted(cumulative, u * cumulative[-1], side="right"), len(weights) - 1))


class CropSizeMixture:
    """One :class:`MultiCropAugmentation` per size triple; :meth:`for_step` gives a step's.

    ``augment``: the ``augment`` section (each entry overrides its crop sizes); ``gram``: Gram
    anchoring is on, so each augmentation also cuts ``gram_crops`` at the entry's ``gram`` side
    (or ``gram_ratio`` x its global side). Without entries it holds the ``augment`` section's own
    sizes (every step the same)."""

    def __init__(
        self,
        augment: Mapping[str, Any] | DictConfig | None,
        entries: Sequence[Mapping[str, Any]] = (),
        seed: int = 0,
        gram_ratio: int = 1,
        gram: bool = False,
    ):
        self.seed = int(seed)
        self.entries = parse_crop_sizes(entries)
        if not isinstance(augment, DictConfig):
            augment = OmegaConf.create({} if augment is None else dict(augment))
        ratio = gram_ratio if gram else 1
        self.augmentations = [
            MultiCropAugmentation(
                OmegaConf.merge(
                    augment,
                    {
                        "global_crops": {"size": s.global_size},
                        "local_crops": {"size": s.local_size},
                    },
                ),
                gram_ratio=ratio,
                gram_size=s.gram_size if gram else None,
            )
            for s in self.entries
        ] or [MultiCropAugmentation(augment, gram_ratio=ratio)]  # no entries: the section's sizes
        self.weights = [s.weight for s in self.entries] or [1.0]

    def index(self, step: int) -> int:
        """The entry drawn for ``step`` (0 without a mixture)."""
        return 0 if len(self.weights) == 1 else draw_entry(step, self.seed, self.weights)

    def for_step(self, step: int) -> MultiCropAugmentation:
        """The augmentation (crop sizes, masks' grid, Gram side) of training step ``step``."""
        return self.augmentations[self.index(step)]
