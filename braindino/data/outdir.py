"""What an output folder of ``pretrain/prepare.py`` was prepared from, and the refusal to mix.

``OUT/prepare.json`` records the inputs (path, volume index and ``volume_key``: size, time,
labels), the preprocessing, the shard size and the datasets of the run that writes ``OUT``. It is
written before any shard, so a resumed run can tell that it continues the same work, and a run
with other inputs (files added or removed) or settings is refused, naming what changed, instead of
silently replacing the shards another run made; ``overwrite=True`` (``--overwrite``) replaces
them. The same files changed on disk (a scan fixed, a cohort regenerated) update the folder: only
those volumes are redone, and a note says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from braindino.data.inputs import VolumeInput
from braindino.errors import DataError
from braindino.io.atomic import atomic_write, read_json, write_json_atomic

RUN_FILE = "prepare.json"


def run_record(
    inputs: Sequence[VolumeInput],
    keys: Sequence[str],
    preprocess: Mapping[str, Any],
    slices_per_shard: int,
    datasets: Mapping[str, float],
) -> dict[str, Any]:
    """The description of one prepare run that ``OUT/prepare.json`` holds."""
    return {
        "inputs": [[item.path, item.volume_index, key] for item, key in zip(inputs, keys)],
        "preprocess": dict(preprocess),
        "shards.slices_per_shard": int(slices_per_shard),
        "datasets": dict(datasets),
    }


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}"))
        return flat or {prefix: {}}
    return {prefix: value}


def _input_changes(old: list, new: list) -> list[str]:
    before = [(path, index) for path, index, _ in old]
    after = [(path, index) for path, index, _ in new]
    known, kept = set(before), set(after)
    added = [p for p in after if p not in known]
    removed = [p for p in before if p not in kept]
    parts = []
    for what, paths in (("added", added), ("removed", removed)):
        if paths:
            parts.append(f"{len(paths)} {what} (first {paths[0][0]})")
    if not parts and before != after:
        parts.append("the same files in another order")
    return [f"inputs: {', '.join(parts)}"] if parts else []


def changed_on_disk(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The input paths both records hold whose file (size, time) or labels differ."""
    before = {(path, index): key for path, index, key in old.get("inputs", [])}
    return [path for path, index, key in new["inputs"] if before.get((path, index), key) != key]


def run_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two run records, as ``key: old -> new`` phrases (inputs summarised
    as counts of added and removed files; files changed on disk are not a change of run)."""
    changes = _input_changes(list(old.get("inputs", [])), list(new["inputs"]))
    for section in ("preprocess", "shards.slices_per_shard", "datasets"):
        before, after = _flat(old.get(section), section), _flat(new[section], section)
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(f"{key}: {before.get(key)} -> {after.get(key)}")
    return changes


def finished_report(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The report of a finished run in ``out`` with this ``fingerprint`` (``None`` otherwise)."""
    meta, report = read_json(out / "index" / "meta.json"), read_json(out / "report.json")
    if meta is None or report is None or meta.get("fingerprint") != fingerprint:
        return None
    return report


def save_config(cfg: DictConfig, path: Path) -> None:
    """Write the merged config beside the shards (left alone when it already says the same, so
    a finished folder on a read-only disk still answers)."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def claim_out_folder(
    out: Path, record: Mapping[str, Any], fingerprint: str, overwrite: bool = False
) -> list[str]:
    """Refuse (``DataError``) to write ``out`` when it holds shards of another run, unless
    ``overwrite``; then record this run in ``out/prepare.json``. Returns the inputs whose files
    changed on disk since (they are redone)."""
    previous = read_json(out / RUN_FILE)
    if not overwrite:
        changes: list[str] = []
        if previous is not None:
            changes = run_changes(previous, record)
        else:
            meta = read_json(out / "index" / "meta.json")
            if meta is not None and meta.get("fingerprint") != fingerprint:
                changes = ["unknown (prepared by an older version, no prepare.json)"]
        if changes:
            shown = "; ".join(changes[:4]) + (f"; +{len(changes) - 4} more" if changes[4:] else "")
            raise DataError(
                f"holds shards prepared from other inputs or settings (changed: {shown})",
                path=out,
                fix="give a new --out folder, or add --overwrite to replace these shards",
            )
    if previous != record:
        write_json_atomic(out / RUN_FILE, dict(record))
    return changed_on_disk(previous, record) if previous is not None else []
