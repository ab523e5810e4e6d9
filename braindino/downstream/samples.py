"""Per-sample slice features of a task manifest (from the feature cache) and per-split tensors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from braindino.errors import DataError
from braindino.features import FeatureCache, pick_features
from braindino.heads import HeadData
from braindino.tasks import SPLITS, image_columns


@dataclass
class SampleFeatures:
    """Slice features ``[S_i, D]`` and slice positions ``z [S_i]`` of every manifest row."""

    features: list[np.ndarray]
    z: list[np.ndarray]

    @property
    def width(self) -> int:
        """Feature width D."""
        return int(self.features[0].shape[1])


def row_stacks(
    manifest: pd.DataFrame, per_path: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
    """Per manifest row, from ``per_path`` (image path -> (per-slice array, z)): the arrays of
    its images, which must have the same number of slices (else one DataError naming the
    subject and the fix), and the first image's z."""
    columns = image_columns(manifest)
    stacks, positions = [], []
    for _, row in manifest.iterrows():
        arrays = [per_path[str(row[c])][0] for c in columns]
        counts = {a.shape[0] for a in arrays}
        if len(counts) > 1:
            raise DataError(
                f"the images of subject {row['subject']} give different slice counts {counts}",
                path=str(row[columns[0]]),
                fix="set a fixed slice count (task option slices=128)",
            )
        stacks.append(arrays)
        positions.append(per_path[str(row[columns[0]])][1])
    return stacks, positions


def manifest_features(
    cache: FeatureCache,
    encoder: nn.Module,
    manifest: pd.DataFrame,
    feature: str = "cls",
    preprocess: Mapping[str, Any] | None = None,
    slices: int | str = 128,
    progress: bool = True,
) -> SampleFeatures:
    """Features of every manifest row; several images per sample are joined along the feature
    axis (they must have the same slice count, e.g. a fixed ``slices``)."""
    paths = [str(p) for col in image_columns(manifest) for p in manifest[col]]
    entries = cache.encode_many(
        encoder, paths, preprocess=preprocess, slices=slices, progress=progress
    )
    per_path = {
        p: (pick_features(e, feature, p), np.asarray(e["z"], np.float32))
        for p, e in entries.items()
    }
    stacks, positions = row_stacks(manifest, per_path)
    return SampleFeatures([np.concatenate(s, axis=1) for s in stacks], positions)


def split_rows(manifest: pd.DataFrame, target: str | None = None) -> dict[str, np.ndarray]:
    """Row indices of each split (the manifest's ``split`` column).

    Raises DataError when a split cannot support the run: train, val (model selection) or test
    empty; with ``target`` given, a class missing from train or test (macro-AUC and balanced
    accuracy need every class), a regression test split of fewer than 2 subjects, or survival
    train/test splits without an event.
    """
    rows = {name: np.flatnonzero(manifest["split"].to_numpy() == name) for name in SPLITS}
    for name in SPLITS:
        if rows[name].size == 0:
            raise _split_error(f"the {name} split is empty", manifest)
    for name in ("train", "test"):
        part = manifest.iloc[rows[name]]
        if target == "class":
            classes = list(manifest.attrs.get("classes") or sorted(manifest["label"].unique()))
            absent = [c for c in classes if c not in set(part["label"])]
            if absent:
                raise _split_error(
                    f"the {name} split has no subject of class {', '.join(map(str, absent))} "
                    f"({part['subject'].nunique()} subjects); its metrics would be undefined",
                    manifest,
                )
        if target == "regression" and name == "test" and part["subject"].nunique() < 2:
            raise _split_error("the test split has fewer than 2 subjects", manifest)
        if target == "survival" and not part["event"].astype(bool).any():
            raise _split_error(f"the {name} split has no event (all censored)", manifest)
    return rows


def _split_error(message: str, manifest: pd.DataFrame) -> DataError:
    total = manifest["subject"].nunique()
    return DataError(
        f"{message}; {total} subjects in all",
        path="splits.csv",
        fix="use more subjects, or change split.fractions / split.seed (--set split.seed=1)",
    )


def head_data(samples: SampleFeatures, rows: np.ndarray, targets: torch.Tensor) -> HeadData:
    """HeadData of the manifest rows ``rows`` (targets already selected for these rows)."""
    return HeadData.from_slices([samples.features[i] for i in rows], targets)


def pooled(samples: SampleFeatures, rows: np.ndarray) -> np.ndarray:
    """Mean slice feature per row ``[N, D]`` (k-NN)."""
    return np.stack([samples.features[i].mean(axis=0) for i in rows]).astype(np.float64)
