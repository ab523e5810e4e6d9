"""Run a transformer block whose output is wanted for only some tokens.

In a self-distillation step no loss reads most of the last block's tokens: the local crops give
only their CLS token to the DINO loss, and of a global crop's patches only the masked ones reach
the iBOT loss. Every token is still needed as a key and a value, but queries, attention rows,
the output projection and the MLP can run on the wanted rows alone: for ViT-S about 80 % of the
block's work per unwanted token. The wanted rows come out the same as from the full block,
gradients included (tested in float64 against timm's own block forward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
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


class _RowLayout(NamedTuple):
    """Where each wanted row sits: its image, its token, and its slot in a padded query batch."""

    image: Tensor  # [R]
    token: Tensor  # [R] index into the block's N tokens
    slot: Tensor  # [R] position among its image's wanted rows
    width: int  # the most wanted rows of one image


def _row_layout(keep_patches: Tensor, num_prefix_tokens: int) -> _RowLayout:
    batch, n, device = keep_patches.shape[0], num_prefix_tokens, keep_patches.device
    kept = keep_patches.nonzero()  # image-major, as boolean indexing orders them
    counts = keep_patches.sum(dim=1)
    first = torch.cumsum(counts, 0) - counts  # each image's first kept row
    rank = torch.arange(kept.shape[0], device=device) - first[kept[:, 0]]
    prefix = torch.arange(n, device=device)
    return _RowLayout(
        image=torch.cat([torch.arange(batch, device=device).repeat_interleave(n), kept[:, 0]]),
        token=torch.cat([prefix.repeat(batch), kept[:, 1] + n]),
        slot=torch.cat([prefix.repeat(batch), rank + n]),
        width=n + int(counts.max()) if batch else n,
    )


def _attention_on_rows(
    attn: nn.Module, x: Tensor, layout: _RowLayout, n: int, rope: Tensor | None
) -> Tensor | None:
    """The attention output ``[R, D]`` of the wanted rows: keys and values from every token,
    queries (and the output projection) only for the wanted rows, padded per image into one
    batched attention call. None for an attention module this does not know (run it whole)."""
    from timm.layers.attention import Attention
    from timm.models.eva import EvaAttention

    if type(attn) not in (EvaAttention, Attention) or getattr(attn, "qkv", None) is None:
        return None
    if attn.training and (attn.attn_drop.p > 0 or getattr(attn.proj_drop, "p", 0) > 0):
        return None
    batch, tokens = x.shape[:2]
    heads, width = attn.num_heads, attn.qkv.weight.shape[0] // 3
    head_dim = width // heads
    bias = attn.qkv.bias
    if getattr(attn, "q_bias", None) is not None:
        bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
    weight_q, weight_kv = attn.qkv.weight[:width], attn.qkv.weight[width:]
    bias_q, bias_kv = (None, None) if bias is None else (bias[:width], bias[width:])
    kv = F.linear(x, weight_kv, bias_kv).view(batch, tokens, 2, heads, head_dim)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, N, hd]
    k = attn.k_norm(k)
    rows_x = x[layout.image, layout.token]  # [R, D]
    q = attn.q_norm(F.linear(rows_x, weight_q, bias_q).view(-1, heads, head_dim))
    if rope is not None:  # RoPE on patch tokens only; the wanted patch rows come last
        from timm.layers import apply_rot_embed_cat

        half = getattr(attn, "rotate_half", False)
        rotated = apply_rot_embed_cat(k[:, :, n:], rope, half=half)
        k = torch.cat([k[:, :, :n], rotated], dim=2).type_as(v)
        first = batch * n
        emb = rope[layout.token[first:] - n].unsqueeze(1)  # [M, 1, 2 hd]
        q = torch.cat([q[:first], apply_rot_embed_cat(q[first:], emb, half=half)]).type_as(v)
    padded = q.new_zeros(batch, layout.width, heads, head_dim)
    padded[layout.image, layout.slot] = q
    out = F.scaled_dot_product_attention(padded.transpose(1, 2), k, v, scale=attn.scale)
    out = out.transpose(1, 2)[layout.image, layout.slot].reshape(-1, width)  # [R, H·hd]
    out = attn.norm(out)
    if attn.gate is not None:
        out = out * attn.gate(rows_x).sigmoid()
    return attn.proj_drop(attn.proj(out))


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
    n = num_prefix_tokens
    layout = _row_layout(keep_patches, n)
    parts = _residual_parts(block)
    if parts is None:
        return block(tokens, **block_kwargs)[layout.image, layout.token]
    scale_1, drop_1, scale_2, drop_2 = parts
    normed = block.norm1(tokens)
    attended = _attention_on_rows(block.attn, normed, layout, n, block_kwargs.get("rope"))
    if attended is None:  # attention runs whole; the per-token half still runs on the rows
        full = tokens + drop_1(scale_1(block.attn(normed, **block_kwargs)))
        kept = full[layout.image, layout.token]
    else:
        update = scale_1(attended)
        factor_1 = _per_sample_factor(drop_1, tokens)  # drawn in the full block's order
        if factor_1 is not None:
            update = update * factor_1[layout.image, None].to(update.dtype)
        kept = tokens[layout.image, layout.token] + update
    factor_2 = _per_sample_factor(drop_2, tokens)
    update = scale_2(block.mlp(block.norm2(kept)))
    if factor_2 is not None:
        update = update * factor_2[layout.image, None].to(update.dtype)
    return kept + update
