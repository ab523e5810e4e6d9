"""The segmentation run folder: ``cases.csv`` (per case and region: Dice, HD95, volumes, the
prediction file), ``metrics.json`` (per trained head: mean Dice / HD95 per region with 95 %
bootstrap intervals over test cases; mean and sd over seeds), overlay figures of the best, median
and worst test case, and ``report.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from braindino.downstream.report import _clean, data_lines, data_summary
from braindino.downstream.samples import image_columns
from braindino.io import read_volume
from braindino.metrics import bootstrap_ci
from braindino.segment.cases import read_mask
from braindino.segment.options import SegmentOptions
from braindino.segment.plots import plot_overlay
from braindino.segment.regions import LabelScheme
from braindino.tasks import SPLITS
from braindino.tasks.registry import as_list

RUN_KEYS = ["encoder", "head", "fraction", "seed"]
METRICS = ("dice", "hd95")


def mean_ci(values: np.ndarray, n: int, seed: int) -> dict[str, float]:
    """Mean of per-case values with its 95 % percentile bootstrap interval over cases."""
    value, low, high = bootstrap_ci(lambda v: float(np.mean(v)), np.asarray(values), n=n, seed=seed)
    return {"value": value, "low": low, "high": high}


def run_metrics(cases: pd.DataFrame, n: int, seed: int) -> dict[str, dict[str, float]]:
    """``{dice_<region>, hd95_<region>, dice_mean}`` of one trained head's test cases."""
    out = {}
    for region, part in cases.groupby("region", sort=False):
        for metric in METRICS:
            out[f"{metric}_{region}"] = mean_ci(part[metric].to_numpy(), n, seed)
    per_case = cases.groupby("subject", sort=False)["dice"].mean().to_numpy()
    out["dice_mean"] = mean_ci(per_case, n, seed)
    return out


def summarise(results: list[dict]) -> pd.DataFrame:
    """Mean and sd over seeds of every metric, per encoder, head and label fraction."""
    rows = [
        {**{k: r[k] for k in RUN_KEYS[:3]}, "metric": name, "value": stats["value"]}
        for r in results
        for name, stats in r["metrics"].items()
    ]
    grouped = pd.DataFrame(rows).groupby([*RUN_KEYS[:3], "metric"], sort=False)["value"]
    return grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()


def _encoder_mode(options: SegmentOptions) -> str:
    return f"fine-tuned at lr {options.encoder_lr:g}" if options.unfreeze_encoder else "frozen"


def _fmt(stats: dict[str, float]) -> str:
    return f"{stats['value']:.3f} [{stats['low']:.3f}, {stats['high']:.3f}]"


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
        part = part[part["fraction"] == part["fraction"].max()]
        part = part[part["seed"] == part["seed"].min()]
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
            made.append(
                (
                    caption,
                    plot_overlay(
                        image.data, truth, predicted, scheme.values, path, caption, scheme.names
                    ),
                )
            )
    return made


def write_report(
    out: Path,
    task: DictConfig,
    options: SegmentOptions,
    manifest: pd.DataFrame,
    scheme: LabelScheme,
    results: list[dict],
    cases: pd.DataFrame,
) -> dict[str, Any]:
    """Write every output of a run into ``out``; returns what ``metrics.json`` holds."""
    out = Path(out)
    cases.to_csv(out / "cases.csv", index=False)
    for result in results:
        mine = cases
        for key in RUN_KEYS:
            mine = mine[mine[key] == result[key]]
        result["metrics"] = run_metrics(mine, options.bootstrap, int(result["seed"]))
    summary = summarise(results)
    figures = make_overlays(out, task, manifest, scheme, cases)
    counts = {
        name: int(manifest.loc[manifest["split"] == name, "subject"].nunique()) for name in SPLITS
    }
    data = data_summary(manifest, out)
    metrics = _clean(
        {
            "task": str(task.name),
            "out": str(out),
            "description": str(task.description),
            "target": "segmentation",
            "primary_metric": "dice_mean",
            "labels": dict(zip(scheme.values, scheme.names)),
            "regions": {k: list(v) for k, v in scheme.regions.items()},
            "encoders": list(dict.fromkeys(r["encoder"] for r in results)),
            "heads": list(dict.fromkeys(r["head"] for r in results)),
            "label_fractions": sorted({r["fraction"] for r in results}),
            "seeds": sorted({r["seed"] for r in results}),
            "subjects": counts,
            "data": data,
            "unfreeze_encoder": options.unfreeze_encoder,
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
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    names = list(results[0]["metrics"]) if results else []
    lines = [
        f"# {task.name}: segmentation over a frozen encoder",
        "",
        str(task.description),
        "",
        f"- cases: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        "(splits.csv; the kept state is the best validation Dice, test evaluated once per head)",
        *data_lines(data),
        "- encoders: "
        + ", ".join(
            f"{r['encoder']} (`{r['encoder_spec']}`)"
            for r in {r["encoder"]: r for r in results}.values()
        )
        + f"; encoder {_encoder_mode(options)}",
        "- heads: decoder = blocks "
        "concatenated -> x16 transposed-conv decoder; linear = norm + 1x1 conv on the last block",
        "- scores in each case's original image space (predictions mapped back from the slices); "
        "HD95 in mm; empty masks scored as BraTS does",
        f"- 95 % bootstrap intervals over test cases ({options.bootstrap} resamples)",
        "",
        "## Summary (mean and sd over seeds)",
        "",
        "| encoder | head | labels | metric | mean | sd | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        sd = "" if not math.isfinite(row.std) else f"{row.std:.3f}"
        lines.append(
            f"| {row.encoder} | {row.head} | {row.fraction:g} | {row.metric} | {row.mean:.3f} "
            f"| {sd} | {row.n_seeds} |"
        )
    lines += [
        "",
        "## Every trained head (test split)",
        "",
        "| encoder | head | labels | seed | n train | best epoch | " + " | ".join(names) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(names),
    ]
    for r in results:
        lines.append(
            f"| {r['encoder']} | {r['head']} | {r['fraction']:g} | {r['seed']} | {r['n_train']} "
            f"| {r['history']['best_epoch']} | "
            + " | ".join(_fmt(r["metrics"][n]) for n in names)
            + " |"
        )
    lines += ["", "## Best, median and worst test cases", ""]
    if not figures:
        lines += ["(no overlays: predictions were not saved)", ""]
    for caption, path in figures:
        lines += [f"### {caption}", "", f"![{caption}]({path.relative_to(out).as_posix()})", ""]
    lines += ["Files: metrics.json, cases.csv, splits.csv, config.yaml, predictions/", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return metrics
