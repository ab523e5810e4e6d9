"""The work folder of a prepare run: one result per volume, and which shards are committed.

``OUT/work/<preprocess hash>/`` holds, per input volume (named by ``volume_key``), its slices
``<key>.npy`` and its record ``<key>.json`` (written last, atomically: its presence means the
volume is finished, prepared or skipped with a reason). ``progress.json`` lists the committed
shards and the volumes each holds; once a shard is committed its volumes' ``.npy`` files are
deleted. ``ResumeState`` reads all this back so a killed run redoes nothing that was finished.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from braindino.data.conventions import LABEL_MAP_FIX, label_map_problem
from braindino.data.inputs import VolumeInput
from braindino.data.shards import shard_name
from braindino.errors import BrainDinoError, VolumeError
from braindino.io.atomic import read_json, save_npy_atomic, write_json_atomic


def text_hash(text: str) -> str:
    """SHA-1 hex digest of a text."""
    return hashlib.sha1(text.encode()).hexdigest()


def volume_key(item: VolumeInput) -> str:
    """A stable id of one input: its file (path, size, modification time) and its labels."""
    try:
        stat = os.stat(item.path)
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    fields = [os.path.abspath(item.path), str(item.volume_index), stamp]
    fields += [item.subject, item.dataset, item.modality]
    fields += [item.orientation] if item.orientation else []
    return text_hash("\x1f".join(fields))[:24]


_WORKER: dict[str, Any] = {}


#: Modules a pool's fork server imports once, so that each worker starts in milliseconds.
WORKER_MODULES = ("braindino.data.workdir", "braindino.io", "braindino.preprocess", "torch")
#: Thread-pool variables set to 1 in pool workers: N workers x N threads would oversubscribe.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def init_worker(settings: DictConfig, work: str) -> None:
    """Set up this process to run ``prepare_volume`` (preprocess settings, work folder)."""
    from braindino.preprocess import preprocess_volume

    _WORKER.update(settings=settings, work=Path(work), preprocess=preprocess_volume)


def init_pool_worker(settings: DictConfig, work: str) -> None:
    """``init_worker`` for a pool process, which also runs single-threaded (one core each)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(1)
    init_worker(settings, work)


def _skip_reason(exc: BaseException) -> str:
    if isinstance(exc, BrainDinoError):
        return str(BrainDinoError(exc.problem, fix=exc.fix))
    return f"unexpected {type(exc).__name__}: {exc}"


def _source_spacing(volume: Any) -> list[float]:
    affine = np.asarray(volume.meta.get("source_affine", volume.affine))
    return [float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)]


def prepare_volume(task: tuple[VolumeInput, str]) -> dict[str, Any]:
    """Read + preprocess one volume in a worker; save its slices and record, return the record."""
    from braindino.io import read_volume

    item, key = task
    work: Path = _WORKER["work"]
    record: dict[str, Any] = {"key": key, "path": os.path.abspath(item.path)}
    record.update(subject=item.subject, dataset=item.dataset, modality=item.modality)
    record["volume_index"] = item.volume_index
    try:
        volume = read_volume(item.path, item.volume_index, orientation=item.orientation)
        label_map = label_map_problem(volume.data)
        if label_map:
            raise VolumeError(label_map, path=item.path, fix=LABEL_MAP_FIX)
        stack = _WORKER["preprocess"](volume, _WORKER["settings"])
        if len(stack.slices) == 0:
            raise VolumeError(
                "no axial slice passes the foreground threshold",
                path=item.path,
                fix="check the scan, or lower the preprocess foreground threshold",
            )
    except (Exception, MemoryError) as exc:
        record.update(status="skipped", reason=_skip_reason(exc))
    else:
        save_npy_atomic(work / f"{key}.npy", np.ascontiguousarray(stack.slices))
        record.update(
            status="ok",
            n_slices=len(stack.slices),
            z=np.asarray(stack.z).astype(int).tolist(),
            foreground=np.asarray(stack.foreground, dtype=np.float32).tolist(),
            scale=float(stack.scale),
            offset=float(stack.offset),
            source_axcodes="".join(volume.meta.get("source_axcodes") or ()),
            source_spacing=_source_spacing(volume),
            source_shape=list(volume.meta.get("source_shape") or volume.shape),
            geometry={k: np.asarray(v).tolist() for k, v in asdict(stack.geometry).items()},
        )
    write_json_atomic(work / f"{key}.json", record)
    return record


class ResumeState:
    """What an earlier, interrupted run left in the work folder and may be reused.

    ``committed``: progress.json's shard entries ({keys, slices}) that still match the inputs
    and the files on disk, in order; ``placements``: (shard, first row) of the volumes in them;
    ``done``: input position -> record of every finished volume (committed or with its .npy).
    """

    def __init__(self, work: Path, shard_folder: Path, keys: list[str]):
        self.committed: list[dict] = []
        self.placements: dict[int, tuple[int, int]] = {}
        self.done: dict[int, dict] = {}
        progress = read_json(work / "progress.json") or {}
        self.slice_size: int | None = progress.get("slice_size")
        self.dtype: str | None = progress.get("dtype")
        frame = (self.slice_size or 0) ** 2 * (np.dtype(self.dtype).itemsize if self.dtype else 0)
        records = {i: read_json(work / f"{k}.json") for i, k in enumerate(keys)}
        position = 0
        for number, entry in enumerate(progress.get("shards", [])):
            span = range(position, position + len(entry["keys"]))
            placed = self._place(number, span, records)
            path = shard_folder / shard_name(number)
            size = path.stat().st_size if path.is_file() else -1
            if (
                entry["keys"] != keys[position : span.stop]
                or placed is None
                or size != entry["slices"] * frame
                or sum(records[i]["n_slices"] for i in placed) != entry["slices"]
            ):
                break
            self.committed.append(entry)
            self.placements.update(placed)
            position = span.stop
        self.n_committed = position
        for i, record in records.items():
            if record is None:
                continue
            has_npy = (work / f"{keys[i]}.npy").is_file()
            if i < position or record["status"] != "ok" or has_npy:
                self.done[i] = record

    @staticmethod
    def _place(number: int, span: range, records: dict) -> dict[int, tuple[int, int]] | None:
        placed, row = {}, 0
        for i in span:
            record = records.get(i)
            if record is None:
                return None
            if record["status"] == "ok":
                placed[i] = (number, row)
                row += record["n_slices"]
        return placed


class Progress:
    """Committed shards and the volumes they hold, saved to progress.json after every commit."""

    def __init__(self, work: Path, state: ResumeState):
        self.work = work
        self.shards = list(state.committed)
        self.slice_size = state.slice_size
        self.dtype = state.dtype
        self.pending: list[str] = []
        self.pending_npy: list[str] = []

    def on_commit(self, number: int, n_slices: int) -> None:
        self.shards.append({"keys": self.pending, "slices": n_slices})
        progress = {"shards": self.shards, "slice_size": self.slice_size, "dtype": self.dtype}
        write_json_atomic(self.work / "progress.json", progress)
        for key in self.pending_npy:
            (self.work / f"{key}.npy").unlink(missing_ok=True)
        self.pending, self.pending_npy = [], []
