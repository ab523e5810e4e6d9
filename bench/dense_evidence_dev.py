"""Development runs for the dense tissue evidence claim (``bench/RESULTS.md``, "Protocol 7").

Trains ``configs/pretrain/tiny.yaml`` (unchanged, 240 iterations) on the 60-subject healthy pool
of a synthetic cohort of one seed (``braindino.demo.pool_shards``, as protocol 7 of
``tests/evidence`` does; protocol 5's cohort also holds its probe subjects), then runs
``braindino.analysis.dense_probe`` on synthetic IXI-like tissue subjects of the same seed for
the pretrained teacher and two random initialisations, under several probe settings, and prints
one JSON line per setting (balanced accuracy of each encoder, gain over the best random one,
the paired interval against it, the position-only baseline).

    OMP_NUM_THREADS=1 python bench/dense_evidence_dev.py --seed 6 --out /tmp/dense_dev
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from braindino.analysis import paired_probe_difference
from braindino.analysis.dense_scorer import DenseScorer, tissue_cases
from braindino.config import load_config
from braindino.demo import pool_shards
from braindino.ssl.compare import pretrain_and_compare, random_init_backbone

RANDOM_SEEDS = (12345, 1)
SETTINGS = {  # name -> dense_probe keyword arguments
    "half_train": {"train_fraction": 0.5},
    "scarce_train": {"train_fraction": 0.1},
    "centre_rule": {"train_fraction": 0.5, "rule": "centre"},
    "strong_l2": {"train_fraction": 0.5, "c": 0.01},
}


def main() -> None:
    """Train once, then print every setting's dense probe comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=6, help="cohort and probe-subject seed")
    parser.add_argument("--subjects", type=int, default=60, help="tissue probe subjects")
    parser.add_argument("--slices", type=int, default=6, help="slices per probe subject")
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    start = time.perf_counter()
    shards = pool_shards(args.out, args.seed)
    cfg = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        [f"data.shards={shards}", f"run.out={args.out / 'run'}", "run.progress=false"],
    )
    cases = tissue_cases(random_init_backbone(cfg, 0), args.subjects, args.seed, args.slices)
    scorers = {name: DenseScorer(cases, seed=args.seed, **SETTINGS[name]) for name in args.settings}

    def score(backbone, name):
        return {setting: scorer(backbone, name)["dense"] for setting, scorer in scorers.items()}

    result = pretrain_and_compare(cfg, score, RANDOM_SEEDS)
    print(f"trained in {result.train_seconds:.0f} s", flush=True)
    for name, scorer in scorers.items():
        pretrained = scorer.results["pretrained"]
        paired = paired_probe_difference(pretrained, scorer.best_random(), seed=args.seed)
        row = {
            "setting": name,
            "seed": args.seed,
            **{label: round(r.balanced_accuracy[0], 3) for label, r in scorer.results.items()},
            "gain_over_best_random": round(paired[0], 3),
            "paired_95": [round(paired[1], 3), round(paired[2], 3)],
            "position": round(pretrained.position_baseline[0], 3),
            "entropy_range": result.as_dict()["entropy_range"],
            "seconds": round(time.perf_counter() - start),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
