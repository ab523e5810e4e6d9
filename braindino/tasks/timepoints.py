"""Several scans of one patient: a ``patient`` and ``timepoint`` per sample, and the baseline.

Releases give follow-up scans their own folder (UPENN-GBM ``UPENN-GBM-00002_21`` follows
``UPENN-GBM-00002_11``; BraTS 2023 ``BraTS-MEN-00004-001`` follows ``-000``). A task's
``data.patient`` regex over the subject id names the patient and timepoint; splits keep a
patient's samples together, and with ``data.timepoint: baseline`` (the default) only each
patient's earliest timepoint is a sample, the others being left out with a reason.
"""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from braindino.config import config_regex
from braindino.tasks.droplog import DropLog


def _order(timepoint: object) -> tuple:
    """Sort key of a timepoint: numbers by value (``_11`` before ``_21``), then text."""
    text = "" if timepoint is None or pd.isna(timepoint) else str(timepoint)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def assign_patients(frame: pd.DataFrame, task: DictConfig, log: DropLog) -> pd.DataFrame:
    """``frame`` with ``patient`` and ``timepoint`` columns, and only the baseline samples
    (each patient's earliest timepoint) unless ``data.timepoint`` is ``all``.

    A subject id the pattern does not match is its own patient. A ``patient`` column the data
    already has (a generic CSV manifest) is kept.
    """
    text = task.data.patient
    regex = (
        config_regex(str(text), "data.patient", f"task {task.name}", "patient") if text else None
    )
    frame = frame.copy()
    if "patient" not in frame.columns:
        frame["patient"] = None
    if "timepoint" not in frame.columns:
        frame["timepoint"] = None
    for i, subject in enumerate(frame["subject"].astype(str)):
        match = regex.fullmatch(subject) if regex is not None else None
        if match is not None and pd.isna(frame.at[i, "patient"]):
            frame.at[i, "patient"] = match.group("patient")
            if "timepoint" in regex.groupindex:
                frame.at[i, "timepoint"] = match.group("timepoint")
    frame["patient"] = frame["patient"].where(frame["patient"].notna(), frame["subject"])
    if str(task.data.timepoint) == "all":
        return frame
    first = frame.groupby("patient")["timepoint"].transform(lambda s: min(s, key=_order))
    later = [_order(t) != _order(f) for t, f in zip(frame["timepoint"], first)]
    for subject in frame.loc[later, "subject"]:
        log.drop("follow_up_timepoint", subject)
    return frame.loc[[not x for x in later]].reset_index(drop=True)
