"""Paired comparisons in a run folder: every baseline encoder against the main encoder on the
same test subjects, per label fraction and seed — the difference of the primary metric with a
paired-bootstrap interval and, for classification and k-NN, McNemar's exact test; for a
two-class task scored by AUC, DeLong's test of the two AUCs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from braindino.downstream.run_folder import format_ci
from braindino.downstream.target_kinds import TargetKind
from braindino.errors import BrainDinoError
from braindino.metrics import get_metric
from braindino.metrics.paired import delong_p, mcnemar_p, paired_difference


def _scores(frame: pd.DataFrame, metric: str, target: TargetKind) -> tuple[Any, tuple, Any]:
    """``(metric_fn, its arguments, per-subject correctness or None)`` of one run's rows."""
    if metric.startswith("knn_accuracy@"):
        correct = frame[f"correct_k{metric.split('@')[1]}"].to_numpy(np.float64)
        return (lambda c: float(np.mean(c))), (correct,), correct
    args = target.metric_args(metric, frame, frame)
    correct = None
    if target.target == "class":
        proba = frame[[f"proba_{c}" for c in target.classes]].to_numpy()
        correct = proba.argmax(axis=1) == frame["target"].to_numpy(np.int64)
    return get_metric(metric), args, correct


def _delong(mine: pd.DataFrame, theirs: pd.DataFrame, metric: str, target: TargetKind):
    """DeLong's p for a two-class AUC comparison (``None`` where it does not apply)."""
    if metric != "macro_auc" or target.target != "class" or len(target.classes) != 2:
        return None
    positive = f"proba_{target.classes[1]}"
    try:
        return delong_p(mine["target"], mine[positive], theirs[positive])[2]
    except BrainDinoError:  # fewer than two subjects of a class on this split
        return math.nan


def paired_comparisons(
    predictions: pd.DataFrame, metric: str, target: TargetKind, n: int
) -> list[dict[str, Any]]:
    """One record per (baseline encoder, label fraction, seed) that the main encoder also ran:
    ``difference`` (main − baseline) of ``metric`` with ``low``/``high``, ``mcnemar_p`` and
    ``delong_p`` (``None`` where a test does not apply)."""
    out = []
    main = predictions[predictions["encoder"] == "encoder"]
    for baseline in [e for e in predictions["encoder"].unique() if e != "encoder"]:
        other = predictions[predictions["encoder"] == baseline]
        for (fraction, seed), mine in main.groupby(["fraction", "seed"], sort=True):
            theirs = other[(other["fraction"] == fraction) & (other["seed"] == seed)]
            if theirs.empty:
                continue
            mine, theirs = mine.sort_values("subject"), theirs.sort_values("subject")
            if mine["subject"].tolist() != theirs["subject"].tolist():
                continue  # not the same test subjects: no paired comparison
            fn, first, right_a = _scores(mine, metric, target)
            _, second, right_b = _scores(theirs, metric, target)
            try:
                value, low, high = paired_difference(fn, first, second, n=n, seed=int(seed))
            except BrainDinoError:  # undefined on this split (e.g. one class)
                value = low = high = math.nan
            p = mcnemar_p(right_a, right_b) if right_a is not None else None
            out.append(
                {
                    "baseline": baseline,
                    "fraction": float(fraction),
                    "seed": int(seed),
                    "metric": metric,
                    "difference": {"value": value, "low": low, "high": high},
                    "mcnemar_p": p,
                    "delong_p": _delong(mine, theirs, metric, target),
                    "n_test": len(mine),
                }
            )
    return out


def paired_lines(records: list[dict[str, Any]]) -> list[str]:
    """The report's section for :func:`paired_comparisons` (empty without baselines)."""
    if not records:
        return []
    lines = [
        "## Paired comparison with the baselines (same test subjects)",
        "",
        "Difference = main encoder − baseline, with a 95 % paired bootstrap interval over the "
        "test subjects; McNemar: exact test on per-subject correctness; DeLong: test of two "
        "correlated AUCs (two-class tasks).",
        "",
        "| baseline | labels | seed | metric | difference | McNemar p | DeLong p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        p = ["" if r.get(k) is None else f"{r[k]:.3g}" for k in ("mcnemar_p", "delong_p")]
        lines.append(
            f"| {r['baseline']} | {r['fraction']:g} | {r['seed']} | {r['metric']} | "
            f"{format_ci(r['difference'])} | {p[0]} | {p[1]} |"
        )
    return [*lines, ""]
