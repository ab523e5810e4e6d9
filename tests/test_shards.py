"""Slice shards: writer layout, reader random access, pickling, and the prepare round trip."""

from __future__ import annotations

import os
import pickle

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from braindino.data.inputs import discover_inputs
from braindino.data.prepare import load_prepare_config, prepare_shards
from braindino.data.shards import (
    SLICE_DTYPE,
    VOLUME_DTYPE,
    SliceShardReader,
    SliceShardWriter,
    write_index,
)
from braindino.errors import DataError

FAST = ["preprocess.spacing=null", "preprocess.slices.size=32"]


def _write_set(root, volumes, cap):
    """Write ``volumes`` (list of uint8 [n,S,S]) through the writer and a hand-built index."""
    committed = []
    writer = SliceShardWriter(root / "shards", cap, on_commit=lambda s, n: committed.append(n))
    places = [writer.add_volume(v) for v in volumes]
    writer.close()
    n_total = sum(len(v) for v in volumes)
    slices = np.zeros(n_total, SLICE_DTYPE)
    table = np.zeros(len(volumes), VOLUME_DTYPE)
    first = 0
    for v, (vol, (shard, row)) in enumerate(zip(volumes, places)):
        part = slices[first : first + len(vol)]
        part["shard"], part["row"], part["volume"] = shard, row + np.arange(len(vol)), v
        part["z"], part["dataset"] = np.arange(len(vol)) + 10 * v, v % 2
        table[v] = (first, len(vol), v % 2, 0, 0.5, -1.0)
        first += len(vol)
    meta = {
        "slice_size": volumes[0].shape[1],
        "dtype": volumes[0].dtype.name,
        "shards": [
            {"file": f"shards/shard-{s:05d}.u8", "slices": n} for s, n in enumerate(committed)
        ],
        "datasets": [{"name": "a", "weight": 2.0}, {"name": "b", "weight": 0.5}],
        "modalities": ["T1"],
    }
    write_index(root, slices, table, [{"path": f"v{v}"} for v in range(len(volumes))], meta)
    return places, committed


@pytest.fixture
def small_set(tmp_path):
    rng = np.random.default_rng(0)
    volumes = [rng.integers(0, 256, (n, 8, 8), dtype=np.uint8) for n in (5, 3, 7, 2, 4)]
    places, committed = _write_set(tmp_path, volumes, cap=8)
    return tmp_path, volumes, places, committed


def test_writer_keeps_whole_volumes_per_shard(small_set):
    root, volumes, places, committed = small_set
    # cap 8: [5+3] [7] [2+4]; a volume never straddles two shards
    assert places == [(0, 0), (0, 5), (1, 0), (2, 0), (2, 2)]
    assert committed == [8, 7, 6]
    assert sorted(os.listdir(root / "shards")) == [f"shard-0000{i}.u8" for i in range(3)]
    raw = np.fromfile(root / "shards" / "shard-00002.u8", np.uint8).reshape(-1, 8, 8)
    np.testing.assert_array_equal(raw, np.concatenate([volumes[3], volumes[4]]))


def test_writer_rejects_mixed_slice_sizes(tmp_path):
    writer = SliceShardWriter(tmp_path, 10)
    writer.add_volume(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="differ"):
        writer.add_volume(np.zeros((2, 9, 9), np.uint8))
    with pytest.raises(DataError, match="uint8/float16"):
        writer.add_volume(np.zeros((2, 8, 8), np.float32))


def test_reader_random_access_matches_written_slices(small_set):
    root, volumes, _, _ = small_set
    reader = SliceShardReader(root)
    flat = np.concatenate(volumes)
    owner = np.repeat(np.arange(len(volumes)), [len(v) for v in volumes])
    assert len(reader) == len(flat) == 21
    for i in np.random.default_rng(1).permutation(len(flat)):
        image, info = reader[i]
        np.testing.assert_array_equal(image, flat[i])
        assert image.dtype == np.uint8 and image.flags.writeable
        assert info.volume == owner[i] and info.dataset == owner[i] % 2
        # z-score = uint8 * scale + offset of the volume (0.5, -1 here), computed in float64
        np.testing.assert_allclose(reader.zscore(i), flat[i].astype(np.float64) * 0.5 - 1.0)
    np.testing.assert_array_equal(reader[-1][0], flat[-1])
    with pytest.raises(IndexError):
        reader[len(flat)]


def test_reader_sampler_accessors(small_set):
    root, volumes, _, _ = small_set
    reader = SliceShardReader(root)
    sizes = [len(v) for v in volumes]
    expected_ids = np.repeat(np.arange(len(volumes)) % 2, sizes)
    np.testing.assert_array_equal(reader.dataset_ids, expected_ids)
    assert reader.dataset_names == ["a", "b"]
    np.testing.assert_array_equal(reader.dataset_weights, [2.0, 0.5])
    np.testing.assert_array_equal(reader.slices_per_dataset, [5 + 7 + 4, 3 + 2])
    assert reader.volume(3) == {"path": "v3"}


def test_reader_pickles_small_and_reopens_lazily(small_set):
    root, *_ = small_set
    reader = SliceShardReader(root)
    reader[3]  # open the memmaps in this process
    blob = pickle.dumps(reader)
    assert len(blob) < 4000  # only the root and the small meta travel, never the arrays
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone[12][0], reader[12][0])


def test_reader_refuses_unfinished_or_damaged_sets(small_set, tmp_path_factory):
    root, *_ = small_set
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataError, match=r"meta\.json missing"):
        SliceShardReader(empty)
    shard = root / "shards" / "shard-00001.u8"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DataError, match=r"shard-00001\.u8"):
        SliceShardReader(root)


def test_float16_storage_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    volumes = [rng.normal(size=(n, 6, 6)).astype(np.float16) for n in (3, 4)]
    _write_set(tmp_path, volumes, cap=5)
    reader = SliceShardReader(tmp_path)
    assert reader.dtype == np.float16
    np.testing.assert_array_equal(reader[5][0], volumes[1][2])


def _scan_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "s1").mkdir(parents=True)
    (folder / "s2").mkdir()
    anat = nib.load(os.path.join(data_path, "anatomical.nii"))
    nib.save(anat, folder / "s1" / "anat_T1.nii.gz")
    # the same scan stored LPS-first with a rescaled intensity range
    data = np.asarray(anat.dataobj, np.float32)[::-1, ::-1] * 3.0 + 7.0
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [(data.shape[0] - 1), (data.shape[1] - 1)]
    nib.save(nib.Nifti1Image(data, anat.affine @ flip), folder / "s2" / "anat_T2.nii")
    return folder


def test_prepare_round_trip_equals_preprocess_output(tmp_path):
    from braindino.io import read_volume
    from braindino.preprocess import preprocess_config, preprocess_volume

    folder = _scan_folder(tmp_path)
    cfg = load_prepare_config(dotlist=FAST)
    prepare_shards(discover_inputs([str(folder)]), tmp_path / "u8", cfg, progress_bar=False)
    cfg16 = load_prepare_config(dotlist=[*FAST, "preprocess.storage.dtype=float16"])
    prepare_shards(discover_inputs([str(folder)]), tmp_path / "f16", cfg16, progress_bar=False)
    reader, reader16 = SliceShardReader(tmp_path / "u8"), SliceShardReader(tmp_path / "f16")
    settings = preprocess_config({"spacing": None, "slices.size": 32})
    first = 0
    for v in range(reader.n_volumes):
        record = reader.volume(v)
        stack = preprocess_volume(read_volume(record["path"]), settings)
        n = len(stack.slices)
        assert record["first_slice"] == first and record["n_slices"] == n
        for k in range(n):
            image, info = reader[first + k]
            np.testing.assert_array_equal(image, stack.slices[k])  # exact uint8
            assert info.z == stack.z[k] and info.volume == v
            # z-scores agree with the float16-stored z-scores within the uint8 step
            step = record["scale"]
            z16 = reader16[first + k][0].astype(np.float64)
            tol = step / 2 + np.abs(z16) * 2**-10 + 1e-6
            assert (np.abs(reader.zscore(first + k) - z16) <= tol).all()
        first += n
    assert first == len(reader) == len(reader16)
    # the two copies of one scan (RAS and LPS storage, rescaled) give the same uint8 slices
    a = np.stack([reader[i][0] for i in range(reader.volume(0)["n_slices"])])
    b = np.stack([reader[i][0] for i in range(a.shape[0], len(reader))])
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_sample_gives_stored_slice_with_its_volume_scaling(tmp_path, nibabel_data):
    """``reader.sample(i)`` is what the pretraining loader reads: bytes + z-score scaling."""
    import subprocess
    import sys
    from pathlib import Path

    from braindino.data.shards import SliceShardReader

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    cmd = [sys.executable, str(root / "pretrain/prepare.py"), "--out", str(out), "--quiet"]
    subprocess.run([*cmd, str(nibabel_data / "anatomical.nii")], check=True)
    reader = SliceShardReader(out)
    for i in (0, len(reader) // 2, len(reader) - 1):
        image, scale, offset = reader.sample(i)
        stored, _ = reader[i]
        np.testing.assert_array_equal(image, stored)
        np.testing.assert_allclose(image * scale + offset, reader.zscore(i), rtol=1e-6, atol=1e-5)
