"""The run folder's outputs: ``metrics.json``, ``predictions.csv``, ``attention.csv``, ``plots/``
and ``report.md`` (tables of every metric with 95 % bootstrap intervals, and the plots)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from braindino.downstream import plots
from braindino.downstream.adapted import NO_CACHE
from braindino.downstream.options import RunOptions
from braindino.downstream.paired import paired_comparisons, paired_lines
from braindino.downstream.run_folder import (
    adapter_lines,
    adapter_summary,
    encoders_line,
    picture_lines,
    results_table,
    run_summary,
    showcase,
    split_counts,
    summarise,
    summary_table,
    write_outputs,
)
from braindino.downstream.target_kinds import TargetKind
from braindino.heads import describe_head
from braindino.tasks import DropLog

PLOTS = {  # file prefix: (caption, title) of each per-encoder plot
    "roc": ("ROC", "ROC"),
    "confusion": ("Confusion matrix", "confusion"),
    "scatter": ("Predicted vs true", "predicted vs true"),
    "km": ("Kaplan–Meier by median risk", "Kaplan–Meier"),
    "attention": ("Attention over slices", "slice attention"),
}


def make_plots(
    out: Path,
    target: TargetKind,
    summary: pd.DataFrame,
    predictions: pd.DataFrame,
    attention: pd.DataFrame | None,
    knn: bool,
) -> list[tuple[str, Path]]:
    """Every plot that applies to the task; ``[(caption, path)]``."""
    folder = out / "plots"
    made: list[tuple[str, Path]] = []
    if knn:
        ks = summary[summary["metric"].str.startswith("knn_accuracy@")].copy()
        ks = ks[ks["fraction"] == ks["fraction"].max()]
        ks["k"] = ks["metric"].str.split("@").str[1].astype(int)
        return [("k-NN accuracy against k", plots.plot_knn(ks, folder / "knn.png", "k-NN"))]
    for encoder in dict.fromkeys(predictions["encoder"]):
        frame = showcase(predictions[predictions["encoder"] == encoder])
        tag = f"{encoder} (labels {frame['fraction'].iloc[0]:g}, seed {frame['seed'].iloc[0]})"
        drawn: dict[str, tuple] = {}  # file prefix (PLOTS) -> (plot function, its data)
        if target.target == "class":
            drawn["roc"] = (plots.plot_roc, frame, target.classes)
            drawn["confusion"] = (plots.plot_confusion, frame, target.classes)
        elif target.target == "regression":
            drawn["scatter"] = (plots.plot_scatter, frame)
        elif (split := target.km_split(frame, frame)) is not None:
            drawn["km"] = (plots.plot_kaplan_meier, split)
        part = None if attention is None else showcase(attention[attention["encoder"] == encoder])
        if part is not None and len(part):
            group: Any = "all"
            if "label" in predictions.columns:
                group = part["subject"].map(predictions.groupby("subject")["label"].first())
            drawn["attention"] = (plots.plot_attention, part.assign(group=group))
        for name, (plot, *data) in drawn.items():
            caption, title = PLOTS[name]
            path = plot(*data, folder / f"{name}_{encoder}.png", f"{title}: {encoder}")
            made.append((f"{caption}, {tag}", path))
    primary = target.metric_names()[0]
    curve = summary[summary["metric"] == primary]
    path = plots.plot_label_scarcity(
        curve, primary, folder / "label_scarcity.png", f"{primary} vs labels"
    )
    return [*made, ("Label scarcity", path)]


def say_data(manifest: pd.DataFrame, progress: bool) -> None:
    """Print (stderr) which data a run reads and what it left out (``excluded.csv`` lists each)."""
    if not progress:
        return
    for name, source in manifest.attrs.get("sources", {}).items():
        print(f"[{name}] data: {source['root']} ({source['subjects']} subjects)", file=sys.stderr)
    dropped = DropLog(dict(manifest.attrs.get("dropped") or {}))
    if dropped.counts:
        print(f"  left out: {dropped.summary()} (see excluded.csv)", file=sys.stderr, flush=True)


def data_summary(manifest: pd.DataFrame, out: Path) -> dict[str, Any]:
    """What the run read: per source its root and subject count, the samples left out per
    reason; every left-out subject is written to ``out/excluded.csv``."""
    excluded = pd.DataFrame(manifest.attrs.get("excluded") or [], columns=["subject", "reason"])
    excluded.to_csv(out / "excluded.csv", index=False)
    timepoints = manifest["timepoint"].notna().any() if "timepoint" in manifest.columns else False
    return {
        "sources": dict(manifest.attrs.get("sources") or {}),
        "left_out": dict(manifest.attrs.get("dropped") or {}),
        "patients": int(manifest["patient"].nunique()) if "patient" in manifest.columns else None,
        "timepoints": bool(timepoints),
        "timepoint": manifest.attrs.get("timepoint", "baseline"),
    }


def data_lines(data: dict[str, Any]) -> list[str]:
    """The report's lines on the data read and what was left out."""
    lines = [
        f"- data: {name} from `{s['root']}` ({s['subjects']} subjects)"
        for name, s in data["sources"].items()
    ]
    if data["timepoints"]:
        kept = (
            "every timepoint is a sample"
            if data["timepoint"] == "all"
            else "each patient's baseline (earliest timepoint) is its sample"
        )
        lines.append(
            f"- {data['patients']} patients; {kept} (data.timepoint); a patient's scans share "
            "a split"
        )
    left = DropLog(dict(data["left_out"]))
    where = " (each in excluded.csv)" if left.counts else ""
    lines.append(f"- left out: {left.summary()}{where}")
    return lines


def head_line(task: DictConfig, options: RunOptions) -> str:
    """``- head: mean_mlp — what it computes; on `cls` features of 128 slices resampled along
    z`` for the report's header."""
    name = options.head or str(task.head)
    head_options = OmegaConf.to_container(task.head_options, resolve=True) or {}
    slices = str(task.slices)
    depth = "every kept slice" if slices == "all" else f"{slices} slices resampled along z"
    return (
        f"- head: `{name}` — {describe_head(name, head_options)}; on `{options.feature}` "
        f"features of {depth}"
    )


def write_report(
    out: Path,
    task: DictConfig,
    options: RunOptions,
    manifest: pd.DataFrame,
    results: list[dict],
    predictions: pd.DataFrame,
    attention: pd.DataFrame | None,
    target: TargetKind,
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write every output file of a run into ``out``; returns what ``metrics.json`` holds.

    ``skipped``: baselines that were asked for but not available (label -> reason)."""
    out = Path(out)
    knn = str(task.head) == "knn" or options.head == "knn"
    summary = summarise(results, ["encoder", "fraction"])
    predictions.to_csv(out / "predictions.csv", index=False)
    if attention is not None:
        attention.to_csv(out / "attention.csv", index=False)
    figures = make_plots(out, target, summary, predictions, attention, knn)
    counts = split_counts(manifest)
    data = data_summary(manifest, out)
    primary = next(iter(results[0]["metrics"])) if results[0]["metrics"] else None
    paired = paired_comparisons(predictions, primary, target, options.bootstrap) if primary else []
    metrics = {
        **run_summary(task, out, manifest, results, data),
        "target": str(task.target),
        "head": options.head or str(task.head),
        "feature": options.feature,
        "slices": str(task.slices),
        "adapter": adapter_summary(options, results),
        "feature_cache": NO_CACHE if options.adapter != "none" else "used",
        "primary_metric": results[0]["metrics"] and next(iter(results[0]["metrics"])),
        "skipped_encoders": dict(skipped or {}),
        "confidence": "95 % percentile bootstrap over test subjects",
        "bootstrap_resamples": options.bootstrap,
        "results": results,
        "summary": summary.to_dict("records"),
        "paired": paired,
        "files": {
            "predictions": "predictions.csv",
            "attention": "attention.csv" if attention is not None else None,
            "splits": "splits.csv",
            "excluded": "excluded.csv",
            "config": "config.yaml",
            "plots": [str(p.relative_to(out)) for _, p in figures],
        },
    }
    lines = [
        f"# {task.name}: "
        + ("frozen-encoder" if options.adapter == "none" else "LoRA-adapted encoder")
        + " evaluation",
        "",
        str(task.description),
        "",
        f"- subjects: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        "(splits.csv; model selection on val only, test evaluated once per trained head)",
        encoders_line(results),
        head_line(task, options),
        *adapter_lines(metrics["adapter"]),
        *([f"- feature cache: {NO_CACHE}"] if options.adapter != "none" else []),
        *data_lines(data),
        *[f"- skipped {name}: {why}" for name, why in (skipped or {}).items()],
        "- metrics on the test split with 95 % bootstrap intervals "
        f"({options.bootstrap} resamples)",
        "",
        "## Summary (mean and sd over seeds)",
        "",
        *summary_table(summary, ["encoder", "fraction"]),
        "",
        "## Every trained head",
        "",
        *results_table(results, ["encoder", "fraction", "seed", "n_train"]),
        "",
        *paired_lines(paired),
        "## Plots",
        "",
    ]
    lines += picture_lines((c, path.relative_to(out).as_posix()) for c, path in figures)
    lines += [
        "Files: metrics.json, predictions.csv, splits.csv, excluded.csv, config.yaml"
        + (", attention.csv" if attention is not None else ""),
        "",
    ]
    return write_outputs(out, metrics, lines)
