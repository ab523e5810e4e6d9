"""Does pretraining help? Frozen-feature probes of a pretrained teacher vs random init.

    python -m braindino.synth --out /tmp/cohort --subjects 200 --seed 1
    python pretrain/prepare.py --out /tmp/shards /tmp/cohort/pretrain_pool.csv \\
        preprocess.slices.size=64 "preprocess.spacing=[2.0,2.0,2.0]"
    python bench/pretrain_probe_bench.py --cohort /tmp/cohort --shards /tmp/shards \\
        --out /tmp/probe_run schedule.epochs=60

Trains ``configs/pretrain/tiny.yaml`` (+ overrides) on the shards, then prints one JSON line:
probe scores (balanced accuracy, subject-grouped 5-fold CV; cosine k-NN and logistic regression)
for the random-init and the pretrained EMA teacher, the last values of the collapse monitors, and
the training time. Datasets whose (unlabelled) images were pretrained on go in --exclude: e.g.
prepare the pool plus BraTS2021 from one CSV manifest (columns image,subject,dataset,modality:
pretrain_pool.csv's rows and the four sequences of each BraTS2021/truth.csv row), then pass
--exclude BraTS2021.
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


def _scores(probes: ProbeSet, backbone: torch.nn.Module, k: int) -> dict[str, dict]:
    return {
        name: {t: round(v, 3) for t, v in probes.evaluate(backbone, k, classifier=name).items()}
        for name in ("knn", "logreg")
    }


def main() -> None:
    """Train, probe both encoders, print the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument(
        "--tasks", default="tumour_slice,stroke_slice,brain_age,diagnosis,brats_sequence"
    )
    parser.add_argument("--slices", type=int, default=3, help="slices per volume in the probe")
    parser.add_argument("--pooling", default="cls+patch", help="cls or cls+patch")
    parser.add_argument("--k", type=int, default=10, help="k-NN neighbours")
    parser.add_argument("--spacing", type=float, default=2.0, help="probe voxel size (mm)")
    parser.add_argument("--exclude", default="", help="dataset folders left out of the probes")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the tiny config")
    args = parser.parse_args()
    dotlist = [f"data.shards={args.shards}", f"run.out={args.out}", "run.progress=false"]
    cfg = load_config("pretrain/default", ["pretrain/tiny"], [*dotlist, *args.overrides])
    tasks = args.tasks.split(",")
    probes = ProbeSet(
        args.cohort,
        tasks,
        int(cfg.model.img_size),
        args.slices,
        preprocess={"spacing": [args.spacing] * 3},
        pooling=args.pooling,
        exclude_datasets=[d for d in args.exclude.split(",") if d],
    )
    sizes = {task: len(data[1]) for task, data in probes.tasks.items()}
    torch.manual_seed(12345)
    random_init = _scores(probes, build_meta_arch(cfg).teacher.backbone, args.k)
    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.fit()
    seconds = time.perf_counter() - start
    pretrained = _scores(probes, trainer.meta.teacher.backbone, args.k)
    monitors = _last_scalars(
        args.out,
        [
            "loss/dino_global",
            "monitor/teacher_entropy",
            "monitor/feature_std",
            "monitor/effective_rank",
        ],
    )
    print(
        json.dumps(
            {
                "overrides": args.overrides,
                "iterations": trainer.step,
                "probe_samples": sizes,
                "train_seconds": round(seconds),
                "random_init": random_init,
                "pretrained": pretrained,
                "monitors": monitors,
            }
        )
    )


if __name__ == "__main__":
    main()
