"""The backbone: a timm DINOv3 (or DINOv2) ViT plus a learned mask token for iBOT.

``MaskableViT`` wraps the unmodified timm model in ``.vit`` (so its state dict is timm's, key for
key) and adds the one thing self-distillation needs: masked patch embeddings are replaced by a
learned ``mask_token`` before the transformer blocks. It runs any crop size whose sides are
multiples of the patch size (RoPE for DINOv3; interpolated position embeddings for DINOv2), and a
batch of equally sized crops in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from braindino.errors import BrainDinoError, ConfigError
from braindino.models.partial_block import run_block_on_rows

FeatureDict = dict[str, Tensor]


def _timm_family(vit: nn.Module) -> str:
    """``"eva"`` (timm's DINOv3 class) or ``"vit"`` (timm's VisionTransformer, DINOv2)."""
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(vit, Eva):
        if getattr(vit, "rope_mixed", False):
            raise ConfigError(
                "timm Eva models with depth-dependent 'mixed' RoPE are not supported",
                path="arch",
                fix="use a DINOv3 model (rope_type='dinov3') such as vit_base_patch16_dinov3",
            )
        return "eva"
    if isinstance(vit, VisionTransformer):
        return "vit"
    raise ConfigError(
        f"timm model class {type(vit).__name__} is not a supported ViT",
        path="arch",
        fix="use a timm DINOv3 (Eva) or DINOv2-style (VisionTransformer) model",
    )


class MaskableViT(nn.Module):
    """A timm ViT with a learned iBOT mask token and a DINOv2-style feature API.

    Attributes:
        vit: the plain timm model (its ``state_dict()`` is what an export writes).
        mask_token: ``[1, D]`` learned embedding that replaces masked patches (zeros at init, as
            in DINOv2). It is not part of an export.
        arch, timm_name, timm_kwargs, train_kwargs: how the backbone was built;
            ``timm.create_model(timm_name, **timm_kwargs)`` re-creates ``vit`` (train-only options
            such as drop path are kept apart in ``train_kwargs``).
        source: where the weights came from (set by ``load_encoder``; used as a cache key).
        extra: an export's ``extra`` information (e.g. preprocessing), ``{}`` otherwise.

    Under DDP, give the student an all-False mask rather than ``None`` on steps where nothing is
    masked, so that the mask token stays in the autograd graph.
    """

    def __init__(
        self,
        vit: nn.Module,
        *,
        arch: str,
        timm_name: str,
        timm_kwargs: dict[str, Any],
        train_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.family = _timm_family(vit)
        if getattr(vit, "cls_token", None) is None:
            raise ConfigError(
                f"{timm_name} has no class token", path="arch", fix="use a ViT with a CLS token"
            )
        if not getattr(vit, "dynamic_img_size", False):
            raise ConfigError(
                f"{timm_name} was built without dynamic_img_size", path="arch", fix="rebuild it"
            )
        self.vit = vit
        self.arch = arch
        self.timm_name = timm_name
        self.timm_kwargs = dict(timm_kwargs)
        self.train_kwargs = dict(train_kwargs or {})
        self.source = f"new:{arch}"
        self.extra: dict[str, Any] = {}
        self.embed_dim = int(vit.embed_dim)
        self.patch_size = tuple(int(p) for p in vit.patch_embed.patch_size)
        self.in_chans = int(vit.patch_embed.proj.in_channels)
        self.num_prefix_tokens = int(vit.num_prefix_tokens)
        self.num_register_tokens = self.num_prefix_tokens - 1
        self.depth = len(vit.blocks)
        self.num_heads = int(vit.blocks[0].attn.num_heads)
        self.mask_token = nn.Parameter(torch.zeros(1, self.embed_dim))

    # ----------------------------------------------------------------------------- geometry
    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch-grid shape ``(h, w)`` for an input of ``height`` x ``width`` pixels."""
        return height // self.patch_size[0], width // self.patch_size[1]

    def patch_mask(self, x: Tensor, value: bool = False) -> Tensor:
        """A bool ``[B, P]`` patch mask for the batch ``x``, every entry ``value`` (e.g.
        ``keep_patches`` for crops whose CLS token alone is wanted)."""
        h, w = self.patch_grid(*x.shape[-2:])
        return torch.full((x.shape[0], h * w), value, dtype=torch.bool, device=x.device)

    def _check_input(self, x: Tensor) -> tuple[int, int]:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise BrainDinoError(
                f"backbone input must be [B, {self.in_chans}, H, W], got {list(x.shape)}",
                path="x",
                fix=f"pass a batch of {self.in_chans}-channel images (x.unsqueeze(1) adds a "
                "channel axis to [B, H, W] slices)",
            )
        height, width = int(x.shape[-2]), int(x.shape[-1])
        ph, pw = self.patch_size
        if height % ph or width % pw or height < ph or width < pw:
            raise BrainDinoError(
                f"input size {height}x{width} is not a positive multiple of the patch size "
                f"{ph}x{pw}",
                path="x",
                fix=f"crop or resize inputs to multiples of {ph} (e.g. 224 or 96)",
            )
        return self.patch_grid(height, width)

    def _check_masks(
        self, masks: Tensor, batch: int, grid: tuple[int, int], name: str = "masks"
    ) -> Tensor:
        n_patches = grid[0] * grid[1]
        if masks.dtype != torch.bool or tuple(masks.shape) != (batch, n_patches):
            meaning = "masked" if name == "masks" else "wanted"
            raise BrainDinoError(
                f"{name} must be a bool tensor [B, P] = [{batch}, {n_patches}], got "
                f"{masks.dtype} {list(masks.shape)}",
                path=name,
                fix=f"pass one bool per patch (row-major over the patch grid), True = {meaning}",
            )
        return masks.view(batch, grid[0], grid[1], 1)

    # ----------------------------------------------------------------------------- forward parts
    def _embed(self, x: Tensor, masks: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Patch-embed, mask, add prefix tokens and position information: tokens and RoPE."""
        grid = self._check_input(x)
        vit = self.vit
        tokens = vit.patch_embed(x)  # [B, h, w, D] (dynamic_img_size keeps the grid)
        if masks is not None:
            mask_grid = self._check_masks(masks, x.shape[0], grid)
            tokens = torch.where(mask_grid, self.mask_token.to(tokens.dtype), tokens)
        if self.family == "eva":
            tokens, rope = vit._pos_embed(tokens)
        else:
            tokens, rope = vit.patch_drop(vit._pos_embed(tokens)), None
        return vit.norm_pre(tokens), rope

    def _block_kwargs(self, rope: Tensor | None) -> dict[str, Any]:
        return {"rope": rope} if self.family == "eva" else {}

    def _maybe_checkpointed(self, run: Any, *args: Any, **kwargs: Any) -> Tensor:
        """``run(*args, **kwargs)``, recomputed in the backward under gradient checkpointing."""
        if self.vit.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(run, *args, use_reentrant=False, **kwargs)
        return run(*args, **kwargs)

    def _run_block(self, index: int, tokens: Tensor, rope: Tensor | None) -> Tensor:
        return self._maybe_checkpointed(self.vit.blocks[index], tokens, **self._block_kwargs(rope))

    def _split(self, tokens: Tensor) -> FeatureDict:
        n = self.num_prefix_tokens
        return {"cls": tokens[:, 0], "registers": tokens[:, 1:n], "patches": tokens[:, n:]}

    # ----------------------------------------------------------------------------- public API
    def forward_features(
        self, x: Tensor, masks: Tensor | None = None, keep_patches: Tensor | None = None
    ) -> FeatureDict:
        """Run the backbone on a batch of equally sized crops.

        Args:
            x: ``[B, C, H, W]`` images, H and W multiples of the patch size.
            masks: optional bool ``[B, P]`` (P = patches, row-major); True patches are replaced
                by the mask token before the blocks. An all-False mask equals no mask.
            keep_patches: optional bool ``[B, P]``: only these patches' final tokens are wanted
                (the fused training step, ``run.fused``). The last block then computes queries,
                attention, output projection and MLP for the prefix tokens and these patches
                alone (keys and values still come from every token): the same values, less
                work.

        Returns:
            After the final norm: ``cls`` ``[B, D]``, ``registers`` ``[B, R, D]`` and
            ``patches`` — ``[B, P, D]``, or with ``keep_patches`` just the wanted ones,
            ``[keep_patches.sum(), D]`` in ``keep_patches.nonzero()`` order (the rows
            ``patches[keep_patches]`` of the full result).
        """
        tokens, rope = self._embed(x, masks)
        if keep_patches is not None:  # checked before any block runs
            grid = self.patch_grid(*x.shape[-2:])
            self._check_masks(keep_patches, x.shape[0], grid, "keep_patches")
        last = self.depth if keep_patches is None else self.depth - 1
        for index in range(last):
            tokens = self._run_block(index, tokens, rope)
        if keep_patches is None:
            return self._split(self.vit.norm(tokens))
        batch, n = x.shape[0], self.num_prefix_tokens
        args = (self.vit.blocks[-1], tokens, keep_patches, n, self._block_kwargs(rope))
        rows = self.vit.norm(self._maybe_checkpointed(run_block_on_rows, *args))
        prefix = rows[: batch * n].view(batch, n, -1)
        return {"cls": prefix[:, 0], "registers": prefix[:, 1:], "patches": rows[batch * n :]}

    def forward(self, x: Tensor) -> Tensor:
        """The normed CLS embedding ``[B, D]`` (what timm's model returns with token pooling)."""
        return self.forward_features(x)["cls"]

    def block_indices(self, blocks: int | Sequence[int]) -> list[int]:
        """Resolve ``blocks`` (last n if an int, else indices, negatives from the end)."""
        if isinstance(blocks, int) and not isinstance(blocks, bool):
            if not 1 <= blocks <= self.depth:
                raise BrainDinoError(
                    f"cannot take the last {blocks} blocks of a {self.depth}-block backbone",
                    path="blocks",
                    fix=f"ask for 1..{self.depth} blocks or give block indices",
                )
            return list(range(self.depth - blocks, self.depth))
        indices = []
        for b in blocks:
            if not isinstance(b, int) or not -self.depth <= b < self.depth:
                raise BrainDinoError(
                    f"block index {b!r} is out of range for a {self.depth}-block backbone",
                    path="blocks",
                    fix=f"use indices in 0..{self.depth - 1} (or negatives from the end)",
                )
            indices.append(b % self.depth)
        if not indices:
            raise BrainDinoError("no blocks requested", path="blocks", fix="give at least one")
        return indices

    def get_intermediate_layers(
        self,
        x: Tensor,
        blocks: int | Sequence[int] = 1,
        norm: bool = True,
        reshape: bool = False,
        masks: Tensor | None = None,
    ) -> list[FeatureDict]:
        """Features of chosen blocks, in the spirit of DINOv2's ``get_intermediate_layers``.

        Args:
            x: ``[B, C, H, W]`` images.
            blocks: the last ``n`` blocks if an int, else block indices (0-based, negatives from
                the end); the output follows this order.
            norm: apply the backbone's final norm to each block's tokens (as DINOv2 does).
            reshape: return patches as a ``[B, D, h, w]`` map instead of ``[B, P, D]``.
            masks: optional bool ``[B, P]`` patch mask, as in ``forward_features``.

        Returns:
            One dict per requested block with ``cls`` ``[B, D]``, ``registers`` ``[B, R, D]`` and
            ``patches``. Blocks after the deepest requested one are not run.
        """
        indices = self.block_indices(blocks)
        grid = self._check_input(x)
        tokens, rope = self._embed(x, masks)
        taken: dict[int, FeatureDict] = {}
        for index in range(max(indices) + 1):
            tokens = self._run_block(index, tokens, rope)
            if index in indices:
                taken[index] = self._split(self.vit.norm(tokens) if norm else tokens)
        if reshape:
            for feats in taken.values():
                patches = feats["patches"]
                feats["patches"] = patches.reshape(patches.shape[0], *grid, -1).permute(0, 3, 1, 2)
        return [dict(taken[i]) for i in indices]

    def compile_blocks(self, **compile_kwargs: Any) -> None:
        """``torch.compile`` each transformer block in place (``nn.Module.compile``).

        Compiling the blocks rather than wrapping the whole model keeps every entry point
        (``forward_features``, ``get_intermediate_layers``, the last block run on wanted tokens)
        and the state-dict keys as they are; ``torch.compile(backbone)`` would compile only
        ``forward`` and prefix every key with ``_orig_mod.``. ``compile_kwargs`` go to
        ``torch.compile`` (e.g. ``mode``, ``backend``). Shapes are static by default
        (``dynamic=False``): training sees a few fixed crop shapes, each gets its own graph, and
        torch 2.11's Inductor fails on the dynamic-batch block graph on CUDA (an assertion in its
        coalescing analysis, seen on an H200; bench/RESULTS.md, "GPU check").
        """
        compile_kwargs.setdefault("dynamic", False)
        for block in self.vit.blocks:
            block.compile(**compile_kwargs)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass to save memory."""
        self.vit.set_grad_checkpointing(enable)

    def timm_state_dict(self) -> dict[str, Tensor]:
        """The weights under exactly timm's keys for this architecture (no mask token)."""
        return self.vit.state_dict()
