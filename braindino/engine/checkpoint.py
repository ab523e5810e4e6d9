"""Atomic checkpoints in a run folder, a ``latest`` pointer, pruning, and RNG-state capture.

Layout of a run folder::

    checkpoint-000100.pt   checkpoint-000200.pt   latest      (``latest`` holds a file name)

Every file is written to a temporary name in the same folder, flushed and fsync'ed, then renamed
over its final name (``os.replace`` is atomic on POSIX), and the folder is fsync'ed. A crash at
any moment therefore leaves either the old or the new file, never half of one, and ``latest``
only ever names a complete checkpoint. In distributed runs only one process (rank 0) saves.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from braindino.errors import BrainDinoError

LATEST_NAME = "latest"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    """Return the file name of the checkpoint at ``step`` (``checkpoint-000123.pt``)."""
    return f"checkpoint-{step:06d}.pt"


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, rename it into place
    (usual umask mode; a full disk is ``OSError(ENOSPC)`` naming ``path``, see io.atomic)."""
    from braindino.io.atomic import atomic_write

    atomic_write(path, write, fsync=True)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` so that ``path`` is either the old file or the complete new one."""
    path = Path(path)
    _atomic_write(path, lambda handle: torch.save(obj, handle))
    return path


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Return ``(step, path)`` of every complete checkpoint in ``run_dir``, oldest first."""
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), entry)
        for entry in folder.iterdir()
        if (m := _CHECKPOINT.match(entry.name)) and entry.is_file()
    ]
    return sorted(found)


def save_checkpoint(
    state: dict[str, Any], run_dir: str | Path, step: int, keep_last: int | None = 3
) -> Path:
    """Write ``state`` as ``run_dir/checkpoint-{step:06d}.pt`` atomically; point ``latest`` at it.

    Then delete older checkpoints so that only the ``keep_last`` highest steps remain (``None``
    keeps all); the one just written is never deleted. Returns the checkpoint's path.
    """
    if keep_last is not None and keep_last < 1:
        raise BrainDinoError(
            f"keep_last must be >= 1 or None, got {keep_last}",
            path="checkpoint.keep_last",
            fix="keep at least one checkpoint (or null to keep all)",
        )
    if step < 0:
        raise BrainDinoError(
            f"checkpoint step must be >= 0, got {step}", path="step", fix="pass the iteration"
        )
    folder = Path(run_dir)
    path = atomic_save(state, folder / checkpoint_name(step))
    _atomic_write(folder / LATEST_NAME, lambda handle: handle.write(path.name.encode() + b"\n"))
    if keep_last is not None:
        for _, old in list_checkpoints(folder)[:-keep_last]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def find_latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Return the checkpoint ``latest`` names, else the highest-step one, else ``None``."""
    folder = Path(run_dir)
    pointer = folder / LATEST_NAME
    if pointer.is_file():
        target = folder / pointer.read_text(encoding="utf-8").strip()
        if _CHECKPOINT.match(target.name) and target.is_file():
            return target
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def load_checkpoint(path: str | Path, weights_only: bool = True) -> dict[str, Any]:
    """Load a checkpoint onto the CPU.

    ``weights_only`` (torch's safe loader) accepts tensors, numbers, strings and containers, which
    is everything :func:`save_checkpoint` callers here store; pass ``False`` only for a file you
    trust that holds other Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise BrainDinoError(
            "checkpoint not found", path=path, fix="check the path or the run folder's 'latest'"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if weights_only and refused:
            problem = (
                f"checkpoint holds a {refused.group(1)} that torch's safe loader refuses "
                "(store Python numbers, strings, containers and tensors)"
            )
            fix = "load_checkpoint(path, weights_only=False) if you trust the file"
        else:
            problem = f"cannot load checkpoint: damaged or not a torch file ({type(exc).__name__})"
            fix = "delete it and resume from an earlier checkpoint"
        raise BrainDinoError(problem, path=path, fix=fix) from exc
    if not isinstance(state, dict):
        raise BrainDinoError(
            f"checkpoint holds a {type(state).__name__}, not a dict",
            path=path,
            fix="pass a checkpoint written by save_checkpoint",
        )
    return state


def capture_rng_state() -> dict[str, Any]:
    """Return the Python, numpy, torch CPU and (when initialised) CUDA RNG states.

    Everything is stored as tensors, ints, strings and containers so the safe loader reads it.
    """
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states captured by :func:`capture_rng_state` (CUDA only where present)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


# Temporary files of the atomic writers (".NAME.PID.tmp[SUFFIX]", earlier ".NAME.tmp-PID"):
# complete ones are renamed into place, so any left in a run folder were cut short by a kill.
_PARTIAL = re.compile(r"^\..+\.(?:tmp-\d+|\d+\.tmp\S*)$")
DAMAGED_SUFFIX = ".damaged"


def remove_partial_files(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in ``run_dir``; return them.

    Call it only while no other process writes there (e.g. holding the run folder's lock).
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if _PARTIAL.match(p.name) and p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_newest_readable(
    run_dir: str | Path, set_aside: bool = True
) -> tuple[Path, dict[str, Any], list[tuple[Path, str]]] | None:
    """Load the newest checkpoint of ``run_dir`` that loads: ``(path, state, skipped)``.

    Candidates are the one ``latest`` names, then the others from the highest step down.
    ``skipped`` lists the newer ones that could not be loaded, with the reason; with
    ``set_aside`` they are renamed to ``NAME.damaged`` (kept, but never picked again). ``None``
    when the folder holds no checkpoint; ``BrainDinoError`` (nothing renamed) when none loads.
    """
    latest = find_latest_checkpoint(run_dir)
    if latest is None:
        return None
    others = [path for _, path in reversed(list_checkpoints(run_dir)) if path != latest]
    skipped: list[tuple[Path, str]] = []
    for path in [latest, *others]:
        try:
            state = load_checkpoint(path)
        except BrainDinoError as exc:
            skipped.append((path, exc.problem))
            continue
        if set_aside:
            for bad, _ in skipped:
                bad.replace(bad.with_name(bad.name + DAMAGED_SUFFIX))
        return path, state, skipped
    raise BrainDinoError(
        f"none of the {len(skipped)} checkpoint(s) can be loaded ({skipped[0][1]})",
        path=run_dir,
        fix="restore a checkpoint from a backup, or move them away to start again from scratch",
    )
