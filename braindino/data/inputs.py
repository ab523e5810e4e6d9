"""Find the volumes a data run should read: folders, globs, CSV manifests and configured datasets.

Every source becomes a list of ``VolumeInput`` (path, subject, dataset, modality) in a
deterministic order, so the same inputs always give the same shards. Subject ids are taken from
a manifest column when there is one, else derived from the path (see ``subject_from_path``).
"""

from __future__ import annotations

import csv
import difflib
import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from braindino.config import config_regex
from braindino.data.conventions import DEFAULT_EXCLUDE, exclude_reason
from braindino.data.path_names import (
    VOLUME_SUFFIXES,
    modality_from_path,
    subject_from_path,
)
from braindino.errors import ConfigError, DataError
from braindino.io.analyze import check_axis_codes

DICOM_SUFFIXES = (".dcm", ".ima")
MANIFEST_SUFFIXES = (".csv", ".tsv")
#: The keys one entry of ``datasets:`` in a data config may have (``configs/data/default.yaml``).
DATASET_KEYS = (
    "root",
    "pattern",
    "manifest",
    "modality",
    "weight",
    "subject_regex",
    "exclude",
    "orientation",
)


@dataclass(frozen=True)
class VolumeInput:
    """One volume to read: where it is, whose it is, which dataset and modality it belongs to."""

    path: str
    subject: str
    dataset: str
    modality: str
    volume_index: int | None = None
    orientation: str | None = None  # voxel axes of Analyze files (``braindino.io.analyze``)


def is_volume_file(path: str | Path) -> bool:
    """Whether a file name has one of the readable volume extensions."""
    return str(path).lower().endswith(VOLUME_SUFFIXES)


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(folder: str | Path) -> bool:
    """Whether a folder directly holds DICOM files (a series folder SimpleITK can read)."""
    try:
        files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    except OSError:
        return False
    if any(p.suffix.lower() in DICOM_SUFFIXES for p in files):
        return True
    bare = [p for p in files if not p.suffix]  # DICOM files without a suffix: check the first
    return bool(bare) and _has_dicom_magic(bare[0])


#: Where discovery puts the files it leaves out: ``{"path": ..., "reason": ...}`` entries.
Excluded = list[dict[str, str]]


def _keep(paths: Iterable[str], exclude: Sequence[str], excluded: Excluded | None) -> list[str]:
    """``paths`` sorted, without the excluded ones (which are added to ``excluded``)."""
    kept = []
    for path in sorted(paths):
        reason = exclude_reason(path, exclude)
        if reason is None:
            kept.append(path)
        elif excluded is not None:
            excluded.append({"path": os.path.abspath(path), "reason": reason})
    return kept


def find_volumes(
    folder: str | Path, exclude: Sequence[str] = DEFAULT_EXCLUDE, excluded: Excluded | None = None
) -> list[str]:
    """All volume files and DICOM series folders under ``folder`` (recursive), sorted; those
    ``exclude`` names are left out (and listed with their reason in ``excluded``)."""
    found: list[str] = []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        if any(f.lower().endswith(DICOM_SUFFIXES) for f in files) or (
            files and is_dicom_folder(current)
        ):
            found.append(current)
        found += [os.path.join(current, f) for f in sorted(files) if is_volume_file(f)]
    return _keep(found, exclude, excluded)


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    stop = next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))
    return str(Path(*parts[:stop])) if stop else "."


def expand_pattern(
    root: str | Path, pattern: str, exclude: Sequence[str], excluded: Excluded | None = None
) -> list[str]:
    """Volume files and DICOM folders matching a glob ``pattern`` (``**`` allowed) in ``root``;
    those ``exclude`` names are left out (and listed in ``excluded``)."""
    matches = glob.glob(os.path.join(str(root), pattern), recursive=True)
    keep = [m for m in matches if (is_volume_file(m) and os.path.isfile(m)) or is_dicom_folder(m)]
    return _keep(keep, exclude, excluded)


def read_manifest(
    path: str | Path, dataset: str = "default", modality: str = "auto"
) -> list[VolumeInput]:
    """Read a CSV/TSV manifest with an ``image`` column (optional ``subject``, ``dataset``,
    ``modality``, ``volume_index``); relative image paths are relative to the manifest."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter=delimiter))
    except OSError as exc:
        raise DataError(
            f"cannot read manifest ({exc.strerror})", path=path, fix="check the path"
        ) from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable CSV ({exc})", path=path, fix="write a plain CSV") from exc
    if not rows or "image" not in rows[0]:
        columns = ", ".join(rows[0].keys()) if rows else "none"
        raise DataError(
            f"manifest needs an 'image' column (has: {columns})",
            path=path,
            fix="add a header row with image[,subject,dataset,modality]",
        )
    inputs = []
    for line, row in enumerate(rows, start=2):
        image = (row.get("image") or "").strip()
        if not image:
            raise DataError(f"row {line} has an empty image", path=path, fix="fill or remove it")
        image_path = Path(image) if Path(image).is_absolute() else path.parent / image
        index = (row.get("volume_index") or "").strip()
        tag = (row.get("modality") or "").strip() or modality
        inputs.append(
            VolumeInput(
                path=str(image_path),
                subject=(row.get("subject") or "").strip() or subject_from_path(image_path),
                dataset=(row.get("dataset") or "").strip() or dataset,
                modality=modality_from_path(image_path) if tag == "auto" else tag,
                volume_index=int(index) if index else None,
            )
        )
    return inputs


def _make_inputs(
    paths: Iterable[str], root: str | None, dataset: str, modality: str, regex: str | None
) -> list[VolumeInput]:
    return [
        VolumeInput(
            path=p,
            subject=subject_from_path(p, root, regex),
            dataset=dataset,
            modality=modality_from_path(p) if modality == "auto" else modality,
        )
        for p in paths
    ]


def discover_inputs(
    items: Sequence[str],
    dataset: str = "default",
    modality: str = "auto",
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    excluded: Excluded | None = None,
) -> list[VolumeInput]:
    """Turn command-line INPUTs (folders, globs, CSV/TSV manifests, single files) into inputs.

    A missing folder or file, or a folder/glob with no volumes, raises ``DataError`` naming it.
    ``modality="auto"`` guesses each file's modality from its name. Files of folders and globs
    that ``exclude`` names are left out and listed, with the reason, in ``excluded``.
    """
    inputs: list[VolumeInput] = []
    for item in items:
        if glob.has_magic(item) and not os.path.exists(item):
            paths = expand_pattern("", item, exclude, excluded)
            if not paths:
                raise DataError("glob matches no volume", path=item, fix="check the pattern")
            inputs += _make_inputs(paths, _glob_root(item), dataset, modality, None)
        elif item.lower().endswith(MANIFEST_SUFFIXES) and os.path.isfile(item):
            inputs += read_manifest(item, dataset, modality)
        elif os.path.isdir(item) and not is_dicom_folder(item):
            paths = find_volumes(item, exclude, excluded)
            if not paths:
                fix = f"put {', '.join(VOLUME_SUFFIXES)} files or DICOM series folders in it"
                raise DataError("no volumes found in folder", path=item, fix=fix)
            inputs += _make_inputs(paths, item, dataset, modality, None)
        elif os.path.exists(item):
            inputs += _make_inputs([item], None, dataset, modality, None)
        else:
            raise DataError("input not found", path=item, fix="give an existing folder, file, glob")
    return inputs


def _dataset_entry(name: str, entry: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    where = f"datasets.{name}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"'{where}' must be a mapping", path=where, fix="give root, pattern, …")
    for key in entry:
        if key not in DATASET_KEYS:
            close = difflib.get_close_matches(str(key), DATASET_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {list(DATASET_KEYS)}"
            raise ConfigError(f"unknown config key '{where}.{key}'", path=where, fix=hint)
    merged = {**dict(defaults), **dict(entry)}
    if not merged.get("root") and not merged.get("manifest"):
        raise ConfigError(f"'{where}' needs a root or a manifest", path=where, fix="set root")
    weight = merged.get("weight")
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
        raise ConfigError(
            f"'{where}.weight' must be a positive number (got {weight!r})",
            path=where,
            fix="set weight: 1.0",
        )
    if merged.get("subject_regex"):
        config_regex(merged["subject_regex"], f"{where}.subject_regex", where)
    return merged


def dataset_table(cfg: DictConfig | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``datasets:`` section of a data config, each entry checked and completed from
    ``dataset_defaults:``; unknown keys, missing roots and bad weights raise ``ConfigError``."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    datasets = plain.get("datasets") or {}
    defaults = plain.get("dataset_defaults") or {}
    return {str(name): _dataset_entry(str(name), e, defaults) for name, e in datasets.items()}


def _dataset_inputs(
    name: str, entry: Mapping[str, Any], excluded: Excluded | None
) -> list[VolumeInput]:
    modality = entry.get("modality") or "auto"
    if entry.get("manifest"):
        return read_manifest(entry["manifest"], name, modality)
    root = str(entry["root"])
    if not os.path.isdir(root):
        raise DataError(
            f"dataset '{name}' root is not a folder",
            path=root,
            fix=f"fix datasets.{name}.root or mount the data",
        )
    patterns = entry.get("pattern") or []
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    exclude = list(entry.get("exclude") or [])
    if patterns:
        paths = sorted(
            {p for pat in patterns for p in expand_pattern(root, pat, exclude, excluded)}
        )
    else:
        paths = find_volumes(root, exclude, excluded)
    if not paths:
        raise DataError(
            f"dataset '{name}' has no volumes matching {patterns or 'any volume extension'}",
            path=root,
            fix=f"check datasets.{name}.pattern",
        )
    made = _make_inputs(paths, root, name, modality, entry.get("subject_regex"))
    orientation = entry.get("orientation")
    if orientation:
        check_axis_codes(orientation, f"datasets.{name}.orientation")
        made = [replace(item, orientation=str(orientation)) for item in made]
    return made


def inputs_from_config(
    cfg: DictConfig | Mapping[str, Any], excluded: Excluded | None = None
) -> list[VolumeInput]:
    """All inputs of the configured datasets, in config order, each dataset's files sorted (the
    files their ``exclude`` names are listed in ``excluded``)."""
    inputs: list[VolumeInput] = []
    for name, entry in dataset_table(cfg).items():
        inputs += _dataset_inputs(name, entry, excluded)
    return inputs


def with_volume_index(inputs: Iterable[VolumeInput], index: int | None) -> list[VolumeInput]:
    """``inputs`` with ``volume_index=index`` where they name none (a manifest's own wins); the
    reader uses it for 4D images only, so 3D inputs read as before."""

    if index is None:
        return list(inputs)
    return [item if item.volume_index is not None else replace(item, volume_index=index)
            for item in inputs]  # fmt: skip


def unique_inputs(inputs: Iterable[VolumeInput]) -> list[VolumeInput]:
    """Drop repeats of the same file (and volume index), keeping the first occurrence."""
    seen: set[tuple[str, int | None]] = set()
    kept = []
    for item in inputs:
        key = (os.path.realpath(item.path), item.volume_index)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
