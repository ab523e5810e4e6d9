"""Frozen feature extraction (encode_volume) and the on-disk feature cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from braindino.errors import BrainDinoError
from braindino.features import FeatureCache, encode_volume, resample_depth
from braindino.io import read_volume, write_volume
from braindino.models import create_backbone, load_encoder, save_encoder
from braindino.preprocess import preprocess_config, preprocess_volume

ARCH = "vit_micro_patch16_dinov3"
FAST = {"spacing": 4.0, "slices.size": 32}  # small inputs for a fast random encoder
EXPORTED_PREPROCESS = {  # what an export records (no slices.size: the img_size decides)
    "spacing": [4.0, 4.0, 4.0],
    "intensity": {"lower_percentile": 0.5, "upper_percentile": 99.5},
    "slices": {"min_foreground": 0.1},
}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory, mni_2mm) -> list[Path]:
    """Two small real-anatomy volumes (the MNI template at 2 mm, and a shifted copy)."""
    data, affine = mni_2mm
    folder = tmp_path_factory.mktemp("vols")
    first, second = folder / "a.nii.gz", folder / "b.nii.gz"
    write_volume(data, first, affine=affine)
    write_volume(np.roll(data, 3, axis=1) * 1.5, second, affine=affine)
    return [first, second]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(f"random:{ARCH}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A BrainDINO export with img_size 32 and its pretraining preprocessing recorded."""
    torch.manual_seed(3)
    backbone = create_backbone(ARCH, img_size=32)
    out = tmp_path_factory.mktemp("enc") / "encoder"
    save_encoder(backbone, out, extra={"img_size": 32, "preprocessing": EXPORTED_PREPROCESS})
    return load_encoder(out)


def count_calls(model, monkeypatch) -> list[str]:
    """Record every forward call of ``model`` (features or intermediate layers)."""
    calls: list[str] = []
    for name in ("forward_features", "get_intermediate_layers"):
        original = getattr(model, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(model, name, wrapper)
    return calls


# ------------------------------------------------------------------------------------ encode
def test_encode_volume_shapes_blocks_and_positions(encoder, volumes):
    stack = preprocess_volume(read_volume(volumes[0]), preprocess_config(FAST))
    full = encode_volume(encoder, volumes[0], preprocess=FAST)
    n, dim = len(stack.z), encoder.embed_dim
    for key in ("cls", "registers_mean", "patch_mean"):
        assert full[key].shape == (n, dim) and full[key].dtype == np.float32
    np.testing.assert_array_equal(full["z"], stack.z)
    affine = stack.geometry.resampled_affine
    assert np.all(np.diff(full["z_mm"]) > 0)
    np.testing.assert_allclose(np.diff(full["z_mm"]), np.diff(stack.z) * affine[2, 2], rtol=1e-5)

    fixed = encode_volume(encoder, volumes[0], preprocess=FAST, slices=12, blocks=[1, -1])
    assert fixed["cls"].shape == (12, dim) and fixed["blocks_cls"].shape == (12, 2, dim)
    assert list(fixed["blocks"]) == [1, encoder.depth - 1]
    np.testing.assert_allclose(fixed["blocks_cls"][:, 1], fixed["cls"], atol=1e-5)
    assert fixed["z"][0] == stack.z.min() and fixed["z"][-1] == stack.z.max()
    # the end slices of the resampled stack are the first and last kept slices, unchanged
    np.testing.assert_allclose(fixed["cls"][[0, -1]], full["cls"][[0, -1]], atol=1e-4)


def test_encode_volume_uses_the_pretraining_preprocessing(exported, volumes):
    """Reference: the export's preprocessing at its img_size, fed to the plain timm model."""
    assert exported.source.startswith("export:")
    cfg = preprocess_config({**EXPORTED_PREPROCESS, "slices": {"min_foreground": 0.1, "size": 32}})
    stack = preprocess_volume(read_volume(volumes[0]), cfg)
    x = stack.slices.astype(np.float64) * stack.scale + stack.offset
    with torch.no_grad():
        tokens = exported.vit.forward_features(torch.tensor(x, dtype=torch.float32)[:, None])
    prefix = 1 + exported.num_register_tokens
    features = encode_volume(exported, volumes[0])
    np.testing.assert_allclose(features["cls"], tokens[:, 0].numpy(), atol=1e-4)
    np.testing.assert_allclose(
        features["patch_mean"], tokens[:, prefix:].mean(1).numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        features["registers_mean"], tokens[:, 1:prefix].mean(1).numpy(), atol=1e-4
    )
    other = encode_volume(exported, volumes[0], preprocess={"spacing": 6.0})
    assert other["cls"].shape[0] < features["cls"].shape[0]  # overrides go on top of the export


def test_resample_depth_matches_linear_interpolation():
    rng = np.random.default_rng(0)
    z = np.array([8.0, 2.0, 3.0, 9.0, 5.0])  # unsorted, unevenly spaced
    images = rng.normal(size=(5, 3, 4)).astype(np.float32)
    out, positions = resample_depth(images, z, 7)
    np.testing.assert_allclose(positions, np.linspace(2, 9, 7))
    order = np.argsort(z)
    for i in range(3):
        for j in range(4):
            expected = np.interp(positions, z[order], images[order, i, j].astype(np.float64))
            np.testing.assert_allclose(out[:, i, j], expected, atol=1e-5)
    single, pos = resample_depth(images[:1], z[:1], 4)
    assert single.shape == (4, 3, 4) and np.all(pos == 8.0)


def test_bad_encode_options_are_clear_errors(encoder, volumes, tmp_path):
    with pytest.raises(BrainDinoError, match="slices"):
        encode_volume(encoder, volumes[0], slices=0)
    with pytest.raises(BrainDinoError, match="block index"):
        encode_volume(encoder, volumes[0], blocks=[99])
    with pytest.raises(BrainDinoError, match="not found"):
        FeatureCache(tmp_path / "c").get_or_compute(encoder, tmp_path / "missing.nii.gz")


# ------------------------------------------------------------------------------------ cache
def test_progress_bar_counts_each_calls_own_volumes(encoder, volumes, tmp_path, capsys):
    cache = FeatureCache(tmp_path / "cache")
    cache.encode_many(encoder, volumes, preprocess=FAST, blocks=[0], progress=True)
    assert "cached=0, encoded=2" in capsys.readouterr().err
    cache.encode_many(encoder, volumes, preprocess=FAST, blocks=[0], progress=True)
    assert "cached=2, encoded=0" in capsys.readouterr().err  # not the instance's running totals


def test_warm_cache_never_calls_the_encoder(encoder, volumes, tmp_path, monkeypatch):
    calls = count_calls(encoder, monkeypatch)
    cold = FeatureCache(tmp_path / "cache")
    first = cold.encode_many(encoder, volumes, preprocess=FAST, blocks=[0], progress=False)
    assert cold.misses == 2 and cold.hits == 0 and len(calls) > 0
    entry = next((tmp_path / "cache").rglob("*.npz"))
    with np.load(entry) as stored:
        assert stored["cls"].dtype == np.float16 and stored["blocks_cls"].dtype == np.float16
    assert len(cold.index()) == 2

    before = len(calls)
    warm = FeatureCache(tmp_path / "cache")  # a later run: a new cache object, same folder
    second = warm.encode_many(encoder, volumes, preprocess=FAST, blocks=[0], progress=False)
    assert len(calls) == before and warm.hits == 2 and warm.misses == 0
    for path in map(str, volumes):
        for key in first[path]:
            np.testing.assert_array_equal(first[path][key], second[path][key])
    direct = encode_volume(encoder, volumes[1], preprocess=FAST, blocks=[0])
    np.testing.assert_allclose(second[str(volumes[1])]["cls"], direct["cls"], rtol=2e-3, atol=2e-3)


def test_cache_key_follows_encoder_preprocessing_options_and_file(encoder, volumes, tmp_path):
    cache = FeatureCache(tmp_path / "cache")

    def key(model=encoder, path=volumes[0], **kw) -> str:
        return cache.key(cache.settings(model, **kw), path)[0]

    base = key(preprocess=FAST)
    assert key(preprocess=FAST) == base
    same_weights = load_encoder(f"random:{ARCH}", seed=0)
    assert key(same_weights, preprocess=FAST) == base
    assert key(load_encoder(f"random:{ARCH}", seed=1), preprocess=FAST) != base
    assert key(preprocess={**FAST, "intensity.upper_percentile": 98.0}) != base
    assert key(preprocess=FAST, slices=16) != base
    assert key(preprocess=FAST, blocks=[0]) != base
    assert key(path=volumes[1], preprocess=FAST) != base

    with torch.no_grad():  # weights changed in place (a training step) -> new identity
        same_weights.vit.patch_embed.proj.weight.add_(0.01)
    assert key(same_weights, preprocess=FAST) != base

    copy = tmp_path / "copy.nii.gz"
    copy.write_bytes(volumes[0].read_bytes())
    copied = key(path=copy, preprocess=FAST)
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert key(path=copy, preprocess=FAST) != copied  # the file was touched / rewritten
