"""Does every downstream head learn its task on the synthetic cohort, through the scripts' protocol?

    python bench/heads_bench.py --cohort /tmp/c600 --encoder demo_out/encoder --seeds 0,1,2

Runs ``run_downstream`` (what ``downstream/*.py`` call) for one task per head: mean-pool MLP and
slice attention (classification), regression, Cox, k-NN, with the encoder and its random-init twin
(``--compare random``) on the same splits. Prints one Markdown row per task x head x encoder: the
primary test metric as mean over seeds, the lowest bootstrap-interval bound over seeds, and the
chance level it must beat (0.5 AUC or C-index; for regression the test MAE of predicting the
test targets' own mean, computed here from the saved predictions).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

# (script, task, head)
RUNS = (
    ("classify", "brats_sequence", "mean_mlp"),
    ("classify", "brats_sequence", "attention"),
    ("classify", "adni", "attention"),
    ("regress", "brain_age", "regression"),
    ("regress", "atlas_stroke", "regression"),
    ("survival", "upenn_cox", "cox"),
    ("knn", "knn", "knn"),
)


def mean_predictor_mae(out: Path) -> float:
    """Test MAE of always predicting the test targets' own mean: a chance level slightly stricter
    than predicting the training mean."""
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    target = predictions.drop_duplicates("subject")["target"].to_numpy(float)
    return float(np.mean(np.abs(target - target.mean())))


def summarise(out: Path, task: str, head: str) -> list[str]:
    """Markdown rows for one run folder."""
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    name = metrics["primary_metric"]
    rows = []
    for encoder in metrics["encoders"]:
        results = [r for r in metrics["results"] if r["encoder"] == encoder]
        values = [r["metrics"][name]["value"] for r in results]
        lows = [r["metrics"][name]["low"] for r in results]
        highs = [r["metrics"][name]["high"] for r in results]
        if name == "mae":
            chance = f"{mean_predictor_mae(out):.2f} (test-mean MAE)"
            bound = f"worst high {max(highs):.2f}"
        else:
            chance = "0.5" if name in ("macro_auc", "c_index") else "majority"
            bound = f"worst low {min(lows):.3f}"
        rows.append(
            f"| {task} | {head} | {encoder} | {results[0]['n_test']} | {name} "
            f"{np.mean(values):.3f} | {bound} | {chance} |"
        )
    return rows


def main() -> None:
    """Run every head once per seed and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True, help="synthetic cohort folder")
    parser.add_argument("--encoder", default="demo_out/encoder")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--feature", default="cls", help="cls | patch_mean | cls+patch_mean")
    parser.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--only", default=None, help="comma list of tasks to run")
    args = parser.parse_args()

    from braindino.downstream import RunOptions, run_downstream

    root = Path(args.out or tempfile.mkdtemp(prefix="heads_bench_"))
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(args.only.split(",")) if args.only else None
    lines = [
        "| task | head | encoder | n test | primary (mean over seeds) | bound | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for script, task, head in RUNS:
        if wanted and task not in wanted:
            continue
        out = root / f"{task}-{head}"
        run_downstream(
            RunOptions(
                task=task,
                script=script,
                encoder=args.encoder,
                out=str(out),
                label_fractions=[1.0],
                seeds=seeds,
                compare=["random"],
                head=None if head == "knn" else head,
                feature=args.feature,
                bootstrap=500,
                cohort=args.cohort,
                cache=str(root / "features"),
                progress=False,
            )
        )
        lines += summarise(out, task, head)
        print(lines[-2], lines[-1], sep="\n", flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
