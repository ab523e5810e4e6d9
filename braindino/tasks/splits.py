"""Subject-level stratified train/val/test splits, fixed by a seed and saved to disk.

Every sample of a subject lands in the same split, and so does every subject of one patient (a
manifest's ``patient`` column: follow-up scans of one person). Subjects are stratified by their
class (class tasks), a quantile bin of their target (regression) or their event flag (survival).
Within each stratum the subjects (sorted by id, then shuffled by the seed) are cut by the
fractions, so the same manifest and seed always give the same splits. A ``split`` column in the
manifest (e.g. an official test set) is kept; splits it lacks are carved out of its training
subjects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from braindino.errors import DataError

SPLITS = ("train", "val", "test")


def subject_strata(manifest: pd.DataFrame, target: str, bins: int = 4) -> pd.Series:
    """One stratum label per subject (index: subject id, sorted)."""
    groups = manifest.groupby("subject", sort=True)
    if target == "class":
        return groups["label"].agg(lambda s: "|".join(sorted({str(v) for v in s})))
    if target == "survival":
        return groups["event"].max().astype(int).astype(str)
    values = groups["target"].mean()
    n_bins = max(1, min(int(bins), len(values) // 2))
    if n_bins == 1:
        return pd.Series("all", index=values.index)
    edges = np.quantile(values.to_numpy(), np.linspace(0, 1, n_bins + 1)[1:-1])
    return pd.Series(
        np.searchsorted(edges, values.to_numpy(), side="right"), index=values.index
    ).astype(str)


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Subjects of one stratum per split: rounded shares; with >= 3 subjects every non-zero
    share gets at least one."""
    val = round(n * fractions[1])
    test = round(n * fractions[2])
    if n >= 3:
        val = max(val, 1) if fractions[1] > 0 else 0
        test = max(test, 1) if fractions[2] > 0 else 0
    elif n == 2:
        val, test = 0, 1
    else:
        val = test = 0
    return [n - val - test, val, test]


def _assign(strata: pd.Series, fractions: Sequence[float], seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for stratum in sorted(strata.unique()):
        subjects = np.array(sorted(strata.index[strata == stratum]))
        subjects = subjects[rng.permutation(len(subjects))]
        counts = _counts(len(subjects), fractions)
        names = np.repeat(SPLITS, counts)
        out.update(dict(zip(subjects.tolist(), names.tolist())))
    return out


def _user_splits(manifest: pd.DataFrame) -> dict[str, str] | None:
    if "split" not in manifest.columns or manifest["split"].isna().all():
        return None
    given = manifest.groupby("subject")["split"].agg(lambda s: sorted({v for v in s if v}))
    mixed = [s for s, v in given.items() if len(v) > 1]
    if mixed:
        raise DataError(
            f"subject {mixed[0]} has samples in several splits ({', '.join(given[mixed[0]])})",
            path="split column",
            fix="give every sample of a subject the same split",
        )
    blank = [s for s, v in given.items() if not v]
    if blank:
        raise DataError(
            f"{len(blank)} subject(s) have no split (e.g. {blank[0]}) while others do",
            path="split column",
            fix="fill the split column for every subject, or leave it empty for all",
        )
    return {s: v[0] for s, v in given.items()}


def make_splits(
    manifest: pd.DataFrame,
    target: str = "class",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    bins: int = 4,
) -> pd.DataFrame:
    """Subject-level stratified splits: a table ``subject, split, stratum`` sorted by subject.

    ``fractions``: train/val/test shares. A manifest ``split`` column is respected; the splits it
    does not name (often val) are taken from its training subjects in proportion.
    """
    units = _patient_units(manifest)
    strata = subject_strata(units, target, bins)
    user = _user_splits(units)
    if user is None:
        assigned = _assign(strata, fractions, seed)
    else:
        assigned = dict(user)
        absent = [i for i, name in enumerate(SPLITS) if name not in set(user.values())]
        if 0 in absent:
            raise DataError(
                "the split column names no training subject",
                path="split column",
                fix="mark the training subjects 'train'",
            )
        if absent:
            train = [s for s, v in user.items() if v == "train"]
            keep = [fractions[0]] + [fractions[i] if i in absent else 0.0 for i in (1, 2)]
            share = [f / sum(keep) for f in keep]
            assigned.update(_assign(strata.loc[sorted(train)], share, seed))
    patient_of = dict(zip(manifest["subject"].astype(str), units["subject"].astype(str)))
    subjects = sorted(patient_of)
    return pd.DataFrame(
        {
            "subject": subjects,
            "split": [assigned[patient_of[s]] for s in subjects],
            "stratum": [strata[patient_of[s]] for s in subjects],
        }
    )


def _patient_units(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest with ``subject`` replaced by its ``patient`` where it has one, so the units
    split are patients (all of one person's scans in one split)."""
    if "patient" not in manifest.columns:
        return manifest
    patients = manifest["patient"].where(manifest["patient"].notna(), manifest["subject"])
    return manifest.assign(subject=patients.astype(str))


def save_splits(splits: pd.DataFrame, path: str | Path, info: dict | None = None) -> Path:
    """Write the splits as CSV (and ``info`` plus per-split counts beside it as JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    splits.to_csv(tmp, index=False)
    tmp.replace(path)
    meta = dict(info or {})
    meta["counts"] = {name: int((splits["split"] == name).sum()) for name in SPLITS}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def load_splits(path: str | Path) -> pd.DataFrame:
    """Read splits written by ``save_splits``."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the splits ({exc})", path=path, fix="delete it") from exc
    if not {"subject", "split"} <= set(frame.columns):
        raise DataError("not a splits file (needs subject, split)", path=path, fix="delete it")
    return frame


def ensure_splits(
    manifest: pd.DataFrame,
    path: str | Path,
    target: str = "class",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    bins: int = 4,
) -> pd.DataFrame:
    """The splits saved at ``path``, made and saved first when the file does not exist.

    Raises DataError when a saved file's subjects differ from the manifest's.
    """
    path = Path(path)
    subjects = set(manifest["subject"].astype(str))
    if path.is_file():
        saved = load_splits(path)
        if set(saved["subject"]) != subjects:
            new = len(subjects - set(saved["subject"]))
            gone = len(set(saved["subject"]) - subjects)
            raise DataError(
                f"saved splits do not match the data ({new} new subjects, {gone} missing)",
                path=path,
                fix="delete the file to make new splits, or use the data they were made for",
            )
        return saved
    splits = make_splits(manifest, target, fractions, seed, bins)
    info = {"seed": int(seed), "fractions": [float(f) for f in fractions], "target": target}
    save_splits(splits, path, info)
    return splits


def with_splits(manifest: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """The manifest with its ``split`` column set from ``splits`` (by subject)."""
    lookup = dict(zip(splits["subject"].astype(str), splits["split"]))
    out = manifest.copy()
    out["split"] = out["subject"].astype(str).map(lookup)
    out.attrs = dict(manifest.attrs)
    return out


def split_manifest(
    manifest: pd.DataFrame, task: Any, path: str | Path, target: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's splits (``ensure_splits`` with the task's ``split`` settings, saved at ``path``)
    and the manifest with its ``split`` column, re-indexed from 0."""
    cfg = task.split
    fractions = [float(f) for f in cfg.fractions]
    splits = ensure_splits(manifest, path, target, fractions, int(cfg.seed), int(cfg.bins))
    return with_splits(manifest, splits).reset_index(drop=True), splits
