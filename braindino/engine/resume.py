"""Resuming a run folder: which checkpoint (skipping damaged ones), and whether the config
changed since it was written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from braindino.engine.checkpoint import (
    DAMAGED_SUFFIX,
    find_latest_checkpoint,
    load_checkpoint,
    load_newest_readable,
    remove_partial_files,
)
from braindino.errors import ConfigError

_ABSENT = "<absent>"


def _plain(cfg: DictConfig | Mapping | str) -> dict[str, Any]:
    if isinstance(cfg, str):
        cfg = OmegaConf.create(cfg)
    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except Exception:  # an interpolation that does not resolve: compare it as written
            return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]
    return dict(cfg)


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def config_changes(
    saved: DictConfig | Mapping | str, new: DictConfig | Mapping, ignore: Iterable[str] = ()
) -> list[str]:
    """``"key: old -> new"`` for every leaf key whose value differs (or that only one side has),
    sorted; keys equal to or under an ``ignore`` entry (``"probe"``, ``"run.out"``) are skipped.

    ``saved`` may be YAML text (a checkpoint's ``config`` entry).
    """
    ignore = tuple(ignore)
    old, now = _flatten(_plain(saved)), _flatten(_plain(new))
    changes = []
    for key in sorted(old.keys() | now.keys()):
        before, after = old.get(key, _ABSENT), now.get(key, _ABSENT)
        if before != after and not any(key == i or key.startswith(i + ".") for i in ignore):
            changes.append(f"{key}: {before} -> {after}")
    return changes


def summarise_changes(changes: list[str], most: int = 4) -> str:
    """The first ``most`` changes joined on one line, with a count of the rest."""
    shown = "; ".join(changes[:most])
    rest = len(changes) - most
    return shown + (f"; and {rest} more" if rest > 0 else "")


def find_resume(
    mode: str, run_dir: Path, key: str = "run.resume"
) -> tuple[Path | None, dict | None, list[str]]:
    """The checkpoint to resume a run folder from, its state, and notes on what was done.

    ``mode``: ``auto`` (the run folder's newest loadable checkpoint, or none), ``never`` (refuse a
    folder that holds one), or a checkpoint file or run folder. Partial files a killed write left
    are removed first; a damaged newer checkpoint of the run folder is set aside (see
    :func:`load_newest_readable`). Call it on one process, holding the run folder's lock.
    """
    notes = []
    removed = remove_partial_files(run_dir)
    if removed:
        names = ", ".join(p.name for p in removed)
        notes.append(f"removed {len(removed)} partial file(s) a killed write left: {names}")
    if mode == "never":
        if find_latest_checkpoint(run_dir) is not None:
            raise ConfigError(
                "run folder already holds checkpoints",
                path=run_dir,
                fix=f"use {key}=auto to continue it, or a new run.out",
            )
        return None, None, notes
    folder = run_dir if mode == "auto" else Path(mode)
    if mode != "auto" and not folder.is_dir():
        if not folder.is_file():
            raise ConfigError("checkpoint not found", path=folder, fix=f"check {key}")
        return folder, load_checkpoint(folder), notes
    own = folder.resolve() == run_dir.resolve()  # damaged files are set aside in our own folder
    found = load_newest_readable(folder, set_aside=own)
    if found is None:
        if mode != "auto":
            raise ConfigError("run folder holds no checkpoint", path=folder, fix=f"check {key}")
        return None, None, notes
    path, state, skipped = found
    for bad, why in skipped:
        aside = f"set aside as {bad.name}{DAMAGED_SUFFIX}" if own else "skipped"
        notes.append(f"{bad.name} cannot be loaded ({why}): {aside}; resuming from {path.name}")
    return path, state, notes


def check_resume_config(
    state: Mapping,
    run_dir: Path,
    cfg: DictConfig,
    ignore: Iterable[str],
    checkpoint: Path,
    allow: bool,
) -> list[str]:
    """The changes between the config ``state`` was trained with (its ``config`` entry, else the
    run folder's config.yaml) and ``cfg``, outside ``ignore``.

    Raises a one-line ``ConfigError`` naming them unless ``allow``; returns them (empty when the
    checkpoint records no config).
    """
    saved = state.get("config")
    if saved is None and (run_dir / "config.yaml").is_file():
        saved = (run_dir / "config.yaml").read_text(encoding="utf-8")
    if saved is None:  # a checkpoint from before configs were stored
        return []
    changes = config_changes(saved, cfg, ignore)
    if changes and not allow:
        raise ConfigError(
            "resuming with a config that differs from the one this run was trained with "
            f"({summarise_changes(changes)})",
            path=checkpoint,
            fix="start a new run folder (run.out=NEW) for a new run, or pass "
            "--allow-config-change to continue this one with the change",
        )
    return changes
