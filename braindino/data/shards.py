"""Slice shards: preprocessed axial slices in a few large raw files plus a compact index.

On disk, under one output folder::

    shards/shard-00000.u8      raw [n, S, S] slices (uint8; float16 if preprocess stores that),
                               C order, whole volumes per shard
    index/slices.npy           one record per slice  (SLICE_DTYPE: shard, row, volume, z, …)
    index/volumes.npy          one record per volume (VOLUME_DTYPE: first slice, scale, offset, …)
    index/volumes.jsonl        one JSON line per volume (path, subject, dataset, geometry, …)
    index/meta.json            sizes, shard list, dataset names + sampling weights, modalities

``meta.json`` is written last: a folder without it is not (yet) a readable shard set. Every file
is written under a temporary name and moved into place with ``os.replace``, so a reader never sees
a half-written shard. ``SliceShardReader`` memory-maps the files lazily in each process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from braindino.errors import DataError
from braindino.io.atomic import (
    AtomicFile,
    atomic_write,
    save_npy_atomic,
    storage_error,
    write_json_atomic,
)
from braindino.preprocess.settings import STORAGE_DTYPES

FORMAT = "braindino-slice-shards"
FORMAT_VERSION = 1
SLICE_DTYPE = np.dtype(
    [
        ("shard", "<i4"),
        ("row", "<i4"),
        ("volume", "<i4"),
        ("z", "<i4"),
        ("dataset", "<i2"),
        ("modality", "<i2"),
        ("foreground", "<f4"),
    ]
)
VOLUME_DTYPE = np.dtype(
    [
        ("first_slice", "<i8"),
        ("n_slices", "<i4"),
        ("dataset", "<i2"),
        ("modality", "<i2"),
        ("scale", "<f8"),
        ("offset", "<f8"),
    ]
)


def shard_name(number: int) -> str:
    """File name of shard ``number`` (``shard-00003.u8``)."""
    return f"shard-{number:05d}.u8"


class SliceShardWriter:
    """Append whole volumes of slices (uint8 or float16) to shards of at most ``slices_per_shard``.

    A volume that does not fit in the current shard starts the next one (a volume larger than
    the limit gets a shard of its own). A shard is written as a temporary file and becomes
    visible under its final name only when complete (``commit``); ``on_commit(number, n_slices)``
    is called after each commit, e.g. to record progress for a resumed run. As a context manager
    it closes on success and ``abort``s (deletes the partial shard) on an error.
    """

    def __init__(
        self,
        folder: str | Path,
        slices_per_shard: int,
        first_shard: int = 0,
        on_commit: Callable[[int, int], None] | None = None,
    ):
        if slices_per_shard < 1:
            raise DataError(
                f"slices_per_shard must be >= 1 (got {slices_per_shard})",
                path="shards.slices_per_shard",
                fix="set a positive number, e.g. 16384",
            )
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slices_per_shard = int(slices_per_shard)
        self.shard = int(first_shard)
        self.rows = 0
        self.slice_shape: tuple[int, int] | None = None
        self.dtype: np.dtype | None = None
        self.on_commit = on_commit
        self._handle: Any = None
        self._file: AtomicFile | None = None

    def add_volume(self, slices: np.ndarray) -> tuple[int, int]:
        """Append one volume's slices ``[n, S, S]``; return (shard number, first row)."""
        slices = np.ascontiguousarray(slices)
        square = slices.ndim == 3 and slices.shape[1] == slices.shape[2]
        if slices.dtype.name not in STORAGE_DTYPES or not square:
            raise DataError(
                f"slices must be uint8/float16 [n, S, S], got {slices.dtype} {slices.shape}",
                path=str(self.folder),
                fix="pass SliceStack.slices from preprocess_volume",
            )
        if self.slice_shape is None:
            self.slice_shape = (int(slices.shape[1]), int(slices.shape[2]))
            self.dtype = slices.dtype
        elif slices.shape[1:] != self.slice_shape or slices.dtype != self.dtype:
            raise DataError(
                f"slices {slices.dtype} {slices.shape[1:]} differ from the shard's "
                f"{self.dtype} {self.slice_shape}",
                path=str(self.folder),
                fix="prepare all volumes with the same preprocess config",
            )
        if self.rows and self.rows + len(slices) > self.slices_per_shard:
            self.commit()
        if self._handle is None:
            self._file = AtomicFile(self._path(), fsync=True)
            self._handle = open(self._file.tmp, "wb")  # noqa: SIM115 (kept open across calls)
        first_row = self.rows
        try:
            self._handle.write(slices.tobytes())
        except OSError as exc:  # a full disk: name the shard, free its space
            self.abort()
            raise storage_error(exc, self._path()) from exc
        self.rows += len(slices)
        return self.shard, first_row

    def _path(self) -> Path:
        return self.folder / shard_name(self.shard)

    def commit(self) -> None:
        """Close the current shard (if it holds slices) and move it to its final name."""
        if self._handle is None or self._file is None:
            return
        try:
            self._handle.close()
        except OSError as exc:
            self.abort()
            raise storage_error(exc, self._path()) from exc
        self._file.commit()
        number, rows = self.shard, self.rows
        self._handle, self._file = None, None
        self.shard += 1
        self.rows = 0
        if self.on_commit is not None:
            self.on_commit(number, rows)

    def close(self) -> None:
        """Commit the last, partly filled shard."""
        self.commit()

    def __enter__(self) -> SliceShardWriter:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        """Commit the last shard; after an error (a full disk, a kill) drop the partial one."""
        if exc is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Drop the shard being written (after an error): its temporary file is deleted."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
        if self._file is not None:
            self._file.discard()
        self._handle, self._file = None, None


def write_index(
    root: str | Path,
    slices: np.ndarray,
    volumes: np.ndarray,
    volume_records: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> None:
    """Write the index files under ``root/index``; ``meta.json`` last, which publishes the set.

    ``slices``/``volumes``: structured arrays of ``SLICE_DTYPE``/``VOLUME_DTYPE``;
    ``volume_records``: one JSON-able mapping per volume; ``meta``: at least ``slice_size``,
    ``dtype``, ``shards`` ([{file, slices}]), ``datasets`` ([{name, weight}]) and ``modalities``.
    """
    index = Path(root) / "index"
    save_npy_atomic(index / "slices.npy", np.asarray(slices, dtype=SLICE_DTYPE))
    save_npy_atomic(index / "volumes.npy", np.asarray(volumes, dtype=VOLUME_DTYPE))
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in volume_records)
    atomic_write(index / "volumes.jsonl", lambda h: h.write(lines), mode="w")
    full = {
        **meta,
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "slices": len(slices),
        "volumes": len(volumes),
    }
    write_json_atomic(index / "meta.json", full)


class SliceInfo(NamedTuple):
    """Where one slice came from: its volume, axial index z, dataset and modality ids."""

    index: int
    volume: int
    z: int
    dataset: int
    modality: int
    foreground: float


class SliceShardReader:
    """Random access to prepared slices by global index, from any process.

    ``reader[i] -> (stored [S, S] slice (uint8), SliceInfo)``; ``reader.zscore(i)`` gives the
    float32 robust z-scored slice. Files are memory-mapped on first use in each process, so the
    reader pickles cheaply into DataLoader workers and DDP ranks; one item reads one index record
    and one slice, never the whole index. ``dataset_ids``/``dataset_weights`` serve the sampler.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "index" / "meta.json"
        if not meta_path.is_file():
            raise DataError(
                "not a prepared shard folder (index/meta.json missing)",
                path=self.root,
                fix="run pretrain/prepare.py --out FOLDER (or let an interrupted run finish)",
            )
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"unreadable index ({exc})", path=meta_path, fix="re-run prepare"
            ) from exc
        if self.meta.get("format") != FORMAT or self.meta.get("version") != FORMAT_VERSION:
            raise DataError(
                f"unknown shard format {self.meta.get('format')} v{self.meta.get('version')}",
                path=meta_path,
                fix=f"re-run prepare with this version (format v{FORMAT_VERSION})",
            )
        self._from_meta()
        self._check_shard_files()

    def _from_meta(self) -> None:
        self.slice_size = int(self.meta["slice_size"] or 0)
        self.dtype = np.dtype(self.meta.get("dtype", "uint8"))
        self.dataset_names: list[str] = [d["name"] for d in self.meta["datasets"]]
        self.dataset_weights = np.array([d["weight"] for d in self.meta["datasets"]], float)
        self.modality_names: list[str] = list(self.meta["modalities"])
        self._n = int(self.meta["slices"])
        self._tables: dict[str, np.ndarray] = {}
        self._volume_lines: list[str] | None = None
        self._shards: dict[int, np.ndarray] = {}
        self._dataset_ids: np.ndarray | None = None

    def _check_shard_files(self) -> None:
        frame = self.slice_size * self.slice_size * self.dtype.itemsize
        for entry in self.meta["shards"]:
            path = self.root / entry["file"]
            size = path.stat().st_size if path.is_file() else -1
            if size != entry["slices"] * frame:
                raise DataError(
                    f"shard is missing or has {size} bytes, expected {entry['slices'] * frame}",
                    path=path,
                    fix="re-run pretrain/prepare.py on this folder",
                )

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root, self.meta = state["root"], state["meta"]
        self._from_meta()

    def __len__(self) -> int:
        return self._n

    @property
    def n_volumes(self) -> int:
        """Number of volumes in the index (prepared ones only)."""
        return int(self.meta["volumes"])

    def _table(self, name: str) -> np.ndarray:
        """``index/<name>.npy`` (``slices`` or ``volumes``), memory-mapped on first use."""
        if name not in self._tables:
            self._tables[name] = np.load(self.root / "index" / f"{name}.npy", mmap_mode="r")
        return self._tables[name]

    def _shard(self, number: int) -> np.ndarray:
        array = self._shards.get(number)
        if array is None:
            entry = self.meta["shards"][number]
            shape = (entry["slices"], self.slice_size, self.slice_size)
            array = np.memmap(self.root / entry["file"], self.dtype, mode="r", shape=shape)
            self._shards[number] = array
        return array

    def _position(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"slice index {i} out of range for {self._n} slices")
        return i

    def _stored(self, i: int) -> tuple[int, np.void, np.ndarray]:
        """Position, index record and (memory-mapped) stored slice of global index ``i``."""
        i = self._position(i)
        r = self._table("slices")[i]
        return i, r, self._shard(int(r["shard"]))[int(r["row"])]

    @staticmethod
    def _info(i: int, r: np.void) -> SliceInfo:
        return SliceInfo(
            i, int(r["volume"]), int(r["z"]), int(r["dataset"]), int(r["modality"]),
            float(r["foreground"]),
        )  # fmt: skip

    def __getitem__(self, i: int) -> tuple[np.ndarray, SliceInfo]:
        i, r, image = self._stored(i)
        return np.array(image), self._info(i, r)

    def sample(self, i: int) -> tuple[np.ndarray, float, float]:
        """Slice ``i`` as stored plus its volume's ``(scale, offset)``: z = stored * scale + offset.

        What the pretraining loader hands to the batched augmentation (which applies the scaling
        after cropping, so workers only copy bytes).
        """
        _, r, image = self._stored(i)
        v = self._table("volumes")[int(r["volume"])]
        return np.array(image), float(v["scale"]), float(v["offset"])

    def zscore(self, i: int) -> np.ndarray:
        """Slice ``i`` as float32 robust z-scores (``uint8 * scale + offset`` of its volume)."""
        _, r, stored = self._stored(i)
        v = self._table("volumes")[int(r["volume"])]
        image = stored.astype(np.float32)
        np.multiply(image, np.float32(v["scale"]), out=image)  # in place: one allocation
        return np.add(image, np.float32(v["offset"]), out=image)

    @property
    def dataset_ids(self) -> np.ndarray:
        """Dataset id of every slice, int16 ``[len(reader)]`` (loaded once per process)."""
        if self._dataset_ids is None:
            self._dataset_ids = np.ascontiguousarray(self._table("slices")["dataset"])
        return self._dataset_ids

    @property
    def slices_per_dataset(self) -> np.ndarray:
        """Number of slices of each dataset, in dataset-id order."""
        return np.bincount(self.dataset_ids, minlength=len(self.dataset_names))

    @property
    def sampling_weights(self) -> np.ndarray:
        """``dataset_weights`` with 0 for datasets that ended up with no slices (all skipped),
        ready for ``WeightedSliceSampler(reader.dataset_ids, reader.sampling_weights)``."""
        counts = np.array([d.get("slices", 1) for d in self.meta["datasets"]])
        return np.where(counts > 0, self.dataset_weights, 0.0)

    def volume(self, v: int) -> dict[str, Any]:
        """Everything recorded about volume ``v``: path, subject, dataset, modality, scale,
        offset, first slice, slice count, source orientation/spacing/shape and geometry."""
        if self._volume_lines is None:
            text = (self.root / "index" / "volumes.jsonl").read_text(encoding="utf-8")
            self._volume_lines = text.splitlines()
        return json.loads(self._volume_lines[v])
