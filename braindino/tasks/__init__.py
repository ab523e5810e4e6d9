"""Downstream tasks: the registry (``configs/tasks/*.yaml``), dataset adapters, splits.

``load_task(name, overrides)`` -> merged task config; ``load_manifest(task, root)`` -> the task's
samples read from the dataset's native layout (or the synthetic cohort when no root is given);
``make_splits`` / ``ensure_splits`` -> subject-level stratified train/val/test;
``label_fraction_subjects`` -> fixed-seed label-scarcity subsets of the training split;
``segmentation_manifest`` -> a segmentation task's cases (images + label map).
"""

from braindino.tasks.droplog import DropLog
from braindino.tasks.fractions import label_fraction_subjects
from braindino.tasks.images import subject_key
from braindino.tasks.labels import normalise_value
from braindino.tasks.manifest import data_root, image_columns, load_manifest
from braindino.tasks.registry import available_tasks, load_task
from braindino.tasks.segmentation import segmentation_manifest
from braindino.tasks.splits import (
    SPLITS,
    ensure_splits,
    load_splits,
    make_splits,
    save_splits,
    split_manifest,
    with_splits,
)
from braindino.tasks.synthetic import cache_dir, default_cohort_dir, ensure_cohort, synthetic_root

__all__ = [
    "SPLITS",
    "DropLog",
    "available_tasks",
    "cache_dir",
    "data_root",
    "default_cohort_dir",
    "ensure_cohort",
    "ensure_splits",
    "image_columns",
    "label_fraction_subjects",
    "load_manifest",
    "load_splits",
    "load_task",
    "make_splits",
    "normalise_value",
    "save_splits",
    "segmentation_manifest",
    "split_manifest",
    "subject_key",
    "synthetic_root",
    "with_splits",
]
