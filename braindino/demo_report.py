"""The ``make demo`` report: the evidence first — the demo encoder against its random-init twin
on every task, each with a 95 % interval, the paired difference on the same subjects and a
paired test — then the pictures (PCA and attention maps, the label-scarcity sweep).

The rows come from three places, all computed on the same subjects for both encoders:

* the dense tissue probe of ``braindino analyze`` (``metrics.json``: ``dense_probes``);
* frozen probes of volume labels (:meth:`ProbeSet.predictions`: out-of-fold logistic regression,
  one volume per subject), scored here with a bootstrap over subjects and McNemar's test;
* the ADNI-like classification of ``downstream/classify.py --compare random``
  (``metrics.json``: ``results`` and ``paired``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from braindino.downstream.run_folder import picture_lines
from braindino.io.atomic import atomic_write
from braindino.metrics import balanced_accuracy
from braindino.metrics.bootstrap import bootstrap_ci
from braindino.metrics.paired import mcnemar_p, paired_difference
from braindino.ssl.probe import ProbeSet

Interval = tuple[float, float, float]  # (value, low, high)

PROBE_TASK_NAMES = {
    "brain_age": "brain age (above / below the median), T1",
    "diagnosis": "diagnosis (cognitively normal vs MCI / AD), T1",
}


@dataclass
class EvidenceRow:
    """One task's comparison: the twin's and the encoder's score, encoder − twin, a test."""

    task: str
    measure: str
    twin: Interval
    encoder: Interval
    difference: Interval
    test: str = ""

    def verdict(self) -> str:
        """What the paired interval says, in words."""
        low, high = self.difference[1], self.difference[2]
        if not (math.isfinite(low) and math.isfinite(high)):
            return "undefined"
        if low > 0:
            return "pretrained better"
        if high < 0:
            return "random twin better"
        return "no clear difference"


def _interval(entry: dict) -> Interval:
    return (float(entry["value"]), float(entry["low"]), float(entry["high"]))


def dense_rows(analysis: dict, baseline: str = "random_init") -> list[EvidenceRow]:
    """Rows of the dense probes at scale 1 from ``braindino analyze``'s ``metrics.json``."""
    rows = []
    records = [r for r in analysis.get("dense_probes", []) if r["scale"] == 1]
    for probe in dict.fromkeys(r["probe"] for r in records):
        mine = {r["encoder"]: r for r in records if r["probe"] == probe}
        if "encoder" not in mine or "encoder_minus_this" not in mine.get(baseline, {}):
            continue
        main, twin = mine["encoder"], mine[baseline]
        grid = "x".join(str(g) for g in main["grid"])
        rows.append(
            EvidenceRow(
                task=f"dense {probe} probe (patch tokens, {', '.join(main['classes'])})",
                measure=f"balanced accuracy over patches, {len(main['test_subjects'])} test "
                f"subjects, shifted {grid} grid (position alone: "
                f"{main['position_baseline']['value']:.3f})",
                twin=_interval(twin["balanced_accuracy"]),
                encoder=_interval(main["balanced_accuracy"]),
                difference=_interval(twin["encoder_minus_this"]),
                test="paired bootstrap over test subjects",
            )
        )
    return rows


def probe_rows(
    probes: ProbeSet,
    encoder: torch.nn.Module,
    twin: torch.nn.Module,
    tasks: Sequence[str] = ("brain_age", "diagnosis"),
    bootstrap: int = 1000,
) -> list[EvidenceRow]:
    """Rows of the frozen volume-label probes: out-of-fold logistic regression predictions of
    both encoders (same folds), balanced accuracy with a bootstrap over subjects, the paired
    difference and McNemar's exact test on per-subject correctness."""
    mine, theirs = probes.predictions(encoder), probes.predictions(twin)
    rows = []
    for task in [t for t in tasks if t in mine]:
        labels, predicted, groups = mine[task]
        twin_predicted = theirs[task][1]
        if len(np.unique(groups)) != len(groups):
            raise ValueError(f"probe task {task}: more than one volume per subject")
        rows.append(
            EvidenceRow(
                task=PROBE_TASK_NAMES.get(task, task),
                measure=f"balanced accuracy, frozen logistic regression, 5-fold CV, "
                f"{len(labels)} subjects",
                twin=bootstrap_ci(balanced_accuracy, labels, twin_predicted, n=bootstrap),
                encoder=bootstrap_ci(balanced_accuracy, labels, predicted, n=bootstrap),
                difference=paired_difference(
                    balanced_accuracy, (labels, predicted), (labels, twin_predicted), n=bootstrap
                ),
                test=f"McNemar p = {mcnemar_p(predicted == labels, twin_predicted == labels):.3g}",
            )
        )
    return rows


def classification_rows(metrics: dict, baseline: str = "random_init") -> list[EvidenceRow]:
    """Rows of a ``classify --compare random`` run: the primary metric at the largest label
    fraction, one row per seed (the paired record of that seed gives difference and tests)."""
    primary = metrics.get("primary_metric")
    results = metrics.get("results", [])
    if not primary or not results:
        return []
    fraction = max(float(r["fraction"]) for r in results)
    rows = []
    for record in metrics.get("paired", []):
        if record["baseline"] != baseline or float(record["fraction"]) != fraction:
            continue
        scores = {
            r["encoder"]: _interval(r["metrics"][primary])
            for r in results
            if float(r["fraction"]) == fraction and int(r["seed"]) == record["seed"]
        }
        tests = [
            f"{name} p = {record[key]:.3g}"
            for name, key in (("McNemar", "mcnemar_p"), ("DeLong", "delong_p"))
            if record.get(key) is not None
        ]
        rows.append(
            EvidenceRow(
                task=f"{metrics['task']} classification ({metrics['head']} head), "
                f"seed {record['seed']}",
                measure=f"{primary} on {record['n_test']} test subjects",
                twin=scores[baseline],
                encoder=scores["encoder"],
                difference=_interval(record["difference"]),
                test="; ".join(tests),
            )
        )
    return rows


def _ci(value: Interval) -> str:
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def evidence_table(rows: Sequence[EvidenceRow]) -> list[str]:
    """The lead table: one line per row, with its verdict."""
    lines = [
        "| task | measure | random twin | demo encoder | encoder − twin | test | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.measure} | {_ci(r.twin)} | {_ci(r.encoder)} | "
            f"{_ci(r.difference)} | {r.test} | {r.verdict()} |"
        )
    return lines


def plain_summary(rows: Sequence[EvidenceRow]) -> str:
    """One sentence per verdict kind, so a task without a gain is said plainly."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r.verdict(), []).append(r.task)
    parts = [f"**{verdict}**: {'; '.join(tasks)}." for verdict, tasks in groups.items()]
    return " ".join(parts)


def write_demo_report(
    path: Path,
    rows: Sequence[EvidenceRow],
    setting: str,
    pictures: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
) -> Path:
    """``report.md`` at ``path``: what was trained (``setting``), the evidence table and its
    plain summary, ``notes``, then each ``(caption, relative path)`` picture."""
    lines = ["# BrainDINO demo: what pretraining bought", "", setting, "", "## Evidence", ""]
    lines += [
        "Every row compares the demo encoder with its random-init twin (same architecture and "
        "initialisation arguments) on the same subjects; intervals are 95 % bootstrap "
        "intervals over subjects, *encoder − twin* a paired bootstrap (the same resampled "
        "subjects for both). The verdict reads the paired interval: above 0, below 0, or "
        "containing 0.",
        "",
        *evidence_table(rows),
        "",
        plain_summary(rows),
        "",
        *notes,
        "",
        "## Pictures",
        "",
    ]
    lines += picture_lines(pictures)
    text = "\n".join(lines)
    atomic_write(path, lambda handle: handle.write(text), mode="w")
    return path
