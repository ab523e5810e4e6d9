"""What every run folder's report shares: JSON-safe metrics, means with bootstrap intervals,
interval formatting, the mean and sd over seeds, and the two files every run writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from braindino.io.atomic import atomic_write
from braindino.metrics import bootstrap_ci


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def mean_ci(values: np.ndarray, n: int, seed: int) -> dict[str, float]:
    """Mean of per-subject values with its 95 % percentile bootstrap interval (``n``
    resamples) over subjects."""
    value, low, high = bootstrap_ci(lambda v: float(np.mean(v)), np.asarray(values), n=n, seed=seed)
    return {"value": value, "low": low, "high": high}


def format_ci(stats: dict[str, float]) -> str:
    """``0.812 [0.700, 0.901]``; the value alone without an interval; ``n/a`` when undefined."""
    value, low, high = stats["value"], stats["low"], stats["high"]
    if value is None or not math.isfinite(value):
        return "n/a"
    if low is None or not math.isfinite(low):
        return f"{value:.3g}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def summarise(results: list[dict], keys: list[str]) -> pd.DataFrame:
    """Mean and sd over seeds of every metric, per combination of the result ``keys``."""
    rows = [
        {**{k: r[k] for k in keys}, "metric": name, "value": stats["value"]}
        for r in results
        for name, stats in r["metrics"].items()
    ]
    grouped = pd.DataFrame(rows).groupby([*keys, "metric"], sort=False)["value"]
    return grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()


def summary_table(summary: pd.DataFrame, keys: list[str]) -> list[str]:
    """Markdown rows of :func:`summarise`'s frame (``fraction`` shown as *labels*)."""
    names = ["labels" if k == "fraction" else k for k in keys]
    lines = [
        "| " + " | ".join(names) + " | metric | mean | sd | seeds |",
        "|" + "---|" * (len(keys) + 4),
    ]
    for row in summary.to_dict("records"):
        cells = [f"{row[k]:g}" if k == "fraction" else str(row[k]) for k in keys]
        sd = "" if not math.isfinite(row["std"]) else f"{row['std']:.3f}"
        mean = "n/a" if not math.isfinite(row["mean"]) else f"{row['mean']:.3f}"
        lines.append(
            "| " + " | ".join(cells) + f" | {row['metric']} | {mean} | {sd} | {row['n_seeds']} |"
        )
    return lines


def results_table(results: list[dict], keys: list[str]) -> list[str]:
    """Markdown rows of every trained head: the result ``keys`` (``fraction`` shown as *labels*,
    ``best_epoch`` read from the history), then every metric with its interval."""
    names = list(dict.fromkeys(n for r in results for n in r["metrics"]))
    heads = ["labels" if k == "fraction" else k.replace("_", " ") for k in keys]
    lines = [
        "| " + " | ".join(heads) + " | " + " | ".join(names) + " |",
        "|" + "---|" * (len(keys) + len(names)),
    ]
    for r in results:
        shown = {**r, "fraction": f"{r['fraction']:g}"}
        if "best_epoch" in keys:
            shown["best_epoch"] = r["history"]["best_epoch"]
        cells = [format_ci(r["metrics"][n]) if n in r["metrics"] else "" for n in names]
        lines.append(
            "| " + " | ".join(str(shown[k]) for k in keys) + " | " + " | ".join(cells) + " |"
        )
    return lines


def showcase(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the largest label fraction and first seed: the run a report draws."""
    rows = rows[rows["fraction"] == rows["fraction"].max()]
    return rows[rows["seed"] == rows["seed"].min()]


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    """Subjects per split (``train``, ``val``, ``test``) of a split manifest."""
    splits = manifest["split"].to_numpy()
    return {
        name: int(manifest.loc[splits == name, "subject"].nunique())
        for name in ("train", "val", "test")
    }


def run_summary(
    task: Any, out: Path, manifest: pd.DataFrame, results: list[dict], data: dict[str, Any]
) -> dict[str, Any]:
    """The head of every ``metrics.json``: task, run folder, encoders, label fractions, seeds,
    subjects per split and the data summary (``data``)."""
    return {
        "task": str(task.name),
        "out": str(out),
        "description": str(task.description),
        "encoders": list(dict.fromkeys(r["encoder"] for r in results)),
        "label_fractions": sorted({r["fraction"] for r in results}),
        "seeds": sorted({r["seed"] for r in results}),
        "subjects": split_counts(manifest),
        "data": data,
    }


def encoders_line(results: list[dict]) -> str:
    """``- encoders: encoder (`spec`), random_init (`random`)`` for the report's header."""
    first = {r["encoder"]: r for r in results}.values()
    return "- encoders: " + ", ".join(f"{r['encoder']} (`{r['encoder_spec']}`)" for r in first)


def adapter_summary(options: Any, results: list[dict]) -> dict[str, Any]:
    """``metrics.json``'s ``adapter`` (``options``: a run's ``ProtocolOptions``): ``none``, or
    the LoRA settings and the trainable parameter counts (adapter, head, their sum, the
    encoder's own, adapter %) per encoder, or per encoder and head when a run trains several."""
    if options.adapter == "none":
        return {"kind": "none"}
    several = len({r["head"] for r in results}) > 1  # segment: decoder and linear
    counts = {
        r["encoder"] + (f" {r['head']}" if several else ""): r["parameters"]
        for r in results
        if "parameters" in r
    }
    return {
        "kind": options.adapter,
        "rank": options.lora_rank,
        "alpha": options.lora_alpha,
        "dropout": options.lora_dropout,
        "targets": list(options.lora_targets),
        "lr": options.adapter_lr,
        "parameters": counts,
    }


def adapter_lines(adapter: dict[str, Any]) -> list[str]:
    """The report's lines on the encoder's LoRA adapters and trainable parameters (none
    without adapters)."""
    if adapter["kind"] == "none":
        return []
    lines = [
        f"- encoder: LoRA adapters (peft), rank {adapter['rank']}, alpha {adapter['alpha']:g}, "
        f"dropout {adapter['dropout']:g}, on {', '.join(adapter['targets'])} of every block, "
        f"lr {adapter['lr']:g}, trained with the head and selected with it on val",
    ]
    for name, c in adapter["parameters"].items():
        lines.append(
            f"- trainable parameters ({name}): adapters {c['adapter']:,} "
            f"({c['adapter_percent']:.2f} % of the encoder's {c['encoder']:,}), head "
            f"{c['head']:,}, total {c['trainable']:,}"
        )
    return lines


def write_outputs(out: Path, metrics: dict[str, Any], report: list[str]) -> dict[str, Any]:
    """Write ``metrics.json`` (JSON-safe) and ``report.md``; returns the metrics written."""
    metrics = clean(metrics)
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write(out / "metrics.json", lambda handle: handle.write(text), mode="w")
    atomic_write(out / "report.md", lambda handle: handle.write("\n".join(report)), mode="w")
    return metrics


def picture_lines(pictures) -> list[str]:
    """Markdown for each ``(caption, relative path)`` picture, under its own ``###`` heading."""
    lines: list[str] = []
    for caption, picture in pictures:
        lines += [f"### {caption}", "", f"![{caption}]({picture})", ""]
    return lines
