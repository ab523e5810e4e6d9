"""The segmentation run folder: ``cases.csv`` (per case and region: Dice, HD95, volumes, the
prediction file), ``metrics.json`` (per trained head: mean Dice / HD95 per region with 95 %
bootstrap intervals over test cases; mean and sd over seeds), overlay figures of the best, median
and worst test case, and ``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from braindino.downstream.options import SegmentOptions
from braindino.downstream.plots import plot_overlay
from braindino.downstream.report import data_lines, data_summary
from braindino.downstream.run_folder import (
    adapter_lines,
    adapter_summary,
    encoders_line,
    mean_ci,
    picture_lines,
    results_table,
    run_summary,
    showcase,
    split_counts,
    summarise,
    summary_table,
    write_outputs,
)
from braindino.downstream.segmentation.cases import read_mask
from braindino.downstream.segmentation.regions import LabelScheme
from braindino.io import read_volume
from braindino.tasks import image_columns
from braindino.tasks.registry import as_list

RUN_KEYS = ["encoder", "head", "fraction", "seed"]
METRICS = ("dice", "hd95")


def run_metrics(cases: pd.DataFrame, n: int, seed: int) -> dict[str, dict[str, float]]:
    """``{dice_<region>, hd95_<region>, dice_mean}`` of one trained head's test cases."""
    out = {}
    for region, part in cases.groupby("region", sort=False):
        for metric in METRICS:
            out[f"{metric}_{region}"] = mean_ci(part[metric].to_numpy(), n, seed)
    per_case = cases.groupby("subject", sort=False)["dice"].mean().to_numpy()
    out["dice_mean"] = mean_ci(per_case, n, seed)
    return out


def _encoder_mode(options: SegmentOptions) -> str:
    if options.adapter != "none":
        return f"LoRA-adapted at lr {options.adapter_lr:g}"
    return f"fine-tuned at lr {options.encoder_lr:g}" if options.unfreeze_encoder else "frozen"


def _display_column(task: DictConfig, manifest: pd.DataFrame) -> str:
    """The image column shown in overlays: FLAIR when the task has it, else the first."""
    roles = [r for r in as_list(task.data.inputs) if r != str(task.segmentation.mask_input)]
    columns = image_columns(manifest)
    return columns[roles.index("FLAIR")] if "FLAIR" in roles else columns[0]


def make_overlays(
    out: Path,
    task: DictConfig,
    manifest: pd.DataFrame,
    scheme: LabelScheme,
    cases: pd.DataFrame,
) -> list[tuple[str, Path]]:
    """Best, median and worst test case (mean Dice over regions) of each encoder x head at the
    largest label fraction and first seed, drawn from the written prediction files."""
    made: list[tuple[str, Path]] = []
    if cases.empty or not cases["prediction"].astype(bool).all():
        return made
    rows = manifest.set_index("subject")
    column = _display_column(task, manifest)
    for (encoder, head), part in cases.groupby(["encoder", "head"], sort=False):
        part = showcase(part)
        ranking = part.groupby("subject", sort=False)["dice"].mean().sort_values()
        picks = {
            "worst": ranking.index[0],
            "median": ranking.index[len(ranking) // 2],
            "best": ranking.index[-1],
        }
        for name, subject in picks.items():
            image = read_volume(rows.loc[subject, column])
            truth = np.rint(read_mask(rows.loc[subject, "mask"], image).data).astype(int)
            prediction_file = part.loc[part["subject"] == subject, "prediction"].iloc[0]
            predicted = np.rint(read_mask(out / prediction_file, image).data).astype(int)
            caption = f"{name} case {subject} ({encoder}, {head}): mean Dice {ranking[subject]:.3f}"
            path = out / "overlays" / f"{encoder}_{head}_{name}.png"
            drawn = plot_overlay(
                image.data, truth, predicted, scheme.values, path, caption, scheme.names
            )
            made.append((caption, drawn))
    return made


def write_report(
    out: Path,
    task: DictConfig,
    options: SegmentOptions,
    manifest: pd.DataFrame,
    scheme: LabelScheme,
    results: list[dict],
    cases: pd.DataFrame,
    skipped: dict[str, str],
) -> dict[str, Any]:
    """Write every output of a run into ``out``; returns what ``metrics.json`` holds."""
    out = Path(out)
    cases.to_csv(out / "cases.csv", index=False)
    for result in results:
        mine = cases
        for key in RUN_KEYS:
            mine = mine[mine[key] == result[key]]
        result["metrics"] = run_metrics(mine, options.bootstrap, int(result["seed"]))
    summary = summarise(results, RUN_KEYS[:3])
    figures = make_overlays(out, task, manifest, scheme, cases)
    counts = split_counts(manifest)
    data = data_summary(manifest, out)
    metrics = {
        **run_summary(task, out, manifest, results, data),
        "target": "segmentation",
        "primary_metric": "dice_mean",
        "labels": dict(zip(scheme.values, scheme.names)),
        "regions": {k: list(v) for k, v in scheme.regions.items()},
        "heads": list(dict.fromkeys(r["head"] for r in results)),
        "skipped_encoders": dict(skipped),
        "unfreeze_encoder": options.unfreeze_encoder,
        "adapter": adapter_summary(options, results),
        "confidence": "95 % percentile bootstrap over test cases",
        "bootstrap_resamples": options.bootstrap,
        "empty_masks": "BraTS convention: both empty -> Dice 1, HD95 0; one empty -> Dice 0, "
        "HD95 373.13 mm",
        "results": results,
        "summary": summary.to_dict("records"),
        "files": {
            "cases": "cases.csv",
            "splits": "splits.csv",
            "excluded": "excluded.csv",
            "config": "config.yaml",
            "predictions": "predictions/" if options.save_predictions else None,
            "overlays": [str(p.relative_to(out)) for _, p in figures],
        },
    }
    lines = [
        f"# {task.name}: segmentation over a frozen encoder",
        "",
        str(task.description),
        "",
        f"- cases: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        "(splits.csv; the kept state is the best validation Dice, test evaluated once per head)",
        *data_lines(data),
        encoders_line(results) + f"; encoder {_encoder_mode(options)}",
        *adapter_lines(metrics["adapter"]),
        *[f"- skipped {name}: {why}" for name, why in skipped.items()],
        "- heads: decoder = blocks "
        "concatenated -> x16 transposed-conv decoder; linear = norm + 1x1 conv on the last block",
        "- scores in each case's original image space (predictions mapped back from the slices); "
        "HD95 in mm; empty masks scored as BraTS does",
        f"- 95 % bootstrap intervals over test cases ({options.bootstrap} resamples)",
        "",
        "## Summary (mean and sd over seeds)",
        "",
        *summary_table(summary, RUN_KEYS[:3]),
        "",
        "## Every trained head (test split)",
        "",
        *results_table(results, [*RUN_KEYS, "n_train", "best_epoch"]),
    ]
    lines += ["", "## Best, median and worst test cases", ""]
    if not figures:
        lines += ["(no overlays: predictions were not saved)", ""]
    lines += picture_lines((c, path.relative_to(out).as_posix()) for c, path in figures)
    lines += ["Files: metrics.json, cases.csv, splits.csv, config.yaml, predictions/", ""]
    return write_outputs(out, metrics, lines)
