"""Training batches of slices with foreground oversampling.

Tumours and lesions fill a few slices of a volume; drawn uniformly, most batches would hold
background only. Each batch item is drawn from the slices that hold labelled pixels with
probability ``foreground_fraction`` (when there are any), else uniformly from every slice.
"""

from __future__ import annotations

import numpy as np
import torch

from braindino.downstream.segmentation.cases import CaseSlices
from braindino.errors import DataError


class SliceSampler:
    """Draws ``(images [B, M, S, S] float32, labels [B, S, S] int64)`` from training cases."""

    def __init__(self, cases: list[CaseSlices], foreground_fraction: float = 0.5):
        if not cases or any(c.labels is None for c in cases):
            raise DataError(
                "training needs at least one case, each with a label map",
                path="train split",
                fix="check the manifest's mask column and the split",
            )
        if not 0.0 <= foreground_fraction <= 1.0:  # SegmentOptions checks the user's value
            raise ValueError(f"foreground_fraction {foreground_fraction} is not in [0, 1]")
        self.cases = cases
        self.foreground_fraction = float(foreground_fraction)
        self.index = np.concatenate(
            [np.stack([np.full(len(c.z), i), np.arange(len(c.z))], 1) for i, c in enumerate(cases)]
        )
        flags = np.concatenate([c.foreground for c in cases])
        self.foreground = self.index[flags]

    def __len__(self) -> int:
        """Training slices in all cases."""
        return len(self.index)

    def draw(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of ``batch`` slices (see the module docstring)."""
        use_fg = rng.random(batch) < self.foreground_fraction
        picks = []
        for fg in use_fg:
            pool = self.foreground if fg and len(self.foreground) else self.index
            picks.append(pool[rng.integers(len(pool))])
        images = np.stack([np.asarray(self.cases[c].images[s], np.float32) for c, s in picks])
        labels = np.stack([np.asarray(self.cases[c].labels[s]) for c, s in picks])  # type: ignore[index]
        return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
