"""Hand-crafted baseline on the synthetic cohort: image statistics + linear models, 5-fold CV.

``python -m braindino.synth.baseline DIR`` prints and saves (``DIR/baseline.json``) one line of
metrics per task; ``generate_cohort`` runs it and puts the numbers in ``DIR/README.md``. Targets
come from each dataset's ``truth.csv``; features come from the images only
(``baseline_features``). Every task should beat chance and stay clearly below perfect.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from braindino.errors import DataError
from braindino.io import read_volume
from braindino.metrics import dice
from braindino.synth import baseline_features as bf
from braindino.synth.cohort_specs import COHORTS, SEQUENCES

MIN_SUBJECTS = 10
ADNI_CLASSES = {"CN": 0, "MCI": 1, "AD": 2}


def _truth(root: Path, cohort: str) -> pd.DataFrame | None:
    path = root / COHORTS[cohort].folder / "truth.csv"
    return pd.read_csv(path) if path.is_file() else None


def _image(root: Path, cohort: str, rel: str):
    return read_volume(root / COHORTS[cohort].folder / rel)


def _folds(y: np.ndarray, classification: bool, groups: np.ndarray | None = None):
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    if groups is not None:
        return GroupKFold(n_splits=min(5, len(np.unique(groups)))).split(y, y, groups)
    if classification:
        smallest = int(np.bincount(y).min())
        return StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=0).split(y, y)
    return KFold(n_splits=5, shuffle=True, random_state=0).split(y)


def _cv_proba(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold class probabilities of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    proba = np.zeros((len(y), int(y.max()) + 1))
    for train, test in _folds(y, True, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(X[train], y[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(X[test])
    return proba


def _cv_regress(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions and the out-of-fold training-mean predictions."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred, chance = np.zeros(len(y)), np.zeros(len(y))
    for train, test in _folds(y, False):
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 11))  # penalty chosen inside the fold
        model = make_pipeline(StandardScaler(), ridge).fit(X[train], y[train])
        pred[test] = model.predict(X[test])
        chance[test] = y[train].mean()
    return pred, chance


def _classification(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> dict:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    proba = _cv_proba(X, y, groups)
    if proba.shape[1] == 2:
        auc = {"auc": float(roc_auc_score(y, proba[:, 1]))}
    else:
        auc = {"macro_auc": float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))}
    return {
        **auc,
        "balanced_accuracy": float(balanced_accuracy_score(y, proba.argmax(1))),
        "n": len(y),
    }


def _regression(X: np.ndarray, y: np.ndarray) -> dict:
    pred, chance = _cv_regress(X, y)
    return {
        "mae": float(np.abs(pred - y).mean()),
        "mae_chance": float(np.abs(chance - y).mean()),
        "pearson_r": float(np.corrcoef(pred, y)[0, 1]),
        "n": len(y),
    }


def _too_few(y, classification: bool) -> str | None:
    if len(y) < MIN_SUBJECTS:
        return f"{len(y)} subjects (need {MIN_SUBJECTS})"
    if classification and (len(np.unique(y)) < 2 or np.bincount(y).min() < 2):
        return "a class has fewer than 2 subjects"
    return None


def _t1_table(root: Path, cohort: str, truth: pd.DataFrame) -> np.ndarray:
    rows = [bf.t1_features(_image(root, cohort, rel)) for rel in truth["file_T1"]]
    return pd.DataFrame(rows).to_numpy(dtype=float)


def _multi(root: Path, cohort: str, row, roles: Iterable[str]) -> dict[str, np.ndarray]:
    return {role: _image(root, cohort, row[f"file_{role}"]).data for role in roles}


def _neuro_task(root: Path, cohort: str, target: Callable[[pd.DataFrame], Any], kind: str):
    truth = _truth(root, cohort)
    if truth is None:
        return None
    y = np.asarray(target(truth), float if kind == "regress" else int)
    if why := _too_few(y, kind == "class"):
        return {"skipped": why}
    X = _t1_table(root, cohort, truth)
    return _classification(X, y) if kind == "class" else _regression(X, y)


def _glioma_table(root: Path, cohort: str, truth: pd.DataFrame) -> np.ndarray:
    rows = [bf.tumour_features(_multi(root, cohort, row, SEQUENCES)) for _, row in truth.iterrows()]
    return pd.DataFrame(rows).to_numpy(dtype=float)


def _brats_sequence(root: Path) -> dict | None:
    truth = _truth(root, "brats2021")
    if truth is None:
        return None
    if len(truth) < 3:
        return {"skipped": f"{len(truth)} subjects (need 3)"}
    X, y, groups = [], [], []
    for i, row in truth.iterrows():
        for label, seq in enumerate(SEQUENCES):
            data = _image(root, "brats2021", row[f"file_{seq}"]).data
            X.append(list(bf.sequence_features(data).values()))
            y.append(label)
            groups.append(i)
    return _classification(np.array(X), np.array(y), np.array(groups))


def _brats_seg(root: Path) -> dict | None:
    scores: dict[str, list[float]] = {"wt": [], "tc": [], "et": []}
    regions = {"brats2021": {"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)}}
    regions["brats2023"] = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}
    found = False
    for cohort, labels in regions.items():
        truth = _truth(root, cohort)
        if truth is None:
            continue
        found = True
        for _, row in truth.iterrows():
            images = _multi(root, cohort, row, SEQUENCES)
            seg = np.rint(_image(root, cohort, row["file_seg"]).data).astype(int)
            predicted = bf.threshold_segmentation(images)
            for region, values in labels.items():
                scores[region].append(dice(predicted[region], np.isin(seg, values)))
    if not found:
        return None
    n = len(scores["wt"])
    return {f"dice_{k}": float(np.mean(v)) for k, v in scores.items()} | {"n": n}


def _glioma_class(root: Path, cohort: str, target: Callable[[pd.DataFrame], Any]):
    truth = _truth(root, cohort)
    if truth is None:
        return None
    y = np.asarray(target(truth), int)
    truth, y = truth[y >= 0].reset_index(drop=True), y[y >= 0]
    why = _too_few(y, True)
    return {"skipped": why} if why else _classification(_glioma_table(root, cohort, truth), y)


def _upenn_cox(root: Path) -> dict | None:
    from lifelines import CoxPHFitter
    from lifelines.utils import concordance_index

    truth = _truth(root, "upenn")
    if truth is None:
        return None
    if why := _too_few(truth, False):
        return {"skipped": why}
    X = _glioma_table(root, "upenn", truth)
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-9)
    time = truth["observed_days"].to_numpy(float)
    event = truth["event"].to_numpy(int)
    risk = np.zeros(len(truth))
    for train, test in _folds(time, False):
        frame = pd.DataFrame(X[train], columns=[f"f{i}" for i in range(X.shape[1])])
        frame["time"], frame["event"] = time[train], event[train]
        model = CoxPHFitter(penalizer=0.1).fit(frame, "time", "event")
        test_frame = pd.DataFrame(X[test], columns=frame.columns[:-2])
        risk[test] = np.asarray(model.predict_log_partial_hazard(test_frame)).ravel()
    return {"c_index": float(concordance_index(time, -risk, event)), "n": len(truth)}


def _atlas(root: Path) -> dict | None:
    truth = _truth(root, "atlas")
    if truth is None:
        return None
    y = np.log1p(truth["days_since_stroke"].to_numpy(float))
    if why := _too_few(y, False):
        return {"skipped": why}
    rows = []
    for _, row in truth.iterrows():
        t1 = _image(root, "atlas", row["file_T1"])
        mask = _image(root, "atlas", row["file_seg"]).data
        rows.append(bf.lesion_features(t1, mask))
    return _regression(pd.DataFrame(rows).to_numpy(dtype=float), y)


def _survival_label(truth: pd.DataFrame) -> np.ndarray:
    """1 survived > 365 days, 0 died within, -1 censored before a year (unknown)."""
    days, event = truth["observed_days"].to_numpy(float), truth["event"].to_numpy(int)
    return np.where(days > 365, 1, np.where(event == 1, 0, -1))


#: task -> its score on the cohort in a folder (None when the cohort lacks the dataset)
RUNNERS: dict[str, Callable[[Path], dict | None]] = {
    "adni": lambda r: _neuro_task(r, "adni", lambda t: t["diagnosis"].map(ADNI_CLASSES), "class"),
    "oasis": lambda r: _neuro_task(r, "oasis", lambda t: t["cdr"] > 0, "class"),
    "abide": lambda r: _neuro_task(r, "abide", lambda t: t["autism"], "class"),
    "brain_age": lambda r: _neuro_task(r, "ixi", lambda t: t["age"], "regress"),
    "brats_sequence": _brats_sequence,
    "brats_seg": _brats_seg,
    "ucsf_idh": lambda r: _glioma_class(r, "ucsf", lambda t: t["glioma_idh_mutant"]),
    "upenn_survival_cls": lambda r: _glioma_class(r, "upenn", _survival_label),
    "upenn_cox": _upenn_cox,
    "atlas_stroke": _atlas,
}
TASKS = tuple(RUNNERS)


def run_baseline(
    root: str | Path, tasks: Iterable[str] | None = None, progress: bool = False
) -> dict[str, dict]:
    """Cross-validated baseline metrics per task for the cohort in ``root`` (absent: omitted)."""
    root = Path(root)
    if not (root / "cohort.json").is_file():
        raise DataError(
            "no synthetic cohort here (cohort.json missing)",
            path=root,
            fix="give the folder written by `python -m braindino.synth --out DIR`",
        )
    chosen = list(TASKS if tasks is None else tasks)
    unknown = [t for t in chosen if t not in RUNNERS]
    if unknown:
        raise DataError(
            f"unknown baseline task(s) {unknown}", path="tasks", fix=f"choose from {list(TASKS)}"
        )
    from tqdm import tqdm

    results = {}
    for task in tqdm(chosen, desc="baseline", unit="task", disable=not progress):
        result = RUNNERS[task](root)
        if result is not None:
            results[task] = result
    return results


def save_baseline(root: str | Path, scores: dict) -> Path:
    """Write ``root/baseline.json`` (rounded, stable key order)."""
    path = Path(root) / "baseline.json"
    rounded = {
        t: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
        for t, r in scores.items()
    }
    path.write_text(json.dumps(rounded, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m braindino.synth.baseline DIR [--tasks ...]``."""
    from braindino.synth.readme import baseline_markdown

    parser = argparse.ArgumentParser(
        prog="python -m braindino.synth.baseline",
        description="Hand-crafted baseline (image statistics + linear models, 5-fold CV) on a "
        "synthetic cohort; writes DIR/baseline.json.",
    )
    parser.add_argument("dir", help="folder written by python -m braindino.synth")
    parser.add_argument("--tasks", nargs="+", default=None, help=f"subset of {', '.join(TASKS)}")
    args = parser.parse_args(argv)
    scores = run_baseline(args.dir, args.tasks, progress=True)
    path = save_baseline(args.dir, scores)
    print(baseline_markdown(scores))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    from braindino.cli import run_cli

    run_cli(main)
