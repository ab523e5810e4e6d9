"""Does pretraining help? Frozen k-NN probes of a pretrained teacher vs random init.

    python -m braindino.synth --out /tmp/cohort --subjects 200 --seed 1
    python pretrain/prepare.py --out /tmp/shards /tmp/cohort/pretrain_pool.csv \\
        preprocess.slices.size=64 "preprocess.spacing=[2.0,2.0,2.0]"
    python bench/pretrain_probe_bench.py --cohort /tmp/cohort --shards /tmp/shards \\
        --out /tmp/probe_run schedule.epochs=60

Trains ``configs/pretrain/tiny.yaml`` (+ overrides) on the shards, then prints one JSON line:
probe scores (balanced accuracy, subject-grouped 5-fold CV) for the random-init and the
pretrained EMA teacher, the last values of the collapse monitors, and the training time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from braindino.config import load_config
from braindino.ssl.build import build_meta_arch
from braindino.ssl.probe import ProbeSet
from braindino.ssl.trainer import Trainer


def _last_scalars(run: str, tags: list[str]) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(f"{run}/tb")
    events.Reload()
    return {tag: round(events.Scalars(tag)[-1].value, 3) for tag in tags}


def main() -> None:
    """Train, probe both encoders, print the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--tasks", default="brats_sequence,brain_age,diagnosis")
    parser.add_argument("--slices", type=int, default=3, help="slices per volume in the probe")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the tiny config")
    args = parser.parse_args()
    dotlist = [f"data.shards={args.shards}", f"run.out={args.out}", "run.progress=false"]
    cfg = load_config("pretrain/default", ["pretrain/tiny"], [*dotlist, *args.overrides])
    tasks = args.tasks.split(",")
    probes = ProbeSet(args.cohort, tasks, int(cfg.model.img_size), args.slices)
    torch.manual_seed(12345)
    random_init = probes.evaluate(build_meta_arch(cfg).teacher.backbone)
    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    seconds = time.perf_counter() - start
    pretrained = probes.evaluate(trainer.meta.teacher.backbone)
    monitors = _last_scalars(
        args.out,
        ["monitor/teacher_entropy", "monitor/feature_std", "monitor/effective_rank"],
    )
    print(
        json.dumps(
            {
                "overrides": args.overrides,
                "iterations": trainer.step,
                "train_seconds": round(seconds),
                "random_init": random_init,
                "pretrained": pretrained,
                "monitors": monitors,
            }
        )
    )


if __name__ == "__main__":
    main()
