"""A labelled case for dense probes: a volume's axial slices as the encoder sees them and its
label map sampled onto the very same slice grid (nearest neighbour)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from braindino.errors import ConfigError, DataError
from braindino.features import encoder_slices
from braindino.io import Volume, read_volume
from braindino.preprocess import volume_to_slices

CHOICES = ("spread", "largest")


@dataclass
class LabelledCase:
    """``images`` float32 ``[S, H, W]`` (robust z-scores) and ``labels`` integer ``[S, H, W]``
    (class indices, 0 = background / no structure) of one subject's chosen slices."""

    subject: str
    images: np.ndarray
    labels: np.ndarray


def evenly_spaced(candidates: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` entries of ``candidates``, evenly spaced and centred (the middles of
    ``count`` equal parts: one is the middle entry, never just the two ends)."""
    if len(candidates) <= count:
        return np.asarray(candidates)
    return np.asarray(candidates)[((np.arange(count) + 0.5) * len(candidates) / count).astype(int)]


def labelled_case(
    encoder: nn.Module | None,
    subject: str,
    image: Volume | str | Path,
    labels: Volume | str | Path,
    preprocess: Mapping | None = None,
    slices: int = 6,
    choose: str = "spread",
) -> LabelledCase:
    """``image`` through the encoder's preprocessing (``features.encoder_slices``) and
    ``labels`` (on the image's voxel grid) onto those slices; of the slices holding a non-zero
    label, ``slices`` are kept: evenly spaced (``choose="spread"``) or those with the most
    labelled pixels (``"largest"``, for small structures), in slice order."""
    if choose not in CHOICES:
        raise ConfigError(
            f"unknown slice choice {choose!r}", path="choose", fix="use spread or largest"
        )
    if not isinstance(labels, Volume):
        labels = read_volume(labels, check=False)
    images, z, stack = encoder_slices(encoder, image, preprocess)
    if labels.shape != tuple(stack.geometry.source_shape):
        raise DataError(
            f"label map shape {labels.shape} differs from its image's "
            f"{stack.geometry.source_shape}",
            path=labels.path or subject,
            fix="give the label map on the image's voxel grid",
        )
    sampled = volume_to_slices(np.asarray(labels.data).astype(np.int64), z, stack.geometry, 0)
    labelled = np.flatnonzero(sampled.reshape(len(z), -1).max(axis=1) > 0)
    if labelled.size == 0:
        raise DataError(
            "no slice of the label map holds a label",
            path=labels.path or subject,
            fix="leave this case out, or check that the label map belongs to the image",
        )
    if choose == "largest":
        area = (sampled[labelled] > 0).reshape(len(labelled), -1).sum(axis=1)
        keep = np.sort(labelled[np.argsort(-area, kind="stable")[:slices]])
    else:
        keep = evenly_spaced(labelled, slices)
    return LabelledCase(subject, images[keep], sampled[keep].astype(np.uint8))
