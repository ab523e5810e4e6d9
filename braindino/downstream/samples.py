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
from braindino.heads import HeadData, pad_slices
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


def same_slice_counts(row: pd.Series, columns: list[str], arrays: list[np.ndarray]):
    """``arrays`` (one per image column of manifest ``row``) when they have the same number of
    slices; else one DataError naming the subject and the fix."""
    counts = {a.shape[0] for a in arrays}
    if len(counts) > 1:
        raise DataError(
            f"the images of subject {row['subject']} give different slice counts {counts}",
            path=str(row[columns[0]]),
            fix="set a fixed slice count (task option slices=128)",
        )
    return arrays


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
    columns = image_columns(manifest)
    paths = [str(p) for col in columns for p in manifest[col]]
    entries = cache.encode_many(
        encoder, paths, preprocess=preprocess, slices=slices, progress=progress
    )
    features, positions = [], []
    for _, row in manifest.iterrows():
        paths = [str(row[c]) for c in columns]
        per_image = same_slice_counts(
            row, columns, [pick_features(entries[p], feature, p) for p in paths]
        )
        features.append(np.concatenate(per_image, axis=1))
        positions.append(np.asarray(entries[str(row[columns[0]])]["z"], np.float32))
    return SampleFeatures(features, positions)


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
    features, mask = pad_slices([samples.features[i] for i in rows])
    return HeadData(features.float(), targets, mask if bool(mask.any()) else None)


def pooled(samples: SampleFeatures, rows: np.ndarray) -> np.ndarray:
    """Mean slice feature per row ``[N, D]`` (k-NN)."""
    return np.stack([samples.features[i].mean(axis=0) for i in rows]).astype(np.float64)
