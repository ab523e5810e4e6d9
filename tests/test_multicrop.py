"""Batched multi-crop: shapes and order, crop geometry vs independent crops, intensity numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from torchvision.transforms.v2 import functional as TF

from braindino.data.crop_geometry import crop_thetas, resized_crops, sample_crop_boxes
from braindino.data.intensity_augment import (
    IntensityAugmentation,
    apply_bias_field,
    apply_contrast,
    apply_gamma,
    gaussian_blur,
)
from braindino.data.multicrop import MultiCropAugmentation, MultiCropCollate, augment_config
from braindino.errors import BrainDinoError, ConfigError, DataError

OFF = {"probability": [0.0, 0.0, 0.0]}
NO_INTENSITY = {k: OFF for k in ("bias_field", "gamma", "contrast", "blur", "noise")}
SMALL = {  # tiny crops so every test stays fast
    "global_crops": {"size": 32},
    "local_crops": {"number": 3, "size": 16},
    "masking": {"patch_size": 8},
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(b: int = 3, size: int = 64, seed: int = 0):
    g = _gen(seed)
    images = torch.randint(0, 256, (b, size, size), generator=g, dtype=torch.uint8)
    scale = 0.01 + 0.02 * torch.rand(b, generator=g)
    offset = -torch.rand(b, generator=g)
    return images, scale, offset


def _crop(img: torch.Tensor, box, size: int, flip: bool = False, angle: float = 0.0):
    thetas = crop_thetas(
        torch.tensor([box], dtype=torch.float64),
        torch.tensor([flip]),
        torch.tensor([angle], dtype=torch.float64),
        img.shape[-2],
        img.shape[-1],
    )
    return resized_crops(img, thetas, size, 1)[0, 0]


# ----------------------------------------------------------------------------- shapes and order
def test_default_config_gives_dinov2_shapes():
    images, scale, offset = _batch(b=2, size=256)
    out = MultiCropAugmentation(seed=0)(images, scale, offset)
    assert out["global_crops"].shape == (4, 1, 224, 224)
    assert out["local_crops"].shape == (16, 1, 96, 96)
    assert out["masks"].shape == (4, 196) and out["masks"].dtype == torch.bool
    assert out["global_crops"].dtype == out["local_crops"].dtype == torch.float32
    assert all(t.device == images.device for t in out.values())
    assert torch.isfinite(out["global_crops"]).all() and torch.isfinite(out["local_crops"]).all()


def test_masks_only_for_global_crops_and_half_of_them():
    images, scale, offset = _batch(b=6)
    out = MultiCropAugmentation(SMALL, seed=1)(images, scale, offset)
    assert out["masks"].shape == (12, (32 // 8) ** 2)  # one row per global crop, none for locals
    assert int((out["mask_counts"] > 0).sum()) == 6
    assert torch.equal(out["mask_counts"], out["masks"].sum(1))


@pytest.mark.parametrize("chunk", [1, 0])
def test_crops_are_grouped_by_crop_index_with_each_slices_scale_and_offset(chunk):
    b = 5
    values = torch.arange(b, dtype=torch.uint8) * 40 + 10
    images = values.view(b, 1, 1).expand(b, 48, 48).contiguous()  # slice b is constant
    scale = torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05])
    offset = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    cfg = {**SMALL, "intensity": NO_INTENSITY, "cpu_chunk_slices": chunk}
    cfg["global_crops"] = {"size": 32, "scale": [0.5, 0.5]}  # boxes stay inside the slice
    cfg["local_crops"] = {"number": 3, "size": 16, "scale": [0.1, 0.1]}
    out = MultiCropAugmentation(cfg, seed=2)(images, scale, offset)
    expected = values.double() * scale.double() + offset.double()  # z of each slice
    for key, n in (("global_crops", 2), ("local_crops", 3)):
        crops = out[key].double()
        for row in range(n * b):  # row c * B + s holds crop c of slice s
            s = row % b
            assert torch.allclose(crops[row], expected[s].expand_as(crops[row]), atol=1e-4)


def test_identity_geometry_and_disabled_intensity_return_the_z_scored_slice():
    images, scale, offset = _batch(b=3, size=32)
    cfg = {
        **SMALL,
        "global_crops": {"size": 32, "scale": [1.0, 1.0]},
        "aspect_ratio": [1.0, 1.0],
        "flip_probability": 0.0,
        "intensity": NO_INTENSITY,
    }
    out = MultiCropAugmentation(cfg, seed=3)(images, scale, offset)
    z = images.double() * scale.double().view(-1, 1, 1) + offset.double().view(-1, 1, 1)
    for c in range(2):
        np.testing.assert_allclose(out["global_crops"][c * 3 : c * 3 + 3, 0], z, atol=1e-5)


def test_same_seed_same_batch_other_seed_other_batch():
    images, scale, offset = _batch()
    aug = MultiCropAugmentation(SMALL)
    a = aug(images, scale, offset, generator=_gen(4))
    b = aug(images, scale, offset, generator=_gen(4))
    c = aug(images, scale, offset, generator=_gen(5))
    for key in ("global_crops", "local_crops", "masks"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["global_crops"], c["global_crops"])
    seeded = [MultiCropAugmentation(SMALL, seed=6)(images, scale, offset) for _ in range(2)]
    assert torch.equal(seeded[0]["local_crops"], seeded[1]["local_crops"])


def test_flip_probability_one_mirrors_every_crop():
    images, scale, offset = _batch()
    base = {**SMALL, "intensity": NO_INTENSITY, "rotation_degrees": 10.0}
    plain = MultiCropAugmentation({**base, "flip_probability": 0.0})(
        images, scale, offset, generator=_gen(7)
    )
    flipped = MultiCropAugmentation({**base, "flip_probability": 1.0})(
        images, scale, offset, generator=_gen(7)
    )
    for key in ("global_crops", "local_crops"):
        torch.testing.assert_close(flipped[key], plain[key].flip(-1), atol=1e-5, rtol=0)
        assert not torch.allclose(flipped[key], plain[key])


# ----------------------------------------------------------------------------- geometry
def test_downscaling_crop_matches_torchvision_resized_crop():
    img = torch.rand(1, 1, 64, 64, generator=_gen(8))
    top, left, h, w = 5, 9, 40, 48
    ours = _crop(img, (top, left, h, w), 24)
    ref = TF.resized_crop(img[0], top, left, h, w, [24, 24], antialias=False)[0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    flipped = _crop(img, (top, left, h, w), 24, flip=True)
    torch.testing.assert_close(flipped, ref.flip(-1), atol=1e-5, rtol=0)


def test_upscaling_crop_matches_torchvision_inside_the_border():
    img = torch.rand(1, 1, 64, 64, generator=_gen(9))
    top, left, h, w = 20, 11, 12, 10
    ours = _crop(img, (top, left, h, w), 24)
    ref = TF.resized_crop(img[0], top, left, h, w, [24, 24], antialias=False)[0]
    # torchvision clamps at the box edge; we read the pixels beyond it. Interiors agree.
    torch.testing.assert_close(ours[2:-2, 2:-2], ref[2:-2, 2:-2], atol=1e-5, rtol=0)


def test_rotated_flipped_crop_matches_float64_bilinear_sampling():
    rng = np.random.default_rng(10)
    img = rng.random((64, 64))
    top, left, h, w, size, angle = 17.0, 15.0, 30.0, 26.0, 20, 20.0
    ours = _crop(
        torch.tensor(img, dtype=torch.float32)[None, None],
        (top, left, h, w),
        size,
        flip=True,
        angle=angle,
    )
    # Independent: output pixel centre -> unit square -> mirrored, scaled, rotated about the
    # box centre -> pixel-centre coordinates, sampled bilinearly by scipy.
    u = (2 * np.arange(size) + 1) / size - 1
    uy, ux = np.meshgrid(u, u, indexing="ij")
    dx, dy = -ux * w / 2, uy * h / 2
    a = math.radians(angle)
    px = left + w / 2 + math.cos(a) * dx - math.sin(a) * dy
    py = top + h / 2 + math.sin(a) * dx + math.cos(a) * dy
    ref = ndimage.map_coordinates(img, [py - 0.5, px - 0.5], order=1, mode="nearest")
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_random_boxes_respect_scale_aspect_and_bounds():
    boxes = sample_crop_boxes(4000, 60, 80, (0.05, 0.32), (0.75, 4 / 3), _gen(11))
    top, left, h, w = boxes.unbind(1)
    area = h * w / (60 * 80)
    assert bool((area >= 0.05 - 1e-9).all() & (area <= 0.32 + 1e-9).all())
    assert bool((w / h >= 0.75 - 1e-9).all() & (w / h <= 4 / 3 + 1e-9).all())
    assert bool((top >= 0).all() & (left >= 0).all())
    assert bool((top + h <= 60 + 1e-9).all() & (left + w <= 80 + 1e-9).all())
    assert area.std() > 0.05  # spread over the range, not one value


def test_impossible_boxes_fall_back_to_the_whole_slice():
    boxes = sample_crop_boxes(50, 40, 40, (1.0, 1.0), (2.0, 3.0), _gen(12))
    # No box of the full area with aspect >= 2 fits a square slice. torchvision's fallback:
    # full width, height = width / min ratio = 20, centred.
    np.testing.assert_allclose(boxes.numpy(), np.tile([10.0, 0.0, 20.0, 40.0], (50, 1)))


# ----------------------------------------------------------------------------- intensity
def test_gamma_matches_float64_minmax_gamma():
    rng = np.random.default_rng(13)
    v = rng.random((3, 1, 9, 9)) * 0.8 + 0.1
    gamma = np.array([0.7, 1.0, 1.5])
    ours = apply_gamma(torch.tensor(v, dtype=torch.float32), torch.tensor(gamma))
    ref = np.empty_like(v)
    for i in range(3):
        lo, hi = v[i].min(), v[i].max()
        ref[i] = ((v[i] - lo) / (hi - lo)) ** gamma[i] * (hi - lo) + lo
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6)


def test_contrast_brightness_matches_float64():
    rng = np.random.default_rng(14)
    v = rng.random((2, 1, 7, 5))
    c, b = np.array([0.75, 1.25]), np.array([-0.1, 0.05])
    ours = apply_contrast(torch.tensor(v, dtype=torch.float32), torch.tensor(c), torch.tensor(b))
    ref = np.stack([(v[i] - v[i].mean()) * c[i] + v[i].mean() + b[i] for i in range(2)])
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_bias_field_matches_float64_polynomial():
    rng = np.random.default_rng(15)
    v = rng.random((2, 1, 6, 8))
    coeffs = rng.uniform(-0.3, 0.3, (2, 3, 3))  # coeffs[n, i, j] multiplies x^i y^j
    ours = apply_bias_field(torch.tensor(v, dtype=torch.float32), torch.tensor(coeffs))
    ys = (np.arange(6) + 0.5) / 6 * 2 - 1
    xs = (np.arange(8) + 0.5) / 8 * 2 - 1
    ref = np.empty_like(v)
    for n in range(2):
        for yi, y in enumerate(ys):
            for xi, x in enumerate(xs):
                poly = sum(coeffs[n, i, j] * x**i * y**j for i in range(3) for j in range(3))
                ref[n, 0, yi, xi] = v[n, 0, yi, xi] * math.exp(poly)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)


def test_blur_matches_scipy_gaussian_filter():
    rng = np.random.default_rng(16)
    v = rng.random((3, 1, 20, 24))
    sigma, radius = np.array([0.5, 1.0, 2.0]), 6
    ours = gaussian_blur(torch.tensor(v, dtype=torch.float32), torch.tensor(sigma), radius)
    for i in range(3):  # torch "reflect" padding is scipy's "mirror" mode
        ref = ndimage.gaussian_filter(v[i, 0], sigma[i], mode="mirror", truncate=radius / sigma[i])
        np.testing.assert_allclose(ours[i, 0].numpy(), ref, atol=1e-6)


def _disk_crops(n: int = 6, size: int = 48) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 5) ** 2
    tissue = 0.5 + 0.3 * np.random.default_rng(17).random((n, 1, size, size))
    return torch.tensor(tissue * disk, dtype=torch.float32), torch.tensor(disk)


def test_intensity_augs_keep_the_background_a_flat_region_below_the_tissue():
    cfg = augment_config({"intensity": {"noise": OFF}}).intensity
    for name in ("bias_field", "gamma", "contrast", "blur"):
        cfg[name].probability = [1.0, 1.0, 1.0]
    crops, disk = _disk_crops()
    out = IntensityAugmentation(cfg)(crops.clone(), torch.full((6,), 2), _gen(18))
    square = np.ones((3, 3), bool)  # the separable blur's support is a square of radius 6
    far = ~torch.tensor(ndimage.binary_dilation(disk.numpy(), square, iterations=7))
    for crop in out[:, 0]:
        background = crop[far]
        assert background.max() - background.min() < 1e-5  # still one flat value
        assert crop[disk].mean() > background.max() + 0.1  # tissue stays brighter
    assert not torch.allclose(out, crops)


def test_noise_alone_adds_zero_mean_noise_of_the_configured_size():
    cfg = augment_config({"intensity": NO_INTENSITY}).intensity
    cfg.noise = {"probability": [1.0, 1.0, 1.0], "std": [0.05, 0.05]}
    crops, _ = _disk_crops()
    out = IntensityAugmentation(cfg)(crops.clone(), torch.full((6,), 2), _gen(19))
    diff = (out - crops).flatten()
    assert abs(float(diff.mean())) < 0.005 and abs(float(diff.std()) - 0.05) < 0.003


def test_zero_probabilities_leave_crops_untouched():
    cfg = augment_config({"intensity": NO_INTENSITY}).intensity
    crops, _ = _disk_crops()
    out = IntensityAugmentation(cfg)(crops.clone(), torch.tensor([0, 1, 2, 2, 1, 0]), _gen(20))
    assert torch.equal(out, crops)


def test_probabilities_apply_per_crop_type():
    cfg = augment_config({"intensity": NO_INTENSITY}).intensity
    cfg.contrast = {"probability": [1.0, 0.0, 0.0], "contrast": [2.0, 2.0], "brightness": [0, 0]}
    crops, _ = _disk_crops()
    types = torch.tensor([0, 1, 2, 0, 1, 2])
    out = IntensityAugmentation(cfg)(crops.clone(), types, _gen(21))
    changed = (out != crops).flatten(1).any(1)
    assert changed.tolist() == [True, False, False, True, False, False]


# ----------------------------------------------------------------------------- collate and errors
def test_collate_turns_samples_into_the_batch_dict():
    images, scale, offset = _batch(b=4)
    samples = [(images[i].numpy(), float(scale[i]), float(offset[i])) for i in range(4)]
    out = MultiCropCollate(MultiCropAugmentation(SMALL, seed=22))(samples)
    direct = MultiCropAugmentation(SMALL, seed=22)(images, scale, offset)
    for key in ("global_crops", "local_crops", "masks"):
        assert torch.equal(out[key], direct[key])


def test_bad_samples_fail_with_one_clear_error():
    collate = MultiCropCollate(MultiCropAugmentation(SMALL, seed=0))
    good = (np.zeros((32, 32), np.uint8), 0.1, 0.0)
    with pytest.raises(DataError, match="sample 1"):
        collate([good, (np.zeros((32, 32), np.float32), 0.1, 0.0)])
    with pytest.raises(DataError, match="sample 1"):
        collate([good, (np.zeros((16, 16), np.uint8), 0.1, 0.0)])
    with pytest.raises(DataError, match=r"images.*uint8"):
        MultiCropAugmentation(SMALL)(torch.zeros(2, 32, 32, dtype=torch.int32), [1, 1], [0, 0])
    with pytest.raises(DataError, match=r"images.*uint8"):
        MultiCropAugmentation(SMALL)(torch.zeros(32, 32, dtype=torch.uint8), [1.0], [0.0])
    with pytest.raises(DataError, match="scale"):
        MultiCropAugmentation(SMALL)(torch.zeros(2, 32, 32, dtype=torch.uint8), [1.0], [0, 0])


def test_config_typos_and_bad_values_fail_at_construction():
    with pytest.raises(ConfigError, match="global_crop"):
        MultiCropAugmentation({"global_crop": {"size": 224}})
    with pytest.raises(ConfigError, match=r"intensity\.gama"):
        MultiCropAugmentation({"intensity": {"gama": {"probability": [1, 1, 1]}}})
    with pytest.raises(ConfigError, match="multiple of"):
        MultiCropAugmentation({"global_crops": {"size": 100}})
    with pytest.raises(ConfigError, match="probability"):
        MultiCropAugmentation({"intensity": {"blur": {"probability": [1.0, 0.5]}}})
    with pytest.raises(BrainDinoError, match="scale"):
        MultiCropAugmentation({"local_crops": {"scale": [0.5, 0.1]}})


def test_float_slices_give_the_same_crops_as_the_uint8_ones():
    images, scale, offset = _batch(b=2, size=48)
    images[:, 0, 0], images[:, 0, 1] = 0, 255  # full range: min-max rescaling == u8 / 255
    aug = MultiCropAugmentation(SMALL)
    as_u8 = aug(images, scale, offset, generator=_gen(23))
    as_f16 = aug(images.to(torch.float16), scale, offset, generator=_gen(23))
    for key in ("global_crops", "local_crops"):
        torch.testing.assert_close(as_f16[key], as_u8[key], atol=1e-4, rtol=1e-4)


def test_dataloader_workers_draw_different_augmentations():
    images, scale, offset = _batch(b=1, size=32)
    sample = (images[0], float(scale[0]), float(offset[0]))
    collate = MultiCropCollate(MultiCropAugmentation(SMALL, seed=24))
    loader = torch.utils.data.DataLoader(
        [sample] * 2, batch_size=1, num_workers=2, collate_fn=collate
    )
    first, second = list(loader)  # one batch from each worker, same input slice
    assert not torch.equal(first["global_crops"], second["global_crops"])


def test_gram_crops_are_the_global_boxes_at_twice_the_size_without_intensity_changes():
    """gram_ratio 2 (DINOv3's Gram teacher): the same boxes as the global crops, 2x the pixels,
    no intensity augmentation, and nothing else of the batch changes. With a full-image box the
    crops are plain bilinear resizes (F.interpolate, an independent path from grid_sample)."""
    images, scale, offset = _batch(b=3, size=64, seed=4)
    one = MultiCropAugmentation(SMALL, seed=0)(images, scale, offset, generator=_gen(9))
    two = MultiCropAugmentation(SMALL, seed=0, gram_ratio=2)(images, scale, offset, _gen(9))
    assert "gram_crops" not in one and two["gram_crops"].shape == (6, 1, 64, 64)
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=0, atol=0)

    whole = {
        **SMALL,
        "global_crops": {"size": 32, "scale": [1.0, 1.0]},
        "aspect_ratio": [1.0, 1.0],
        "flip_probability": 0.0,
    }
    out = MultiCropAugmentation(whole, seed=0, gram_ratio=2)(images, scale, offset, _gen(1))
    z = images.float().unsqueeze(1) * scale.view(-1, 1, 1, 1) + offset.view(-1, 1, 1, 1)
    expected = F.interpolate(z, size=(64, 64), mode="bilinear", align_corners=False)
    for crop in range(2):  # crop-major rows: both global crops of every slice
        torch.testing.assert_close(
            out["gram_crops"][crop * 3 : crop * 3 + 3], expected, atol=1e-4, rtol=0
        )
    with pytest.raises(ConfigError, match=r"gram\.resolution_ratio"):
        MultiCropAugmentation(SMALL, gram_ratio=0)
