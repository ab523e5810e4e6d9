"""iBOT block masks: exact counts, DINOv2 ratio spreading, block shapes, helper tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from braindino.data.masking import BlockMaskGenerator, ibot_masks, sample_mask_targets
from braindino.errors import BrainDinoError

GRID = (14, 14)  # 224 / 16
N = GRID[0] * GRID[1]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_each_mask_has_exactly_its_target_count():
    targets = torch.tensor([0, 1, 3, 4, 5, 19, 40, 63, 98, 150, 195, 196, 300])
    masks = BlockMaskGenerator(GRID)(targets, _gen(0))
    assert masks.dtype == torch.bool and masks.shape == (len(targets), *GRID)
    expected = targets.clamp(max=N)  # more than the grid holds -> the whole grid
    assert masks.sum((1, 2)).tolist() == expected.tolist()


def test_exact_counts_over_many_random_targets_on_a_non_square_grid():
    gen = _gen(1)
    targets = torch.randint(0, 60, (200,), generator=gen)
    masks = BlockMaskGenerator((8, 12))(targets, gen)
    assert torch.equal(masks.sum((1, 2)), targets)


def test_blocks_respect_min_patches_aspect_and_grid():
    gen = BlockMaskGenerator(GRID, min_patches=4, min_aspect=0.3)
    targets = torch.randint(19, 99, (64,), generator=_gen(2))
    masks, blocks = gen(targets, _gen(3), return_blocks=True)
    assert blocks.shape[0] >= len(targets)  # at least one block per masked image
    _, top, left, h, w = blocks.unbind(1)
    assert bool((h * w >= 4).all())
    aspect = w.double() / h.double()
    assert bool((aspect >= 0.3 - 1e-9).all()) and bool((aspect <= 1 / 0.3 + 1e-9).all())
    assert bool((top >= 0).all() & (left >= 0).all())
    assert bool((top + h <= GRID[0]).all() & (left + w <= GRID[1]).all())
    assert bool((h < GRID[0]).all() & (w < GRID[1]).all())
    # Every placed block lies inside its image's final mask.
    for m, t, lft, hh, ww in blocks.tolist():
        assert bool(masks[m, t : t + hh, lft : lft + ww].all())
    # Blocks carry most of the mask; the top-up only finishes it.
    covered = torch.zeros_like(masks)
    for m, t, lft, hh, ww in blocks.tolist():
        covered[m, t : t + hh, lft : lft + ww] = True
    assert covered.sum() >= 0.8 * masks.sum()


def test_masked_regions_are_blocks_not_scattered_patches():
    """4-connected components of every mask hold >= min_patches patches (scipy labelling)."""
    targets = torch.randint(19, 99, (64,), generator=_gen(4))
    masks = BlockMaskGenerator(GRID)(targets, _gen(5)).numpy()
    for mask in masks:
        labels, n = ndimage.label(mask)  # default structure: 4-connectivity
        sizes = np.bincount(labels.ravel())[1:]
        assert n >= 1 and sizes.min() >= 4


def test_targets_follow_dinov2_linspace_semantics():
    n_images, mask_probability = 64, 0.5
    counts = sample_mask_targets(n_images, N, mask_probability, (0.1, 0.5), _gen(6))
    masked = counts[counts > 0]
    assert len(masked) == int(n_images * mask_probability)
    # Sorted, masked image i falls in bin i of linspace(0.1, 0.5, n_masked + 1).
    edges = np.linspace(0.1, 0.5, len(masked) + 1)
    ordered = np.sort(masked.numpy())
    lo = np.floor(N * edges[:-1] - 1e-9)
    hi = np.floor(N * edges[1:] + 1e-9)
    assert np.all(ordered >= lo) and np.all(ordered <= hi)
    ratios = masked.double() / N
    assert bool((ratios >= 0.1 - 1 / N).all() & (ratios <= 0.5).all())


def test_about_half_the_images_are_masked_and_which_ones_varies():
    gen = _gen(7)
    hits = torch.zeros(16)
    for _ in range(200):
        counts = sample_mask_targets(16, N, 0.5, (0.1, 0.5), gen)
        assert int((counts > 0).sum()) == 8
        hits += (counts > 0).float()
    # Each position is masked about half the time (binomial(200, 0.5): sd ~7).
    assert bool((hits > 60).all() & (hits < 140).all())


def test_ibot_masks_helper_tensors_match_the_masks():
    out = ibot_masks(10, BlockMaskGenerator(GRID), 0.5, (0.1, 0.5), _gen(8))
    masks = out["masks"]
    assert masks.shape == (10, N) and masks.dtype == torch.bool
    assert torch.equal(out["mask_counts"], masks.sum(1))
    flat = masks.flatten().numpy()
    assert np.array_equal(out["mask_indices"].numpy(), np.flatnonzero(flat))
    image_of_token = np.flatnonzero(flat) // N
    counts = masks.sum(1).numpy()
    np.testing.assert_allclose(out["mask_weights"].numpy(), 1.0 / counts[image_of_token], rtol=1e-6)
    # The weights of each masked image sum to 1 (per-image mean in the iBOT loss).
    per_image = np.bincount(image_of_token, weights=out["mask_weights"].numpy(), minlength=10)
    assert np.allclose(per_image[counts > 0], 1.0)


def test_same_seed_same_masks_other_seed_other_masks():
    gen = BlockMaskGenerator(GRID)
    a = ibot_masks(32, gen, generator=_gen(9))["masks"]
    b = ibot_masks(32, gen, generator=_gen(9))["masks"]
    c = ibot_masks(32, gen, generator=_gen(10))["masks"]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"min_aspect": 0.0}, "block_aspect"),
        ({"min_patches": 0}, "min_patches_per_block"),
        ({"max_patches": 2}, "max_patches_per_block"),
    ],
)
def test_bad_generator_settings_fail_clearly(kwargs, where):
    with pytest.raises(BrainDinoError, match=where):
        BlockMaskGenerator(GRID, **kwargs)


def test_bad_ratio_range_fails_clearly():
    with pytest.raises(BrainDinoError, match=r"masking\.ratio.*Fix"):
        sample_mask_targets(8, N, 0.5, (0.5, 0.1))
