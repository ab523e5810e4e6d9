"""Does pretraining help? Frozen-feature probes of a pretrained teacher vs random init.

    python -m braindino.synth --out /tmp/cohort --seed 5 --tasks adni oasis ixi \\
        --subjects adni=500,oasis=250,ixi=250 --pool 60
    python pretrain/prepare.py --out /tmp/shards /tmp/cohort/pretrain_pool.csv \\
        preprocess.slices.size=64 "preprocess.spacing=[2.0,2.0,2.0]"
    python bench/pretrain_probe_bench.py --cohort /tmp/cohort --shards /tmp/shards \\
        --out /tmp/probe_run schedule.epochs=24

Trains ``configs/pretrain/tiny.yaml`` (+ overrides) on the shards, then prints one JSON line
(``braindino.ssl.compare``): probe scores (balanced accuracy, subject-grouped 5-fold CV; logistic
regression and cosine k-NN) of the pretrained EMA teacher and of the same architecture at random
initialisation under each --random-seeds, the gain over the best random init per task, the
teacher-target entropy range over the run (/ log K), the last monitors and the training time.
The defaults are protocol 5 of bench/RESULTS.md (what the CI evidence test checks). Datasets
whose (unlabelled) images were pretrained on go in --exclude.
"""

from __future__ import annotations

import argparse
import json

from braindino.config import load_config
from braindino.ssl.compare import compare_with_random_init
from braindino.ssl.probe import ProbeSet


def main() -> None:
    """Train, probe both encoders, print the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--tasks", default="brain_age,diagnosis")
    parser.add_argument("--slices", type=int, default=8, help="slices per volume in the probe")
    parser.add_argument("--pooling", default="cls+patch", help="cls or cls+patch")
    parser.add_argument("--blocks", type=int, default=4, help="last blocks whose tokens are used")
    parser.add_argument("--k", type=int, default=10, help="k-NN neighbours")
    parser.add_argument("--spacing", type=float, default=2.0, help="probe voxel size (mm)")
    parser.add_argument("--exclude", default="", help="dataset folders left out of the probes")
    parser.add_argument(
        "--random-seeds", default="12345,1", help="seeds of the random-init encoders"
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the tiny config")
    args = parser.parse_args()
    dotlist = [f"data.shards={args.shards}", f"run.out={args.out}", "run.progress=false"]
    cfg = load_config("pretrain/default", ["pretrain/tiny"], [*dotlist, *args.overrides])
    probes = ProbeSet(
        args.cohort,
        args.tasks.split(","),
        int(cfg.model.img_size),
        args.slices,
        preprocess={"spacing": [args.spacing] * 3},
        pooling=args.pooling,
        blocks=args.blocks,
        exclude_datasets=[d for d in args.exclude.split(",") if d],
    )
    seeds = [int(s) for s in args.random_seeds.split(",")]
    result = compare_with_random_init(cfg, probes, random_seeds=seeds, k=args.k)
    summary = {
        "overrides": args.overrides,
        "probe_samples": {task: len(data[1]) for task, data in probes.tasks.items()},
        **result.as_dict(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
