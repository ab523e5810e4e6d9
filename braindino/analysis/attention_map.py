"""``cls_attention``: the last block's attention of the CLS token over the patch tokens, per
head, as timm computes it (softmax(q k^T / sqrt(d)) after RoPE).

The attention module is switched to timm's unfused path for the call and the probabilities are
read by a forward hook on its ``attn_drop`` (an identity in eval mode), so what is shown is the
very matrix the block multiplies the values by.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from braindino.eval_mode import evaluating
from braindino.features.encode import slice_input


@torch.inference_mode()
def cls_attention(encoder: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """CLS -> patch attention of the last block for slices ``[S, H, W]``: float32
    ``[S, heads, h, w]`` (each head's row over every token sums to 1; registers and CLS itself
    are left out here, so a map sums to at most 1)."""
    attn = encoder.vit.blocks[-1].attn
    grid = encoder.patch_grid(*images.shape[-2:])
    prefix = encoder.num_prefix_tokens
    seen: list[torch.Tensor] = []
    hook = attn.attn_drop.register_forward_hook(
        lambda _module, _args, out: seen.append(out[:, :, 0, prefix:].float().cpu())
    )
    fused = attn.fused_attn
    attn.fused_attn = False
    try:
        with evaluating(encoder):
            for start in range(0, len(images), batch_size):
                chunk = np.ascontiguousarray(images[start : start + batch_size])
                encoder.forward_features(slice_input(encoder, torch.from_numpy(chunk)))
    finally:
        hook.remove()
        attn.fused_attn = fused
    maps = torch.cat(seen)
    return maps.reshape(len(maps), maps.shape[1], *grid).numpy()
