"""``make demo``: the whole job on the embedded synthetic cohort, end to end on a CPU.

synthetic cohort → slice shards → tiny stage-1 pretraining → short stage-2 (Gram anchoring) →
export → frozen probes (k-NN, logistic regression) of the exported encoder against the same
architecture at random initialisation → ``downstream/classify.py --task adni --compare``
report. Every step resumes: a second ``make demo`` reuses what the first one finished.

    python -m braindino.demo --out demo_out [--subjects 400] [--stage1-epochs 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from braindino.cli import run_cli
from braindino.tasks.synthetic import DEFAULT_SUBJECTS

SHARD_PREPROCESS = ("preprocess.slices.size=64", "preprocess.spacing=[2.0,2.0,2.0]")
DEMO_PROBE_SLICES = 8  # slices per volume in the final probe report
DEMO_BLOCKS = 4  # last blocks whose tokens the report's probes use
DEMO_SEEDS = (0, 1, 2)  # label-scarcity sweep seeds: the plot shows their spread


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def build_cohort(subjects: int, seed: int) -> Path:
    """The synthetic cohort in the shared cache (``$BRAINDINO_CACHE``), generated once; the
    downstream scripts find the same folder when no ``--data-root`` is given."""
    from braindino.tasks import ensure_cohort

    cohort = ensure_cohort(subjects=subjects, seed=seed)
    print(f"cohort: {cohort}")
    return cohort


def build_shards(out: Path, cohort: Path, workers: int) -> Path:
    """Prepare the cohort's healthy pretraining pool as slice shards (resumable)."""
    from braindino.data.prepare import collect_inputs, load_prepare_config, prepare_shards

    cfg = load_prepare_config(dotlist=SHARD_PREPROCESS)
    inputs = collect_inputs(cfg, [str(cohort / "pretrain_pool.csv")])
    report = prepare_shards(inputs, out / "shards", cfg, workers=workers)
    print(f"{report['volumes_ok']} volumes → {report['slices']} slices in {out / 'shards'}")
    return out / "shards"


def pretrain_config(out: Path, shards: Path, cohort: Path, stage: int, epochs: int):
    """The tiny config for stage 1, or tiny + stage2_gram continuing from stage 1."""
    from braindino.config import load_config

    dotlist = [
        f"data.shards={shards}",
        f"run.out={out / 'runs' / f'stage{stage}'}",
        f"schedule.epochs={epochs}",
        f"probe.cohort={cohort}",
    ]
    overrides = ["pretrain/tiny"]
    if stage == 2:
        overrides.append("pretrain/stage2_gram")
        dotlist += [
            f"model.init_from={out / 'runs' / 'stage1'}",
            "schedule.iters_per_epoch=20",
            "gram.refresh_every=20",
            "gram.max_refreshes=1",
            "gram.resolution_ratio=1",  # the recipe's 2x Gram crops cost 4x teacher tokens
        ]
    return load_config("pretrain/default", overrides, dotlist)


def probe_report(out: Path, cohort: Path, stage1_cfg, encoder_dir: Path) -> dict:
    """Frozen probes of the exported encoder vs the same architecture at random initialisation:
    cosine k-NN and logistic regression on the last 4 blocks' CLS ⊕ mean patch tokens (the
    features of the CI evidence test, bench/RESULTS.md protocol 5)."""
    from braindino.models import load_encoder
    from braindino.ssl.compare import random_init_backbone, score_encoder
    from braindino.ssl.probe import ProbeSet

    p = stage1_cfg.probe
    size = int(p.image_size or stage1_cfg.model.img_size)
    probes = ProbeSet(
        cohort, list(p.tasks), size, DEMO_PROBE_SLICES, pooling="cls+patch", blocks=DEMO_BLOCKS
    )
    random_init = random_init_backbone(stage1_cfg, 12345)
    classifiers = ("knn", "logreg")
    results = {
        "pretrained": score_encoder(probes, load_encoder(encoder_dir), classifiers),
        "random_init": score_encoder(probes, random_init, classifiers),
    }
    rows = [
        f"| {task} | {name} | {results['random_init'][c][task]:.3f} | "
        f"{results['pretrained'][c][task]:.3f} |"
        for task in p.tasks
        for c, name in (("knn", "k-NN"), ("logreg", "logistic regression"))
    ]
    lines = ["| probe task | probe | random init | BrainDINO demo encoder |", "|---|---|---|---|"]
    table = "\n".join(lines + rows)
    (out / "probe.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(
        "# BrainDINO demo\n\nFrozen-feature probes (balanced accuracy, subject-grouped 5-fold "
        f"CV) on the synthetic cohort: {DEMO_PROBE_SLICES} slices per volume, the last "
        f"{DEMO_BLOCKS} blocks' CLS and mean patch tokens. On the demo's small cohort the "
        "differences are noisy; bench/RESULTS.md (protocol 5) has the powered comparison.\n\n"
        + table
        + "\n",
        encoding="utf-8",
    )
    print(table)
    return results


def main() -> int:
    """Run the demo pipeline."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--subjects",
        type=int,
        default=DEFAULT_SUBJECTS,
        help=f"synthetic subjects (default {DEFAULT_SUBJECTS}; an existing cohort in the cache "
        "is reused as it is)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for data preparation")
    parser.add_argument("--stage1-epochs", type=int, default=12, help="20 iterations each")
    parser.add_argument("--stage2-epochs", type=int, default=2, help="20 iterations each")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from braindino.ssl.export import export_run
    from braindino.ssl.trainer import pretrain

    _say("1/6 synthetic cohort")
    cohort = build_cohort(args.subjects, args.seed)
    _say("2/6 slice shards")
    shards = build_shards(out, cohort, args.workers)
    _say("3/6 stage 1 pretraining (DINO + iBOT + KoLeo)")
    stage1 = pretrain_config(out, shards, cohort, 1, args.stage1_epochs)
    pretrain(stage1)
    _say("4/6 stage 2 pretraining (Gram anchoring)")
    pretrain(pretrain_config(out, shards, cohort, 2, args.stage2_epochs))
    encoder = export_run(out / "runs" / "stage2", out / "encoder")
    print(f"exported encoder → {encoder}")
    _say("5/6 frozen probes: demo encoder vs random initialisation")
    probe_report(out, cohort, stage1, encoder)
    _say("6/6 ADNI-like 3-class classification (slice attention head), demo vs random init")
    from braindino.downstream import RunOptions, run_downstream

    adni = out / "downstream" / "adni"
    run_downstream(
        RunOptions(
            "adni",
            encoder=str(encoder),
            out=str(adni),
            compare=["random"],
            cohort=str(cohort),
            seeds=list(DEMO_SEEDS),  # cached features: more seeds cost head fits only
        )
    )
    print(f"\nreports: {out / 'report.md'}, {adni / 'report.md'}")
    print(f"TensorBoard: tensorboard --logdir {out / 'runs'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
