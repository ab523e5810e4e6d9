"""Run a transformer block whose output is wanted for only some tokens.

In a self-distillation step no loss reads most of the last block's tokens: the local crops give
only their CLS token to the DINO loss, and of a global crop's patches only the masked ones reach
the iBOT loss. Attention still needs every token (as keys and values), but the block's second
half (norm, MLP, LayerScale, residual) is per token, so it can run on the wanted rows alone.
For ViT-S that half is about two thirds of the block's FLOPs; the result for the wanted rows is
the same as the full block's, gradients included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _residual_parts(block: nn.Module) -> tuple[Callable, nn.Module, Callable, nn.Module] | None:
    """``(layer_scale_1, drop_path_1, layer_scale_2, drop_path_2)`` of a pre-norm timm block.

    ``None`` for a block class whose forward is not the plain pre-norm residual pair. The class
    test is exact on purpose: FSDP2 gives a sharded block a subclass whose ``forward`` gathers
    the parameters (and schedules the gradients' reduce-scatter), so such a block must run whole.
    """
    from timm.models.eva import EvaBlock
    from timm.models.vision_transformer import Block

    if type(block) is EvaBlock:  # LayerScale is a bare parameter (or None)

        def scale(gamma: Tensor | None) -> Callable[[Tensor], Tensor]:
            return (lambda x: x) if gamma is None else (lambda x: gamma * x)

        return scale(block.gamma_1), block.drop_path1, scale(block.gamma_2), block.drop_path2
    if type(block) is Block:
        return block.ls1, block.drop_path1, block.ls2, block.drop_path2
    return None


def _per_sample_factor(drop_path: nn.Module, like: Tensor) -> Tensor | None:
    """The per-sample stochastic-depth factor ``[B]`` that ``drop_path`` would apply, or None.

    Calls the module itself on ones ``[B, 1, 1]``, so it draws from the RNG exactly as the full
    block would (same shape, same order).
    """
    if isinstance(drop_path, nn.Identity) or not drop_path.training:
        return None
    if float(getattr(drop_path, "drop_prob", 0.0)) == 0.0:
        return None
    return drop_path(like.new_ones(like.shape[0], 1, 1)).view(-1)


def run_block_on_rows(
    block: nn.Module,
    tokens: Tensor,
    keep_patches: Tensor,
    num_prefix_tokens: int,
    block_kwargs: dict,
) -> Tensor:
    """Apply ``block`` to ``tokens [B, N, D]`` and return only the wanted output rows.

    Args:
        block: a timm ``EvaBlock`` (DINOv3) or ``Block`` (DINOv2); any other block class runs
            whole and its output rows are then selected (same result, no saving).
        tokens: the block's input, prefix tokens (CLS, registers) first.
        keep_patches: bool ``[B, P]``, the patch tokens wanted (P = N - num_prefix_tokens).
        num_prefix_tokens: CLS + registers; these rows are always returned.
        block_kwargs: extra arguments of the block's forward (``rope`` for DINOv3).

    Returns:
        ``[B * num_prefix_tokens + keep_patches.sum(), D]``: every image's prefix tokens
        (image-major), then the kept patch tokens in ``keep_patches.nonzero()`` order.
    """
    batch, n = tokens.shape[0], num_prefix_tokens

    def rows(x: Tensor) -> Tensor:
        return torch.cat([x[:, :n].reshape(batch * n, -1), x[:, n:][keep_patches]])

    parts = _residual_parts(block)
    if parts is None:
        return rows(block(tokens, **block_kwargs))
    scale_1, drop_1, scale_2, drop_2 = parts
    x = tokens + drop_1(scale_1(block.attn(block.norm1(tokens), **block_kwargs)))
    factor = _per_sample_factor(drop_2, x)  # drawn after drop_1, as in the full block
    kept = rows(x)
    update = scale_2(block.mlp(block.norm2(kept)))
    if factor is not None:
        image = torch.cat(
            [
                torch.arange(batch, device=x.device).repeat_interleave(n),
                keep_patches.nonzero()[:, 0],
            ]
        )
        update = update * factor[image, None].to(update.dtype)
    return kept + update
