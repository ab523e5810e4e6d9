"""Volumes -> slice shards: parallel, resumable, deterministic (``pretrain/prepare.py``).

1. Each volume is read and preprocessed (in ``workers`` processes); its slices land atomically
   in ``OUT/work/<preprocess hash>/<volume key>.npy`` and its record (or skip reason) in
   ``<volume key>.json``. A finished volume is never redone by a resumed run.
2. The main process takes the volumes in input order and appends their slices to shards
   (``SliceShardWriter``); after each committed shard ``progress.json`` records which volumes it
   holds and their ``.npy`` files are deleted, so the disk holds each slice about once.
3. The index (``index/*``) is written last, then ``report.json``. The output depends only on the
   inputs and the config, never on the number of workers or on interruptions.

``OUT/prepare.json`` (``outdir``) records what the folder is prepared from: a run with other
inputs or settings is refused rather than replacing the shards (unless ``overwrite``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib.util import find_spec
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from braindino.config import load_config
from braindino.data.inputs import (
    Excluded,
    VolumeInput,
    dataset_table,
    inputs_from_config,
    unique_inputs,
)
from braindino.data.outdir import claim_out_folder, finished_report, run_record, save_config
from braindino.data.shards import (
    SLICE_DTYPE,
    VOLUME_DTYPE,
    SliceShardWriter,
    shard_name,
    write_index,
)
from braindino.data.workdir import (
    WORKER_MODULES,
    Progress,
    ResumeState,
    init_pool_worker,
    init_worker,
    prepare_volume,
    text_hash,
    volume_key,
)
from braindino.errors import ConfigError, DataError
from braindino.io.atomic import write_json_atomic


def load_prepare_config(
    config: str | Path | None = None, dotlist: Sequence[str] = ()
) -> DictConfig:
    """Merge ``configs/data/default.yaml``, an optional data config and ``key=value`` items, and
    check the dataset entries and the preprocess section (typos fail here, at start)."""
    cfg = load_config("data/default", [config] if config else [], dotlist)
    for key in ("workers", "shards.slices_per_shard"):
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"'{key}' must be a positive integer (got {value!r})",
                path=str(config or "command line"),
                fix=f"set {key}=1 or more",
            )
    dataset_table(cfg)
    preprocess_settings(cfg)
    return cfg


def preprocess_settings(cfg: DictConfig) -> DictConfig:
    """The full preprocessing config: ``cfg.preprocess`` merged onto its defaults (strict)."""
    from braindino.preprocess import preprocess_config

    return preprocess_config(cfg.get("preprocess") or {})


def _dataset_weights(inputs: Sequence[VolumeInput], cfg: DictConfig) -> dict[str, float]:
    """Dataset name -> sampling weight: configured datasets in config order, then the names
    first seen in the inputs (command line, manifests) with weight 1."""
    datasets = {name: float(entry["weight"]) for name, entry in dataset_table(cfg).items()}
    for item in inputs:
        datasets.setdefault(item.dataset, 1.0)
    return datasets


def _pool_context() -> BaseContext:
    """A fork server that has imported the worker modules once (spawn where there is none)."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload([m for m in WORKER_MODULES if find_spec(m.split(".")[0])])
    return context


def _results(
    inputs: Sequence[VolumeInput],
    keys: list[str],
    done: Mapping[int, dict],
    settings: DictConfig,
    work: Path,
    workers: int,
) -> Iterator[dict]:
    """Records in input order: finished ones from disk, the others computed (in parallel)."""
    todo = [(inputs[i], keys[i]) for i in range(len(inputs)) if i not in done]
    pool = None
    if workers > 1 and len(todo) > 1:
        pool = _pool_context().Pool(
            min(workers, len(todo)), init_pool_worker, (settings, str(work))
        )
        computed: Iterator[dict] = pool.imap(prepare_volume, todo, chunksize=1)
    else:
        init_worker(settings, str(work))
        computed = map(prepare_volume, todo)
    try:
        for i in range(len(inputs)):
            yield done[i] if i in done else next(computed)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _compact(record: dict) -> dict:
    """Per-slice lists as small arrays (60k volumes x 150 slices must not be Python floats)."""
    if record["status"] == "ok":
        record["z"] = np.asarray(record["z"], np.int32)
        record["foreground"] = np.asarray(record["foreground"], np.float32)
    return record


def _assemble(
    inputs: Sequence[VolumeInput],
    keys: list[str],
    state: ResumeState,
    settings: DictConfig,
    work: Path,
    shard_folder: Path,
    slices_per_shard: int,
    workers: int,
    progress_bar: bool,
) -> tuple[list[dict], list[tuple[int, int]], Progress]:
    """Run the volumes in input order into shards; return records, placements and progress."""
    from tqdm import tqdm

    tracker = Progress(work, state)
    records: list[dict] = []
    placements: list[tuple[int, int]] = []
    bar = tqdm(total=len(inputs), unit="vol", desc="prepare", disable=not progress_bar)
    results = _results(inputs, keys, state.done, settings, work, workers)
    first_shard = len(state.committed)
    with SliceShardWriter(shard_folder, slices_per_shard, first_shard, tracker.on_commit) as writer:
        for i, record in enumerate(results):
            records.append(_compact(record))
            bar.update(1)
            if i < state.n_committed:
                placements.append(state.placements.get(i, (-1, -1)))
            elif record["status"] != "ok":
                placements.append((-1, -1))
                tracker.pending.append(keys[i])
            else:
                slices = np.load(work / f"{keys[i]}.npy")
                tracker.slice_size = tracker.slice_size or int(slices.shape[1])
                tracker.dtype = tracker.dtype or slices.dtype.name
                placements.append(writer.add_volume(slices))
                tracker.pending.append(keys[i])
                tracker.pending_npy.append(keys[i])
                bar.set_postfix(shard=writer.shard, refresh=False)
    bar.close()
    return records, placements, tracker


def _remove_temporaries(folders: Sequence[Path]) -> None:
    """Delete the partial files a killed run left (hidden ``.name.<pid>.tmp``)."""
    for folder in folders:
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            path.unlink(missing_ok=True)


def _remove_stale_shards(folder: Path, n_shards: int) -> None:
    for path in folder.glob("shard-*.u8"):
        if int(path.stem.split("-")[1]) >= n_shards:
            path.unlink()


def _check_outcome(report: Mapping[str, Any], out: Path, strict: bool) -> None:
    """Raise DataError when no volume was prepared, or (strict) when any was skipped."""
    skipped = report["volumes_skipped"]
    if report["volumes_ok"] == 0:
        raise DataError(
            f"none of {report['volumes_total']} volumes could be prepared (first: "
            f"{skipped[0]['path']}: {skipped[0]['reason']})",
            path=out / "report.json",
            fix="fix the inputs listed in report.json",
        )
    if strict and skipped:
        raise DataError(
            f"--strict: {len(skipped)} volume(s) skipped, first {skipped[0]['path']}: "
            f"{skipped[0]['reason']}",
            path=out / "report.json",
            fix="fix or remove the listed volumes, or run without --strict",
        )


def prepare_shards(
    inputs: Sequence[VolumeInput],
    out: str | Path,
    cfg: DictConfig,
    workers: int = 1,
    progress_bar: bool = True,
    strict: bool = False,
    overwrite: bool = False,
    excluded: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Preprocess ``inputs`` into slice shards under ``out``; return the report (also written to
    ``out/report.json``, with the ``excluded`` files discovery left out) and save ``cfg`` as
    ``out/config.yaml``. Resumes a killed run in the same ``out``; a finished run with the same
    inputs and config returns its report at once; a folder holding another run's shards is
    refused (``DataError`` naming what changed) unless ``overwrite``. Raises ``DataError`` if no
    volume could be prepared, or — with ``strict`` — if any volume was skipped (the index is then
    not written)."""
    started = time.perf_counter()
    inputs = unique_inputs(inputs)
    if not inputs:
        raise DataError("no input volumes", path="INPUT", fix="give folders, globs or --config")
    if int(workers) < 1:
        raise DataError(f"workers must be >= 1 (got {workers})", path="--workers", fix="use 1+")
    out = Path(out)
    settings = preprocess_settings(cfg)
    settings_hash = text_hash(OmegaConf.to_yaml(settings, resolve=True))
    keys = [volume_key(item) for item in inputs]
    slices_per_shard = int(cfg.shards.slices_per_shard)
    datasets = _dataset_weights(inputs, cfg)
    fingerprint = text_hash(json.dumps([keys, settings_hash, slices_per_shard, datasets]))
    plain = OmegaConf.to_container(settings, resolve=True)
    record = run_record(inputs, keys, plain, slices_per_shard, datasets)
    changed = claim_out_folder(out, record, fingerprint, overwrite)
    if changed:
        print(f"note: {len(changed)} input file(s) changed since {out} was prepared (first "
              f"{changed[0]}); redoing them", file=sys.stderr)  # fmt: skip
    save_config(cfg, out / "config.yaml")
    finished = finished_report(out, fingerprint)
    if finished is not None:
        _check_outcome(finished, out, strict)
        return finished

    (out / "index" / "meta.json").unlink(missing_ok=True)  # unpublish while shards change
    work = out / "work" / settings_hash[:12]
    work.mkdir(parents=True, exist_ok=True)
    shard_folder = out / "shards"
    _remove_temporaries([shard_folder, work, out / "index"])
    state = ResumeState(work, shard_folder, keys)
    records, placements, tracker = _assemble(
        inputs, keys, state, settings, work, shard_folder, slices_per_shard, workers, progress_bar
    )
    _remove_stale_shards(shard_folder, len(tracker.shards))

    report = _report(inputs, records, out, workers, len(state.done), started, datasets)
    report["excluded"] = [dict(item) for item in excluded]
    write_json_atomic(out / "report.json", report)
    _check_outcome(report, out, strict)
    meta = {
        "fingerprint": fingerprint,
        "preprocess": plain,
        "preprocess_hash": settings_hash,
        "slices_per_shard": slices_per_shard,
        "slice_size": tracker.slice_size,
        "dtype": tracker.dtype,
        "shards": [
            {"file": f"shards/{shard_name(s)}", "slices": e["slices"]}
            for s, e in enumerate(tracker.shards)
        ],
    }
    _write_index_files(out, records, placements, datasets, report["datasets"], meta)
    if not bool(cfg.shards.get("keep_work", False)):
        shutil.rmtree(out / "work", ignore_errors=True)
    return report


def _write_index_files(
    out: Path,
    records: list[dict],
    placements: list[tuple[int, int]],
    datasets: Mapping[str, float],
    counts: Mapping[str, Mapping[str, int]],
    meta: dict[str, Any],
) -> None:
    """Write the index of the prepared volumes; ``counts``: the report's per-dataset counts."""
    dataset_ids = {name: i for i, name in enumerate(datasets)}
    ok = [(r, p) for r, p in zip(records, placements) if r["status"] == "ok"]
    modalities: dict[str, int] = {}
    for record, _ in ok:
        modalities.setdefault(record["modality"], len(modalities))
    slices = np.zeros(sum(r["n_slices"] for r, _ in ok), SLICE_DTYPE)
    volumes = np.zeros(len(ok), VOLUME_DTYPE)
    volume_lines = []
    first = 0
    for v, (record, (shard, row)) in enumerate(ok):
        n, d, m = record["n_slices"], dataset_ids[record["dataset"]], modalities[record["modality"]]
        part = slices[first : first + n]
        part["shard"], part["row"], part["volume"] = shard, row + np.arange(n), v
        part["z"], part["foreground"] = record["z"], record["foreground"]
        part["dataset"], part["modality"] = d, m
        volumes[v] = (first, n, d, m, record["scale"], record["offset"])
        line = {k: val for k, val in record.items() if k not in ("z", "foreground", "status")}
        volume_lines.append({**line, "first_slice": first})
        first += n
    meta["datasets"] = [
        {"name": name, "weight": weight, **{k: counts[name][k] for k in ("volumes", "slices")}}
        for name, weight in datasets.items()
    ]
    meta["modalities"] = list(modalities)
    write_index(out, slices, volumes, volume_lines, meta)


def _report(
    inputs: Sequence[VolumeInput],
    records: list[dict],
    out: Path,
    workers: int,
    reused: int,
    started: float,
    datasets: Mapping[str, float],
) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == "ok"]
    skipped = [{"path": r["path"], "reason": r["reason"]} for r in records if r["status"] != "ok"]
    per_dataset = {name: {"volumes": 0, "skipped": 0, "slices": 0} for name in datasets}
    for r in records:  # every input's dataset is in ``datasets`` (_dataset_weights)
        entry = per_dataset[r["dataset"]]
        if r["status"] == "ok":
            entry["volumes"] += 1
            entry["slices"] += r["n_slices"]
        else:
            entry["skipped"] += 1
    seconds = time.perf_counter() - started
    return {
        "out": str(out.resolve()),
        "volumes_total": len(inputs),
        "volumes_ok": len(ok),
        "volumes_skipped": skipped,
        "volumes_reused": reused,
        "slices": sum(r["n_slices"] for r in ok),
        "datasets": per_dataset,
        "workers": workers,
        "seconds": round(seconds, 3),
        "volumes_per_second": round(len(inputs) / seconds, 3) if seconds > 0 else None,
    }


def collect_inputs(
    cfg: DictConfig,
    items: Sequence[str] = (),
    dataset: str = "default",
    modality: str = "auto",
    excluded: Excluded | None = None,
    volume_index: int | None = None,
) -> list[VolumeInput]:
    """The configured datasets' inputs followed by the command-line INPUTs, repeats removed.

    Files left out by the ``exclude`` patterns are listed with the reason in ``excluded``;
    ``volume_index`` picks that volume of 4D images for inputs that do not name their own.
    """
    from braindino.data.inputs import DEFAULT_EXCLUDE, discover_inputs, with_volume_index

    exclude = list(cfg.dataset_defaults.get("exclude") or DEFAULT_EXCLUDE)
    inputs = inputs_from_config(cfg, excluded)
    inputs += discover_inputs(items, dataset, modality, exclude, excluded)
    inputs = unique_inputs(with_volume_index(inputs, volume_index))
    if not inputs:
        raise DataError(
            "no inputs given", path="command line", fix="give INPUT folders/globs/CSVs or --config"
        )
    return inputs
