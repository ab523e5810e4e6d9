"""Segmentation manifests: each case's image files (in ``data.inputs`` order) and its label map.

The native layouts (BraTS case folders, ATLAS BIDS) are read by the ``folders`` adapter; this
module turns the mask role's column into ``mask`` so the images stay ``image``, ``image2`` ...
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from braindino.errors import ConfigError
from braindino.tasks.manifest import load_manifest
from braindino.tasks.registry import as_list, load_task


def segmentation_manifest(
    task: str | DictConfig, root: str | Path | None = None, cohort: str | Path | None = None
) -> pd.DataFrame:
    """One row per case: ``subject``, ``dataset``, ``image`` ... (the modalities), ``mask``,
    ``patient`` and ``timepoint`` (a patient's timepoints share a split).

    ``label`` is set to ``"case"`` so subject-level splits have one stratum. Raises ConfigError
    for a task that is not a segmentation task, DataError (from the adapter) when no case has
    every image and its label map.
    """
    if not isinstance(task, DictConfig):
        task = load_task(task)
    if task.target != "segmentation":
        raise ConfigError(
            f"task {task.name} is a {task.target} task, not a segmentation task",
            path="--task",
            fix="pick a segmentation task (brats2021, brats2023_gli, ..., atlas_lesion)",
        )
    frame = load_manifest(task, root, cohort=cohort)
    roles = as_list(task.data.inputs)
    mask_column = f"image{roles.index(str(task.segmentation.mask_input)) + 1}"  # never the first
    frame = frame.rename(columns={mask_column: "mask"})
    images = [c for c in frame.columns if c.startswith("image")]
    out = frame[["subject", "dataset", *images, "mask", "patient", "timepoint"]].copy()
    out["label"] = "case"
    if "split" in frame.columns:
        out["split"] = frame["split"]
    out.attrs.update(frame.attrs)
    out.attrs["roles"] = [r for r in roles if r != str(task.segmentation.mask_input)]
    return out.reset_index(drop=True)
