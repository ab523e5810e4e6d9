"""iBOT block masks for the global crops, batched, with DINOv2's semantics.

* Only global crops are masked. ``int(n_images * mask_probability)`` of them get a mask; their
  mask ratios are spread over ``ratio_range`` the way DINOv2's collate does it: the range is cut
  into equal bins by ``linspace`` and masked image ``i`` draws its ratio uniformly from bin ``i``;
  the masks are then shuffled over all images, so which crop is masked is random.
* A mask is built from BEiT-style rectangular blocks on the patch grid: area uniform in
  ``[min_patches, min(remaining, max_patches)]``, log-uniform aspect in ``[min_aspect,
  max_aspect]``, up to ``tries`` candidate blocks per step, the first one that adds between 1 and
  ``remaining`` new patches is kept. Unlike DINOv2, a candidate whose *rounded* height x width
  has fewer than ``min_patches`` patches or an aspect outside the range is rejected, so every
  placed block honours both limits.
* When no candidate fits any more, the mask is topped up to exactly its target count. DINOv3 adds
  uniformly random patches; here the extra patches are drawn from the 4-neighbours of the mask, so
  every connected masked region keeps at least ``min_patches`` patches. Blocks never overshoot the
  target, so no trimming is needed: each masked image has exactly its target count.

All images are processed together, one block step per round, with tensor ops (no per-patch
Python loops), so a batch of 128 global crops takes a few milliseconds on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from braindino.errors import BrainDinoError


def _check(ok: bool, name: str, problem: str, fix: str) -> None:
    if not ok:
        raise BrainDinoError(problem, path=name, fix=fix)


@dataclass
class BlockMaskGenerator:
    """BEiT-style block masks on a ``grid_size`` patch grid (rows, cols); see the module doc.

    ``max_patches`` defaults to half the grid (DINOv2's training setting); ``max_aspect``
    defaults to ``1 / min_aspect``.
    """

    grid_size: tuple[int, int]
    min_patches: int = 4
    max_patches: int | None = None
    min_aspect: float = 0.3
    max_aspect: float | None = None
    tries: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.grid_size, int):
            self.grid_size = (self.grid_size, self.grid_size)
        rows, cols = self.grid_size
        _check(
            rows > 1 and cols > 1,
            "masking.grid_size",
            f"grid {rows}x{cols} is too small",
            "use global crops of at least 2 patches per side",
        )
        _check(self.min_patches >= 1, "masking.min_patches_per_block", "must be >= 1", "set 4")
        if self.max_aspect is None and self.min_aspect > 0:
            self.max_aspect = 1.0 / self.min_aspect
        _check(
            self.max_aspect is not None and 0 < self.min_aspect <= self.max_aspect,
            "masking.block_aspect",
            f"bad aspect range [{self.min_aspect}, {self.max_aspect}]",
            "give 0 < min <= max, e.g. [0.3, 3.3]",
        )
        if self.max_patches is None:
            self.max_patches = int(0.5 * rows * cols)
        _check(
            self.max_patches >= self.min_patches,
            "masking.max_patches_per_block",
            f"{self.max_patches} is below min_patches_per_block {self.min_patches}",
            "raise it or leave it null (half the grid)",
        )
        _check(self.tries >= 1, "masking.tries_per_block", "must be >= 1", "set 10")

    @property
    def num_patches(self) -> int:
        """Patches in one grid."""
        return self.grid_size[0] * self.grid_size[1]

    def __call__(
        self,
        targets: torch.Tensor,
        generator: torch.Generator | None = None,
        return_blocks: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Masks ``[M, rows, cols]`` (bool, CPU) with exactly ``targets[m]`` patches set each.

        ``targets`` is an integer tensor ``[M]`` (clamped to the grid size). With
        ``return_blocks`` also returns the placed blocks as ``[K, 5]`` rows
        ``(image, top, left, height, width)``.
        """
        rows, cols = self.grid_size
        targets = targets.to(torch.long).clamp(0, self.num_patches).cpu()
        masks = torch.zeros(targets.numel(), rows, cols, dtype=torch.bool)
        blocks: list[torch.Tensor] = []
        remaining = targets.clone()
        active = remaining > 0
        r_idx = torch.arange(rows)
        c_idx = torch.arange(cols)
        log_lo, log_hi = math.log(self.min_aspect), math.log(self.max_aspect)  # type: ignore[arg-type]
        while bool(active.any()):
            ids = active.nonzero().squeeze(1)
            hi = remaining[ids].to(torch.float64).clamp(max=self.max_patches)[:, None]
            u = torch.rand(ids.numel(), self.tries, 4, generator=generator, dtype=torch.float64)
            area = self.min_patches + u[..., 0] * (hi - self.min_patches)
            aspect = torch.exp(log_lo + u[..., 1] * (log_hi - log_lo))
            h = torch.sqrt(area / aspect).round().long()
            w = torch.sqrt(area * aspect).round().long()
            shape_ok = (h >= 1) & (w >= 1) & (h < rows) & (w < cols)
            shape_ok &= h * w >= self.min_patches
            real_aspect = w.double() / h.clamp(min=1).double()
            shape_ok &= (real_aspect >= self.min_aspect * (1 - 1e-9)) & (
                real_aspect <= self.max_aspect * (1 + 1e-9)  # type: ignore[operator]
            )
            top = (u[..., 2] * (rows - h + 1).clamp(min=1)).floor().long()
            left = (u[..., 3] * (cols - w + 1).clamp(min=1)).floor().long()
            in_r = (r_idx >= top[..., None]) & (r_idx < (top + h)[..., None])  # [A, k, rows]
            in_c = (c_idx >= left[..., None]) & (c_idx < (left + w)[..., None])  # [A, k, cols]
            rect = in_r[..., :, None] & in_c[..., None, :]  # [A, k, rows, cols]
            new = (rect & ~masks[ids][:, None]).sum((2, 3))
            ok = shape_ok & (new > 0) & (new <= remaining[ids][:, None])
            placed = ok.any(1)
            first = ok.to(torch.int8).argmax(1)
            done = ids[placed]
            if done.numel():
                pick = first[placed]
                sel = torch.arange(ids.numel())[placed]
                masks[done] |= rect[sel, pick]
                remaining[done] -= new[sel, pick]
                if return_blocks:
                    blocks.append(
                        torch.stack(
                            [done, top[sel, pick], left[sel, pick], h[sel, pick], w[sel, pick]], 1
                        )
                    )
            # DINOv2 stops adding blocks to an image as soon as one step places nothing.
            active[ids[~placed]] = False
            active &= remaining > 0
        _grow_to_targets(masks, remaining, generator)
        if return_blocks:
            all_blocks = torch.cat(blocks) if blocks else torch.zeros(0, 5, dtype=torch.long)
            return masks, all_blocks
        return masks


def _grow_to_targets(
    masks: torch.Tensor, remaining: torch.Tensor, generator: torch.Generator | None
) -> None:
    """Add ``remaining[m]`` patches to ``masks[m]`` in place, next to already-masked patches."""
    flat = masks.view(masks.shape[0], -1)
    while bool((remaining > 0).any()):
        ids = (remaining > 0).nonzero().squeeze(1)
        sub = masks[ids]
        empty = ~sub.flatten(1).any(1)
        grown = sub.clone()
        grown[:, 1:] |= sub[:, :-1]
        grown[:, :-1] |= sub[:, 1:]
        grown[:, :, 1:] |= sub[:, :, :-1]
        grown[:, :, :-1] |= sub[:, :, 1:]
        eligible = (grown & ~sub).flatten(1)
        eligible[empty] = ~sub[empty].flatten(1)  # an empty mask may start anywhere (seed)
        score = torch.rand(eligible.shape, generator=generator)
        score[~eligible] = -1.0
        order = score.argsort(1, descending=True)
        take = remaining[ids].clone()
        take[empty] = 1  # seed one patch first so the region grows from it
        rank = torch.arange(eligible.shape[1]).expand_as(order)
        chosen = (rank < take[:, None]) & eligible.gather(1, order)
        add = torch.zeros_like(eligible)
        add.scatter_(1, order, chosen)
        flat[ids] |= add
        remaining[ids] -= add.sum(1)


def sample_mask_targets(
    n_images: int,
    n_patches: int,
    mask_probability: float = 0.5,
    ratio_range: tuple[float, float] = (0.1, 0.5),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Masked-patch count per image ``[n_images]`` (0 = unmasked), DINOv2 linspace semantics."""
    lo, hi = float(ratio_range[0]), float(ratio_range[1])
    _check(
        0 <= lo <= hi <= 1,
        "masking.ratio",
        f"bad ratio range [{lo}, {hi}]",
        "give 0 <= min <= max <= 1, e.g. [0.1, 0.5]",
    )
    _check(
        0 <= mask_probability <= 1,
        "masking.mask_probability",
        f"{mask_probability} is not a probability",
        "give a value in [0, 1], e.g. 0.5",
    )
    n_masked = int(n_images * mask_probability)
    edges = torch.linspace(lo, hi, n_masked + 1, dtype=torch.float64)
    u = torch.rand(n_masked, generator=generator, dtype=torch.float64)
    ratios = edges[:-1] + u * (edges[1:] - edges[:-1])
    counts = torch.zeros(n_images, dtype=torch.long)
    counts[:n_masked] = (n_patches * ratios).long()
    return counts[torch.randperm(n_images, generator=generator)]


def ibot_masks(
    n_images: int,
    mask_generator: BlockMaskGenerator,
    mask_probability: float = 0.5,
    ratio_range: tuple[float, float] = (0.1, 0.5),
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """iBOT masks for ``n_images`` global crops, with the helpers the iBOT loss needs.

    Returns ``masks`` bool ``[n_images, P]`` (row-major patches), ``mask_counts`` ``[n_images]``,
    ``mask_indices`` (flat indices of ``masks.flatten()`` that are set, in ``nonzero`` order) and
    ``mask_weights`` (``1 / count`` of each masked token's image, same order), all on the CPU.
    """
    targets = sample_mask_targets(
        n_images, mask_generator.num_patches, mask_probability, ratio_range, generator
    )
    masks = mask_generator(targets, generator).flatten(1)  # type: ignore[union-attr]
    counts = masks.sum(1)
    indices = masks.flatten().nonzero().squeeze(1)
    weights = (1.0 / counts.clamp(min=1).float())[indices // masks.shape[1]]
    return {
        "masks": masks,
        "mask_counts": counts,
        "mask_indices": indices,
        "mask_weights": weights,
    }
