"""The analysis run folder: ``report.md`` (every number and picture of each encoder side by
side, and what is compared on equal terms), ``metrics.json``, ``plots/*.png``, ``config.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from braindino.analysis import figures
from braindino.analysis.options import AnalyzeOptions
from braindino.config import save_config
from braindino.io.atomic import atomic_write

EQUAL_TERMS = (
    "Every encoder reads the very same slices: made once with the main encoder's preprocessing "
    "(slice size {size} px, patch {patch} px). The dense probes use the same subjects, the same "
    "train/test split by subject, the same whole-patch shifts, training patches, probe "
    "(standardised, class-balanced L2 logistic regression, C = 0.1) and bootstrap resamples of "
    "the test subjects for every encoder; the position-only baseline (logistic regression on the "
    "one-hot patch cell) depends on none of the encoders. PCA colours are fitted per encoder on "
    "the same foreground patches; attention, retrieval and embeddings use the same slices and "
    "volumes."
)


def _ci(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def probe_section(probes: list[dict], labels: list[str], plots: Path) -> list[str]:
    """The dense-probe table (balanced accuracy, 95 % CI over test subjects) and its figure."""
    keys = list(dict.fromkeys((r["probe"], r["scale"]) for r in probes))
    head = "| probe | scale | grid | " + " | ".join(labels) + " | position (shifted) | "
    head += "position (unshifted) | test patches per class |"
    lines = ["## Dense linear probes", "", head, "|" + "---|" * (len(labels) + 6)]
    bars = []
    for probe, scale in keys:
        rows = {r["encoder"]: r for r in probes if (r["probe"], r["scale"]) == (probe, scale)}
        first = rows[labels[0]]
        cells = [_ci(rows[label]["balanced_accuracy"]) for label in labels]
        counts = ", ".join(f"{k} {v}" for k, v in first["test_class_counts"].items())
        grid = "x".join(str(g) for g in first["grid"])
        lines.append(
            f"| {probe} ({first['modality']}) | x{scale} | {grid} | "
            + " | ".join(cells)
            + f" | {_ci(first['position_baseline'])} | "
            f"{_ci(first['position_baseline_unshifted'])} | {counts} |"
        )
        series = [(label, rows[label]["balanced_accuracy"]) for label in labels]
        series += [
            ("position (shifted)", first["position_baseline"]),
            ("position (unshifted)", first["position_baseline_unshifted"]),
        ]
        bars += [{"probe": probe, "scale": scale, "series": s, **entry} for s, entry in series]
    figures.plot_probes(bars, plots / "dense_probes.png")
    first = probes[0]
    lines += ["", *_paired_lines(probes, labels[0]), "![dense probes](plots/dense_probes.png)"]
    lines += [
        "",
        f"Balanced accuracy over the test subjects' patches ({len(first['test_subjects'])} test, "
        f"{len(first['train_subjects'])} training subjects), 95 % bootstrap interval over test "
        "subjects. Labels per patch: tissue = the majority tissue of its pixels (background, "
        "CSF, GM, WM from the synthetic cohort's tissue truth); tumour = the most frequent "
        "sub-region once tumour covers a quarter of the patch, brain patches only. Slices are "
        f"padded by {first['shift_patches']} x scale patches per side and placed at random "
        "whole-patch offsets, so the grid position no longer tells the label: *position "
        "(shifted)* is what position alone gives on the probe's slices, *position (unshifted)* "
        "what it would give without the shifts. Scale x2: slices enlarged twice before encoding, "
        "so a patch covers half the anatomy.",
        "",
    ]
    return lines


def _paired_lines(probes: list[dict], main: str) -> list[str]:
    """The main encoder minus each baseline on the same test patches (paired bootstrap)."""
    rows = [r for r in probes if "encoder_minus_this" in r]
    if not rows:
        return []
    lines = [
        f"Paired difference `{main}` − baseline in balanced accuracy on the same test patches "
        "(95 % paired bootstrap interval over test subjects):",
        "",
        "| probe | scale | baseline | difference |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['probe']} | x{r['scale']} | {r['encoder']} | {_ci(r['encoder_minus_this'])} |"
        )
    return [*lines, ""]


def _title(volume, z: int) -> str:
    return f"{volume.subject} slice {z}"


def map_sections(maps: dict, labels: list[str], plots: Path) -> list[str]:
    """PCA, attention, retrieval and embedding figures (those that were run)."""
    lines: list[str] = []
    volumes, shown, images = maps["volumes"], maps["shown"], maps["shown_images"]
    titles = [_title(volumes[i], z) for i, z in shown]
    if maps["pca"]:
        figures.plot_pca(images, maps["pca"], titles, plots / "pca.png")
        lines += [
            "## PCA maps",
            "",
            "First three principal components of the patch tokens "
            "(fitted per encoder on the foreground patches of these slices) as RGB.",
            "",
            "![pca](plots/pca.png)",
            "",
        ]
    if maps["attention"]:
        lines += [
            "## Attention maps",
            "",
            "Last block, CLS -> patch attention per head and the mean over heads.",
            "",
        ]
        for k, title in enumerate(titles):
            name = f"attention_{k}.png"
            per = {label: maps["attention"][label][k] for label in labels}
            figures.plot_attention(images[k], per, title, plots / name)
            lines += [f"![attention {title}](plots/{name})", ""]
    if maps.get("hits"):
        stacks, hits = maps["stacks"], maps["hits"]

        def neighbours(label: str, k: int) -> list[tuple]:
            return [
                (stacks[v][z], f"{_title(volumes[v], z)}\ncos {s:.4f}")
                for v, z, s in hits[label][k]
            ]

        panels = {
            label: [(images[k], titles[k], neighbours(label, k)) for k in range(len(shown))]
            for label in labels
        }
        figures.plot_retrieval(panels, plots / "retrieval.png")
        lines += [
            "## Slice retrieval",
            "",
            "Nearest slices of other subjects by cosine similarity of CLS tokens.",
            "",
            "![retrieval](plots/retrieval.png)",
            "",
        ]
    if maps.get("embedding"):
        lines += ["## Embedding maps", "", "Per-volume features (mean CLS token over slices)."]
        columns = list(dict.fromkeys(c for v in volumes for c in v.info))
        coloured = [c for c in columns if len({str(v.info.get(c)) for v in volumes}) > 1]
        for column in coloured or ["subject"]:
            values = [v.info.get(column, v.subject) for v in volumes]
            name = f"embedding_{column}.png"
            figures.plot_embedding(maps["embedding"], values, column, plots / name)
            lines += ["", f"![embedding by {column}](plots/{name})"]
        lines.append("")
    return lines


def write_report(out: Path, options: AnalyzeOptions, encoders: dict, probes: list, maps) -> dict:
    """Write the run folder; returns the metrics (also ``metrics.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    labels = list(encoders)
    main = encoders["encoder"]
    size = int(maps["shown_images"].shape[-1]) if maps else None
    lines = ["# Representation analyses", ""]
    lines += [
        f"- `{label}`: {encoder.spec} ({encoder.arch})" for label, encoder in encoders.items()
    ]
    lines += ["", EQUAL_TERMS.format(size=size or "the encoder's", patch=main.patch_size[0]), ""]
    if probes:
        lines += probe_section(probes, labels, plots)
    if maps:
        lines += map_sections(maps, labels, plots)
    metrics: dict[str, Any] = {
        "encoders": {label: {"spec": e.spec, "arch": e.arch} for label, e in encoders.items()},
        "dense_probes": probes,
    }
    if maps and maps.get("hits"):
        metrics["retrieval"] = {
            label: [
                [{"subject": maps["volumes"][v].subject, "z": z, "cosine": s} for v, z, s in row]
                for row in rows
            ]
            for label, rows in maps["hits"].items()
        }
    if maps:
        metrics["volumes"] = [{"subject": v.subject, **v.info} for v in maps["volumes"]]
    save_config(OmegaConf.create({"run": options.as_dict()}), out / "config.yaml")
    text = json.dumps(metrics, indent=1, sort_keys=True, default=_jsonable) + "\n"
    atomic_write(out / "metrics.json", lambda handle: handle.write(text), mode="w")
    atomic_write(out / "report.md", lambda handle: handle.write("\n".join(lines)), mode="w")
    return metrics


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
