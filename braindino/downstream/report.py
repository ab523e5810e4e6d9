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
    format_ci,
    picture_lines,
    run_summary,
    split_counts,
    summarise,
    summary_table,
    write_outputs,
)
from braindino.downstream.target_kinds import TargetKind
from braindino.heads import describe_head
from braindino.tasks import DropLog


def _results_table(results: list[dict]) -> list[str]:
    names = list(dict.fromkeys(n for r in results for n in r["metrics"]))
    lines = [
        "| encoder | labels | seed | n train | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for r in results:
        cells = [format_ci(r["metrics"][n]) if n in r["metrics"] else "" for n in names]
        lines.append(
            f"| {r['encoder']} | {r['fraction']:g} | {r['seed']} | {r['n_train']} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _showcase(predictions: pd.DataFrame, encoder: str) -> pd.DataFrame:
    """The test predictions of one encoder's run at the largest fraction, first seed."""
    part = predictions[predictions["encoder"] == encoder]
    part = part[part["fraction"] == part["fraction"].max()]
    return part[part["seed"] == part["seed"].min()]


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
    encoders = list(dict.fromkeys(predictions["encoder"]))
    if knn:
        ks = summary[summary["metric"].str.startswith("knn_accuracy@")].copy()
        ks = ks[ks["fraction"] == ks["fraction"].max()]
        ks["k"] = ks["metric"].str.split("@").str[1].astype(int)
        made.append(("k-NN accuracy against k", plots.plot_knn(ks, folder / "knn.png", "k-NN")))
        return made
    for encoder in encoders:
        frame = _showcase(predictions, encoder)
        tag = f"{encoder} (labels {frame['fraction'].iloc[0]:g}, seed {frame['seed'].iloc[0]})"
        if target.target == "class":
            made.append(
                (
                    f"ROC, {tag}",
                    plots.plot_roc(
                        frame, target.classes, folder / f"roc_{encoder}.png", f"ROC: {encoder}"
                    ),
                )
            )
            made.append(
                (
                    f"Confusion matrix, {tag}",
                    plots.plot_confusion(
                        frame,
                        target.classes,
                        folder / f"confusion_{encoder}.png",
                        f"confusion: {encoder}",
                    ),
                )
            )
        elif target.target == "regression":
            made.append(
                (
                    f"Predicted vs true, {tag}",
                    plots.plot_scatter(
                        frame, folder / f"scatter_{encoder}.png", f"predicted vs true: {encoder}"
                    ),
                )
            )
        else:
            split = target.km_split(frame, frame)
            if split is not None:
                made.append(
                    (
                        f"Kaplan–Meier by median risk, {tag}",
                        plots.plot_kaplan_meier(
                            split, folder / f"km_{encoder}.png", f"Kaplan–Meier: {encoder}"
                        ),
                    )
                )
        if attention is not None:
            part = attention[attention["encoder"] == encoder]
            part = part[
                (part["fraction"] == part["fraction"].max()) & (part["seed"] == part["seed"].min())
            ]
            if len(part):
                labels = predictions.set_index("subject")
                group = labels["label"] if "label" in labels.columns else None
                part = part.assign(
                    group=part["subject"].map(group.groupby(level=0).first())
                    if group is not None
                    else "all"
                )
                made.append(
                    (
                        f"Attention over slices, {tag}",
                        plots.plot_attention(
                            part, folder / f"attention_{encoder}.png", f"slice attention: {encoder}"
                        ),
                    )
                )
    primary = target.metric_names()[0]
    curve = summary[summary["metric"] == primary]
    made.append(
        (
            "Label scarcity",
            plots.plot_label_scarcity(
                curve, primary, folder / "label_scarcity.png", f"{primary} vs labels"
            ),
        )
    )
    return made


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
        *_results_table(results),
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
