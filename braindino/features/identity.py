"""What makes cached features valid: the encoder's identity, the preprocessing, the encode options
and the input file. ``feature_key`` hashes them into one cache key."""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from braindino.errors import DataError

FEATURE_VERSION = 1  # bump when encode_volume's output changes for the same inputs

_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_digest(encoder: nn.Module) -> str:
    """SHA-256 of the encoder's weights (names, shapes, dtypes, values).

    Remembered per encoder object until a weight changes in place (an optimiser step), so asking
    again for an unchanged encoder costs nothing.
    """
    timm_state = getattr(encoder, "timm_state_dict", None)
    state = timm_state() if callable(timm_state) else encoder.state_dict()
    stamp = tuple((k, v.data_ptr(), v._version) for k, v in state.items())
    cached = _DIGESTS.get(encoder)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        array = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(array.shape)}:{array.dtype}".encode())
        digest.update(array.view(-1).view(torch.uint8).numpy().tobytes())
    value = digest.hexdigest()
    _DIGESTS[encoder] = (stamp, value)
    return value


def encoder_identity(encoder: nn.Module) -> str:
    """A string naming the encoder's weights: an export's ``source`` already holds their SHA-256;
    anything else (random init, timm weights, a model in training) adds a hash of its weights."""
    source = str(getattr(encoder, "source", type(encoder).__name__))
    if source.startswith("export:"):
        return source
    return f"{source}|weights={weights_digest(encoder)}"


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """The input file as the cache sees it: absolute path, size and modification time."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(
            "input volume not found", path=path, fix="check the path (or the manifest)"
        ) from exc
    if path.is_dir():  # a DICOM series folder: its files' sizes and times
        files = sorted(p for p in path.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)
        mtime = max((p.stat().st_mtime_ns for p in files), default=stat.st_mtime_ns)
        return {"path": str(path.resolve()), "size": size, "mtime_ns": mtime, "files": len(files)}
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def feature_key(
    identity: str, preprocess: dict, options: dict, file: dict
) -> tuple[str, dict[str, Any]]:
    """The cache key (hex SHA-256) of one volume's features, and the parts it was made from."""
    parts = _plain(
        {
            "version": FEATURE_VERSION,
            "encoder": identity,
            "preprocess": preprocess,
            "options": options,
            "file": file,
        }
    )
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), parts
