"""The on-disk feature cache: each volume encoded once per (encoder, preprocessing, options, file).

Layout: ``ROOT/<key[:2]>/<key>.npz`` (features as float16, slice positions as float32, the key's
parts as JSON inside) and ``ROOT/index.jsonl`` (one line per stored entry: key, file, encoder,
slices). Entries are written to a temporary name and renamed, so a crash or a concurrent writer
never leaves a half-written entry; an unreadable entry is recomputed.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

from braindino.errors import BrainDinoError
from braindino.features.encode import check_slices, encode_volume, encoder_preprocess
from braindino.features.identity import encoder_identity, feature_key, file_fingerprint

INDEX_FILE = "index.jsonl"
EXACT_KEYS = ("z", "z_mm", "blocks")  # stored as they are, not as float16
PARTS_KEY = "__key_parts__"


class FeatureCache:
    """A folder of cached per-volume features (``get_or_compute``, ``encode_many``).

    ``hits``/``misses`` count lookups since the cache object was made.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BrainDinoError(
                f"cannot create the feature cache folder ({exc})",
                path=self.root,
                fix="choose a writable folder",
            ) from exc
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------------------ keys
    def settings(
        self,
        encoder: nn.Module,
        preprocess: Mapping | DictConfig | None = None,
        slices: int | str = "all",
        blocks: int | Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """Everything but the file that a cache key depends on (resolve once, reuse per file)."""
        count = check_slices(slices)
        indices = None if blocks is None else encoder.block_indices(blocks)
        cfg = encoder_preprocess(encoder, preprocess)
        return {
            "identity": encoder_identity(encoder),
            "preprocess": OmegaConf.to_container(cfg, resolve=True),
            "options": {
                "slices": "all" if count is None else count,
                "blocks": indices,
                "in_chans": int(getattr(encoder, "in_chans", 1)),
            },
        }

    def key(self, settings: Mapping[str, Any], path: str | Path) -> tuple[str, dict]:
        """The key of one file's features under resolved ``settings``, and its parts."""
        parts = (settings["identity"], settings["preprocess"], settings["options"])
        return feature_key(*parts, file_fingerprint(path))

    def entry_path(self, key: str) -> Path:
        """Where the entry of ``key`` is (or would be) stored."""
        return self.root / key[:2] / f"{key}.npz"

    # ------------------------------------------------------------------------------ storage
    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The cached features of ``key`` as float32 arrays, or None when absent or unreadable."""
        path = self.entry_path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                out = {}
                for name in data.files:
                    if name == PARTS_KEY:
                        continue
                    array = data[name]
                    out[name] = array.astype(np.float32) if array.dtype == np.float16 else array
                return out
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None

    def store(self, key: str, features: Mapping[str, np.ndarray], parts: dict) -> Path:
        """Write one entry (float features as float16 when finite there) and index it."""
        arrays: dict[str, np.ndarray] = {}
        for name, array in features.items():
            array = np.asarray(array)
            if name not in EXACT_KEYS and np.issubdtype(array.dtype, np.floating):
                half = array.astype(np.float16)
                array = half if np.isfinite(half).all() == np.isfinite(array).all() else array
            arrays[name] = array
        arrays[PARTS_KEY] = np.array(json.dumps(parts, sort_keys=True))
        from braindino.io.atomic import atomic_write

        path = atomic_write(self.entry_path(key), lambda handle: np.savez(handle, **arrays))
        line = {
            "key": key,
            "file": parts["file"]["path"],
            "encoder": parts["encoder"],
            "slices": int(np.asarray(features["cls"]).shape[0]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        with open(self.root / INDEX_FILE, "a", encoding="utf-8") as index:
            index.write(json.dumps(line) + "\n")
        return path

    def index(self) -> list[dict]:
        """The index lines (one per store, newest last)."""
        path = self.root / INDEX_FILE
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # ------------------------------------------------------------------------------ use
    def get_or_compute(
        self,
        encoder: nn.Module,
        path: str | Path,
        preprocess: Mapping | DictConfig | None = None,
        slices: int | str = "all",
        blocks: int | Sequence[int] | None = None,
        batch_size: int = 64,
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """The features of the volume at ``path``: from the cache, else encoded and stored.

        Arguments as ``encode_volume``'s; ``settings`` (from ``self.settings``) skips resolving
        them again. A cache hit does not run the encoder. Returns float32 arrays.
        """
        if settings is None:
            settings = self.settings(encoder, preprocess, slices, blocks)
        key, parts = self.key(settings, path)
        cached = self.load(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        features = encode_volume(encoder, path, preprocess, slices, blocks, batch_size)
        self.store(key, features, parts)
        return self.load(key) or features

    def encode_many(
        self,
        encoder: nn.Module,
        paths: Iterable[str | Path],
        preprocess: Mapping | DictConfig | None = None,
        slices: int | str = "all",
        blocks: int | Sequence[int] | None = None,
        batch_size: int = 64,
        progress: bool = True,
    ) -> dict[str, dict[str, np.ndarray]]:
        """Features of many volumes (each distinct path once), with a progress bar.

        Returns ``{str(path): features}`` in the order given.
        """
        from tqdm import tqdm

        unique = list(dict.fromkeys(str(p) for p in paths))
        settings = self.settings(encoder, preprocess, slices, blocks)
        out: dict[str, dict[str, np.ndarray]] = {}
        bar = tqdm(unique, desc="features", unit="vol", disable=not progress, dynamic_ncols=True)
        hits, misses = self.hits, self.misses  # the bar counts this call's volumes only
        for path in bar:
            out[path] = self.get_or_compute(
                encoder, path, preprocess, slices, blocks, batch_size, settings=settings
            )
            bar.set_postfix(cached=self.hits - hits, encoded=self.misses - misses, refresh=False)
        return out
