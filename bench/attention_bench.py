"""What does a slice-attention head look at? Attention over slices against what each slice shows.

    python downstream/classify.py --task adni --encoder ENC --out RUN --head attention
    python bench/attention_bench.py RUN ENC [--cohort COHORT]

For every test subject of the run (main encoder, full labels, first seed or ``--seed``) the
slices are cut again exactly as the head saw them (``braindino.features.encoder_slices``: the
encoder's preprocessing with the run's ``preprocess`` overrides, the run's ``task.slices``
resampled along z; both read from the run's ``config.yaml``), and per slice we measure

* ``brain``: the fraction of the slice inside the head (voxels above the background level);
* ``extent_change``: |d brain / d slice| — large where the brain's outline grows or shrinks;
* ``edges``: mean intensity-gradient magnitude inside the slice (edges, contrast);
* ``position``: 0 at the first slice, 1 at the last.

and report the mean over subjects of the Spearman correlation of the attention weight with each,
the attention mass in the first and last 10 % of the slices (0.2 if uniform), and where the
attention peaks. One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from braindino.features import encoder_slices
from braindino.models import load_encoder
from braindino.tasks import image_columns, load_manifest, load_task


def slice_measures(images: np.ndarray) -> pd.DataFrame:
    """Per-slice brain fraction, its change along z, edge energy and position (``[S, H, W]``)."""
    background = images.min()
    inside = images > background + 0.05 * (images.max() - background)
    brain = inside.mean(axis=(1, 2))
    gy, gx = np.gradient(images, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    edges = (magnitude * inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1)
    count = len(images)
    return pd.DataFrame(
        {
            "brain": brain,
            "extent_change": np.abs(np.gradient(brain)),
            "edges": edges,
            "position": np.linspace(0, 1, count) if count > 1 else [0.5],
        }
    )


def main() -> None:
    """Measure the run's attention against the slices' content; print one JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", help="a classify/regress run folder with attention.csv")
    parser.add_argument("encoder", help="the run's encoder (export folder)")
    parser.add_argument("--cohort", default=None, help="synthetic cohort (default: the cached)")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default: first)")
    args = parser.parse_args()
    run = Path(args.run)
    metrics = json.loads((run / "metrics.json").read_text())
    config = OmegaConf.load(run / "config.yaml")  # the task as run (overrides applied)
    task = config.task if "task" in config else load_task(metrics["task"])
    preprocess = OmegaConf.to_container(config.run.preprocess) if "run" in config else None
    attention = pd.read_csv(run / "attention.csv", dtype={"subject": str})
    attention = attention[attention["encoder"] == "encoder"]
    attention = attention[attention["fraction"] == attention["fraction"].max()]
    seed = attention["seed"].min() if args.seed is None else args.seed
    attention = attention[attention["seed"] == seed]
    if attention.empty:
        raise SystemExit(f"no attention weights for seed {seed} in {run / 'attention.csv'}")
    manifest = load_manifest(task, cohort=args.cohort).set_index("subject")
    column = image_columns(manifest.reset_index())[0]
    encoder = load_encoder(args.encoder)
    slices = "all" if str(task.slices) == "all" else int(task.slices)
    correlations, ends, peaks = [], [], []
    for subject, weights in attention.groupby("subject"):
        images, _, _ = encoder_slices(
            encoder, manifest.loc[subject, column], preprocess or None, slices
        )
        measures = slice_measures(images)
        w = weights.sort_values("slice")["weight"].to_numpy()
        correlations.append({k: spearmanr(w, measures[k]).statistic for k in measures})
        tenth = max(1, len(w) // 10)
        ends.append(float(w[:tenth].sum() + w[-tenth:].sum()))
        peaks.append(measures.iloc[int(np.argmax(w))].to_dict())
    result = {
        "run": str(run),
        "seed": int(seed),
        "subjects": len(ends),
        "spearman_with_attention": pd.DataFrame(correlations).mean().round(3).to_dict(),
        "attention_in_end_tenths": round(float(np.mean(ends)), 3),
        "uniform_end_tenths": 0.2,
        "at_peak_attention": pd.DataFrame(peaks).mean().round(3).to_dict(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
