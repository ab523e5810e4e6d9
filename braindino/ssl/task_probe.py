"""A user's own labelled task as a periodic pretraining probe.

Any classification task ``braindino.tasks`` can load — a task name (``adni``), a task YAML, or
``csv_class`` with a CSV as ``probe.data_root`` — is read into its manifest (the same adapters,
label rules and exclusions as ``downstream/classify.py``), and every volume is cut into axial
slices by ``braindino.features`` with the pretraining preprocessing at the probe's image size.
The probe then scores the slices' mean features with the same grouped cross-validation as the
built-in synthetic-cohort probes (groups: patients, so follow-up scans of one patient never sit
on both sides of a fold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from braindino.errors import ConfigError
from braindino.features import encoder_slices
from braindino.tasks import image_columns, load_manifest, load_task


def labelled_task_data(
    spec: str,
    encoder: torch.nn.Module | None,
    size: int,
    slices: int,
    data_root: str | Path | None = None,
    cohort: str | Path | None = None,
    progress: bool = False,
) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(task name, (images [n, slices, size, size], labels [n], groups [n]))`` of a
    classification task; ``slices`` evenly spaced axial slices span each volume's kept range.

    ``encoder`` contributes its export's preprocessing settings (None: the pretraining
    defaults). ``data_root`` is the dataset folder or CSV (default: the task's ``data.root``,
    else the synthetic stand-in in ``cohort``). Raises ConfigError for a task that is not a
    classification task and when neither a data root nor a cohort says where the images are.
    """
    task = load_task(spec)
    if str(task.target) != "class":
        raise ConfigError(
            f"probe task {task.name} is a {task.target} task; a probe scores classes",
            path="probe.labelled",
            fix="name classification tasks (e.g. adni, or csv_class with probe.data_root=X.csv)",
        )
    if data_root is None and task.data.root is None and cohort is None:
        raise ConfigError(
            f"probe task {task.name} has no data: no probe.data_root, no data.root in the "
            "task and no probe.cohort",
            path="probe.data_root",
            fix="set probe.data_root to the dataset folder (or CSV) of the labelled tasks",
        )
    manifest = load_manifest(task, data_root, cohort=cohort)
    column = image_columns(manifest)[0]
    preprocess = {"slices": {"size": int(size)}}
    paths = manifest[column].astype(str).tolist()
    stacks = [
        encoder_slices(encoder, path, preprocess, int(slices))[0]
        for path in tqdm(paths, desc=f"probe {task.name}", disable=not progress, leave=False)
    ]
    groups = manifest["patient"] if "patient" in manifest else manifest["subject"]
    labels = manifest["label"].astype(str).to_numpy()
    return str(task.name), (np.stack(stacks), labels, groups.astype(str).to_numpy())
