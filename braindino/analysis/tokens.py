"""``patch_tokens``: a frozen encoder's CLS and patch tokens of a stack of slices, on the patch
grid (the per-patch view that ``braindino.features.encode_slices`` averages away)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from braindino.eval_mode import evaluating
from braindino.features.encode import slice_input


@torch.inference_mode()
def patch_tokens(encoder: nn.Module, images: np.ndarray, batch_size: int = 16) -> dict:
    """Final-norm tokens of slices ``[S, H, W]`` (float32 z-scores; H, W multiples of the patch
    size) in eval mode (the encoder's mode is restored): ``cls`` ``[S, D]`` and ``patches``
    ``[S, h, w, D]`` (row-major patch grid), both float32 numpy."""
    grid = encoder.patch_grid(*images.shape[-2:])
    cls, patches = [], []
    with evaluating(encoder):
        for start in range(0, len(images), batch_size):
            chunk = np.ascontiguousarray(images[start : start + batch_size])
            x = slice_input(encoder, torch.from_numpy(chunk))
            out = encoder.forward_features(x)
            cls.append(out["cls"].float().cpu())
            patches.append(out["patches"].float().cpu().reshape(len(x), *grid, -1))
    return {"cls": torch.cat(cls).numpy(), "patches": torch.cat(patches).numpy()}
