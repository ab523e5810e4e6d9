"""Preprocessing: resampling, normalisation, storage, crop, slices and the inverse mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from braindino.errors import ConfigError, VolumeError
from braindino.io.volume import Volume
from braindino.preprocess import (
    axial_slices,
    foreground_box,
    from_uint8,
    preprocess_config,
    preprocess_volume,
    resample,
    robust_normalise,
    slice_pixel_affine,
    slices_to_volume,
    to_uint8,
    volume_to_slices,
)

# ---------------------------------------------------------------- helpers


def oblique_affine(spacing, degrees=10.0, origin=(-20.0, 15.0, 7.0)) -> np.ndarray:
    """A RAS-dominant affine rotated about S by ``degrees`` with the given voxel sizes."""
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing, float)
    affine[:3, 3] = origin
    return affine


def voxel_centres(shape, affine) -> np.ndarray:
    """RAS mm of every voxel centre, shape (*shape, 3), in float64."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def ellipsoid(shape, centre, radii) -> np.ndarray:
    """Boolean ellipsoid in voxel units."""
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def ramp(points: np.ndarray) -> np.ndarray:
    """A linear intensity ramp over RAS mm."""
    return 2.0 * points[..., 0] - 0.5 * points[..., 1] + 3.0 * points[..., 2] + 400.0


# ---------------------------------------------------------------- resampling


def test_resample_keeps_a_linear_ramp_at_its_physical_positions():
    shape, affine = (20, 16, 10), oblique_affine((0.8, 1.3, 2.5))
    volume = Volume(ramp(voxel_centres(shape, affine)).astype(np.float32), affine)
    out = resample(volume, (1.0, 1.0, 1.0), order=1)
    assert np.allclose(out.spacing, (1.0, 1.0, 1.0))
    # same field of view, within one target voxel per axis
    assert np.allclose(np.array(out.shape), np.array(shape) * (0.8, 1.3, 2.5), atol=0.5)
    # away from the edges (where values are clamped), the ramp is exact at the new positions
    src_index = voxel_centres(out.shape, np.linalg.inv(affine) @ out.affine)
    interior = np.all((src_index >= 2) & (src_index <= np.array(shape) - 3), axis=-1)
    assert interior.sum() > 500
    expected = ramp(voxel_centres(out.shape, out.affine))
    assert np.abs(out.data[interior] - expected[interior]).max() < 1e-3


def test_resample_linear_equals_scipy_map_coordinates():
    rng = np.random.default_rng(0)
    shape, affine = (12, 9, 7), oblique_affine((1.0, 0.7, 3.0))
    data = rng.normal(size=shape).astype(np.float32)
    out = resample(Volume(data, affine), (1.2, 1.0, 1.0), order=1, antialias=False)
    coords = voxel_centres(out.shape, np.linalg.inv(affine) @ out.affine)
    expected = ndimage.map_coordinates(
        data.astype(np.float64), np.moveaxis(coords, -1, 0), order=1, mode="nearest"
    )
    assert out.data.dtype == np.float32
    assert np.abs(out.data - expected).max() < 1e-5


def test_resample_nearest_takes_the_physically_nearest_label():
    rng = np.random.default_rng(1)
    shape, affine = (9, 8, 6), oblique_affine((1.0, 2.0, 0.5), degrees=-7.0)
    labels = rng.choice(np.array([0, 3, 7], np.int16), size=shape)
    out = resample(Volume(labels, affine), (1.5, 1.5, 1.5), order=0)
    assert out.data.dtype == np.int16
    assert set(np.unique(out.data)) <= {0, 3, 7}
    source_mm = voxel_centres(shape, affine).reshape(-1, 3)
    target_mm = voxel_centres(out.shape, out.affine).reshape(-1, 3)
    distances = ((target_mm[:, None, :] - source_mm[None, :, :]) ** 2).sum(-1)
    expected = labels.reshape(-1)[distances.argmin(axis=1)]
    assert np.array_equal(out.data.reshape(-1), expected)


def test_resample_skips_work_when_spacing_already_matches():
    volume = Volume(np.ones((4, 4, 4), np.float32), np.diag([1.0005, 1.0, 0.9995, 1.0]))
    assert resample(volume, (1.0, 1.0, 1.0)) is volume
    assert resample(volume, None) is volume
    moved = resample(volume, (2.0, 1.0, 1.0))
    assert moved.shape == (2, 4, 4)
    assert np.allclose(moved.spacing, (2.0, 1.0, 0.9995))  # untouched axes keep exact spacing


# ---------------------------------------------------------------- intensity


def test_robust_normalise_matches_float64_reference():
    rng = np.random.default_rng(2)
    data = rng.gamma(4.0, 50.0, size=(30, 20, 10)).astype(np.float32)
    data[:8] = 0.0  # background
    data[10, 10, 5] = 1e6  # outlier the clip must remove
    out, stats = robust_normalise(data, lower=1.0, upper=99.0, max_samples=0)
    nonzero = data[data != 0].astype(np.float64)
    low, high = np.percentile(nonzero, [1.0, 99.0])
    clipped = np.clip(nonzero, low, high)
    mean, std = clipped.mean(), clipped.std()
    expected = (np.clip(data.astype(np.float64), low, high) - mean) / std
    assert out.dtype == np.float32
    assert np.abs(out - expected).max() < 1e-4
    assert np.isclose(stats.lower_value, low) and np.isclose(stats.upper_value, high)
    assert np.isclose(out[data != 0].mean(), 0.0, atol=1e-5)
    assert np.isclose(out[data != 0].std(), 1.0, atol=1e-5)
    assert np.isclose(out.min(), stats.z_low, atol=1e-5)  # background sits at the low clip


def test_robust_normalise_subsample_error_is_small():
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 15.0, size=(64, 64, 50)).astype(np.float32)
    _, stats = robust_normalise(data, max_samples=20_000)
    values = data.ravel().astype(np.float64)
    for value, rank in ((stats.lower_value, 0.01), (stats.upper_value, 0.99)):
        assert abs((values < value).mean() - rank) < 0.003
    assert abs(stats.mean - values.mean()) < 0.5


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.zeros((5, 5, 5), np.float32), "empty"),
        (np.full((5, 5, 5), 7.0, np.float32), "constant"),
        (np.where(np.eye(5)[:, :, None] > 0, np.nan, 1.0) * np.ones((5, 5, 5)), "NaN"),
    ],
)
def test_robust_normalise_rejects_unusable_volumes(data, words):
    with pytest.raises(VolumeError, match=words) as info:
        robust_normalise(data, path="scan.nii.gz")
    assert "scan.nii.gz" in str(info.value) and "Fix:" in str(info.value)


def test_uint8_round_trip_error_is_at_most_half_a_step():
    rng = np.random.default_rng(4)
    low, high = -1.7, 4.3
    values = np.concatenate([rng.uniform(low, high, 10_000), [low, high]]).astype(np.float32)
    codes, scale, offset = to_uint8(values, (low, high))
    assert codes.dtype == np.uint8 and codes.min() == 0 and codes.max() == 255
    assert np.isclose(scale, (high - low) / 255) and np.isclose(offset, low)
    error = np.abs(from_uint8(codes, scale, offset).astype(np.float64) - values)
    assert error.max() <= scale / 2 * (1 + 1e-4)
    outside, _, _ = to_uint8(np.array([low - 5, high + 5], np.float32), (low, high))
    assert outside.tolist() == [0, 255]


# ---------------------------------------------------------------- crop


def test_foreground_box_finds_a_blob_with_margin_in_mm():
    data = np.zeros((40, 30, 20), np.float32)
    data[10:25, 5:20, 3:12] = ellipsoid((15, 15, 9), (7, 7, 4), (8, 8, 5)) * 100.0
    start, stop = foreground_box(data, threshold=0.0, margin=4.0, spacing=(1.0, 2.0, 1.5))
    # margins: 4 mm = 4, 2 and 3 voxels; clipped at the volume's edges
    assert start == (10 - 4, 5 - 2, 3 - 3) and stop == (25 + 4, 20 + 2, 12 + 3)
    assert foreground_box(data) == ((10, 5, 3), (25, 20, 12))


def test_foreground_box_ignores_noise_background_and_specks():
    rng = np.random.default_rng(5)
    data = np.abs(rng.normal(0, 5.0, (50, 50, 40))).astype(np.float32)  # non-stripped background
    blob = ellipsoid(data.shape, (25, 22, 20), (12, 14, 10))
    data[blob] += 300.0
    data[2, 47, 3] = 500.0  # an isolated bright speck
    start, stop = foreground_box(data, threshold=60.0, min_plane_fraction=0.005)
    where = np.argwhere(blob)
    # the box hugs the blob (its one-voxel tips may fall outside) and ignores the speck
    assert np.all(np.abs(np.array(start) - where.min(0)) <= 1)
    assert np.all(np.abs(np.array(stop) - (where.max(0) + 1)) <= 1)
    box = blob[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
    assert box.sum() >= 0.999 * blob.sum()


# ---------------------------------------------------------------- slices


def test_axial_slices_keep_aspect_and_centre_a_disk():
    nx, ny, size, radius = 40, 80, 224, 15.0
    disk = ellipsoid((nx, ny, 1), (19.5, 39.5, 0), (radius, radius, 1.0))[:, :, 0]
    data = np.zeros((nx, ny, 6), np.float32)
    data[:, :, 1:5] = disk[:, :, None] * 10.0
    out = axial_slices(data, size=size, min_foreground=0.05)
    assert out.z.tolist() == [1, 2, 3, 4]  # the empty end slices are dropped
    assert np.allclose(out.foreground, disk.mean())
    assert out.slices.shape == (4, size, size) and out.slices.dtype == np.float32
    assert np.isclose(out.scale, size / ny) and out.pad_before == (20, 0)
    inside = out.slices[0] > 5.0
    rows, cols = np.nonzero(inside)
    zoomed = radius * size / ny
    assert abs(inside.sum() / (np.pi * zoomed**2) - 1) < 0.03  # a disk of the zoomed radius
    assert abs(np.ptp(rows) - np.ptp(cols)) <= 1  # as tall as wide
    assert abs(rows.mean() - (size - 1) / 2) < 0.5 and abs(cols.mean() - (size - 1) / 2) < 0.5


# ---------------------------------------------------------------- whole chain + inverse


def test_preprocess_config_defaults_overrides_and_errors():
    cfg = preprocess_config()
    assert list(cfg.spacing) == [1.0, 1.0, 1.0] and cfg.slices.size == 224
    assert cfg.storage.dtype == "uint8" and cfg.crop.enabled is True
    assert preprocess_config({"slices.size": 96}).slices.size == 96
    assert preprocess_config({"slices": {"min_foreground": 0.2}}).slices.min_foreground == 0.2
    with pytest.raises(ConfigError, match=r"slices\.sise"):
        preprocess_config({"slices": {"sise": 96}})
    with pytest.raises(ConfigError, match=r"slices\.size"):
        preprocess_config({"slices.size": 0})
    with pytest.raises(ConfigError, match="lower_percentile"):
        preprocess_config({"intensity.lower_percentile": 99.5})


def test_preprocess_volume_places_every_pixel_at_its_physical_position():
    shape, affine = (30, 24, 12), oblique_affine((1.2, 1.0, 3.0), degrees=5.0)
    centres = voxel_centres(shape, affine)
    data = np.zeros(shape, np.float32)
    region = (slice(5, 25), slice(4, 20), slice(2, 10))
    data[region] = ramp(centres[region])
    cfg = {
        "slices.size": 64,
        "intensity": {"lower_percentile": 0.0, "upper_percentile": 100.0, "max_samples": 0},
    }
    stack = preprocess_volume(Volume(data, affine, path="ramp.nii.gz"), cfg)
    g = stack.geometry
    assert stack.slices.dtype == np.uint8 and stack.slices.shape[1:] == (64, 64)
    assert np.allclose(np.sqrt((g.resampled_affine[:3, :3] ** 2).sum(0)), 1.0)
    nonzero = data[data != 0].astype(np.float64)
    mean, std = nonzero.mean(), nonzero.std()
    uv = np.stack(np.meshgrid(np.arange(64), np.arange(64), indexing="ij"), -1).reshape(-1, 2)
    pixels = np.column_stack([uv, np.zeros(len(uv)), np.ones(len(uv))])
    checked = 0
    for k, z in enumerate(stack.z):
        mm = (slice_pixel_affine(g, int(z)) @ pixels.T).T[:, :3]
        src = (mm - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
        lows = np.array([r.start for r in region]) + 1.5
        highs = np.array([r.stop for r in region]) - 2.5
        interior = np.all((src >= lows) & (src <= highs), axis=1)
        if not interior.any():
            continue
        expected = (ramp(mm[interior]) - mean) / std
        got = from_uint8(stack.slices[k].reshape(-1)[interior], stack.scale, stack.offset)
        assert np.abs(got - expected).max() <= stack.scale / 2 + 1e-3
        checked += interior.sum()
    assert checked > 1000


@pytest.mark.parametrize(
    ("spacing", "size"),
    [((1.0, 1.0, 3.0), 96), ((0.8, 0.8, 1.0), 40)],  # anisotropic; slices shrunk in-plane
)
def test_label_map_round_trip_through_the_slice_geometry(spacing, size):
    shape = (48, 56, 20) if spacing[2] == 3.0 else (70, 64, 50)
    affine = oblique_affine(spacing, degrees=3.0)
    centre = np.array(shape) / 2 - 0.5
    head = ellipsoid(shape, centre, np.array(shape) * 0.42)
    labels = np.zeros(shape, np.uint8)
    labels[ellipsoid(shape, centre, np.array(shape) * 0.3)] = 1
    off_centre = centre + np.array([3, -2, 3])  # also in z, so a flipped stack would show
    labels[ellipsoid(shape, off_centre, np.array(shape) * 0.15)] = 2
    image = np.where(head, 100.0 + 50.0 * labels, 0.0).astype(np.float32)
    stack = preprocess_volume(Volume(image, affine), {"slices.size": size})
    per_slice = volume_to_slices(labels, stack.z, stack.geometry, order=0)
    assert per_slice.shape == (len(stack.z), size, size) and per_slice.dtype == np.uint8
    back = slices_to_volume(per_slice, stack.z, stack.geometry, order=0)
    assert back.shape == shape and back.dtype == np.uint8
    for label in (1, 2):
        assert dice(back == label, labels == label) >= 0.95
    # the image slices and the label slices line up: label 2 is the brightest region
    image_slices = from_uint8(stack.slices, stack.scale, stack.offset)
    assert image_slices[per_slice == 2].mean() > image_slices[per_slice == 1].mean() + 0.5


def test_slices_to_volume_fills_missing_slices_with_zero():
    shape = (32, 32, 24)
    image = ellipsoid(shape, (15.5, 15.5, 11.5), (12, 12, 10)).astype(np.float32) * 50 + 1.0
    image[:, :, :3] = 0
    stack = preprocess_volume(Volume(image, np.eye(4)), {"slices.size": 32, "crop.enabled": False})
    ones = np.ones((len(stack.z), 32, 32), np.float32)
    keep = stack.z % 2 == 0
    back = slices_to_volume(ones[keep], stack.z[keep], stack.geometry, order=0)
    assert np.array_equal(np.flatnonzero(back.any(axis=(0, 1))), stack.z[keep])
    linear = slices_to_volume(ones, stack.z, stack.geometry, order=1)
    assert np.allclose(linear[:, :, stack.z], 1.0)


def test_preprocess_volume_errors_name_the_file():
    affine = np.eye(4)
    with pytest.raises(VolumeError, match="empty") as info:
        preprocess_volume(Volume(np.zeros((8, 8, 8), np.float32), affine, path="blank.nii"))
    assert "blank.nii" in str(info.value)
    with pytest.raises(VolumeError, match="constant"):
        preprocess_volume(Volume(np.full((8, 8, 8), 3.0, np.float32), affine, path="flat.nii"))
    with pytest.raises(VolumeError, match="3D"):
        preprocess_volume(Volume(np.ones((8, 8), np.float32), affine, path="flat2d.nii"))
    speck = np.zeros((20, 20, 20), np.float32)
    speck[10, 10, 8:12] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(VolumeError, match="no axial slice") as info:
        preprocess_volume(Volume(speck, affine, path="tiny.nii"), {"slices.min_foreground": 0.5})
    assert "tiny.nii" in str(info.value)


def test_float16_storage_keeps_z_scores():
    image = ellipsoid((24, 24, 12), (11.5, 11.5, 5.5), (10, 10, 5)).astype(np.float32)
    image *= np.linspace(10, 100, 24, dtype=np.float32)[:, None, None]
    volume = Volume(image, np.eye(4))
    as_uint8 = preprocess_volume(volume, {"slices.size": 32})
    as_float = preprocess_volume(volume, {"slices.size": 32, "storage.dtype": "float16"})
    assert as_float.slices.dtype == np.float16 and (as_float.scale, as_float.offset) == (1.0, 0.0)
    restored = from_uint8(as_uint8.slices, as_uint8.scale, as_uint8.offset)
    assert np.abs(restored - as_float.slices.astype(np.float32)).max() <= as_uint8.scale / 2 + 0.01


def test_real_non_stripped_scan_from_nibabel():
    nib = pytest.importorskip("nibabel")
    path = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.exists():
        pytest.skip("nibabel's test scan is not installed")
    image = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    volume = Volume(data, image.affine, path=str(path))
    stack = preprocess_volume(volume, {"slices.size": 96})
    g = stack.geometry
    assert g.resampled_shape == tuple(2 * s for s in data.shape)  # 2 mm -> 1 mm
    assert stack.slices.dtype == np.uint8 and len(stack.z) >= 20
    assert (stack.foreground >= 0.05).all()
    assert all(g.crop_start[a] <= z < g.crop_stop[a] for a, z in [(2, stack.z.min())])
    head = ndimage.binary_fill_holes(data > np.percentile(data, 60))
    per_slice = volume_to_slices(head.astype(np.uint8), stack.z, g, order=0)
    back = slices_to_volume(per_slice, stack.z, g, order=0).astype(bool)
    assert dice(back, head) >= 0.95
