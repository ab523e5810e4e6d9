"""``make demo``: the whole job on the embedded synthetic cohort, end to end on a CPU.

synthetic cohort → slice shards → tiny stage-1 pretraining → short stage-2 (Gram anchoring) →
export → against the export's random-init twin: frozen probes (brain age, diagnosis), the
ADNI-like classification (``downstream/classify.py --task adni --compare random``) and the
representation analyses (``braindino analyze``: dense tissue probe, PCA and attention maps) →
``report.md``, the evidence table first (``braindino.demo_report``). Every step resumes: a second
``make demo`` reuses what the first one finished.

    python -m braindino.demo --out demo_out [--subjects 400] [--stage1-epochs 12]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from braindino.cli import run_cli
from braindino.tasks.synthetic import DEFAULT_SUBJECTS

DEMO_PROBE_SLICES = 8  # slices per volume in the final probe report
DEMO_PROBE_TASKS = ("brain_age", "diagnosis")
DEMO_TISSUE_SUBJECTS = 40  # synthetic heads of the dense tissue probe (half tested)
DEMO_BLOCKS = 4  # last blocks whose tokens the report's probes use
DEMO_SEEDS = (0, 1, 2)  # label-scarcity sweep seeds: the plot shows their spread


_CLOCK = {"step": None, "start": 0.0}


def _say(text: str | None) -> None:
    """Print the next step's heading (``None``: the end) after the time the last step took."""
    now = time.perf_counter()
    if _CLOCK["step"] is not None:
        print(f"   ({_CLOCK['step']}: {now - _CLOCK['start']:.0f} s)", flush=True)
    _CLOCK["step"], _CLOCK["start"] = (text or "").split(" ")[0], now
    if text is not None:
        print(f"\n== {text}", flush=True)


def build_cohort(subjects: int, seed: int) -> Path:
    """The synthetic cohort in the shared cache (``$BRAINDINO_CACHE``), generated once; the
    downstream scripts find the same folder when no ``--data-root`` is given."""
    from braindino.tasks import ensure_cohort

    cohort = ensure_cohort(subjects=subjects, seed=seed)
    print(f"cohort: {cohort}")
    return cohort


def build_shards(out: Path, cohort: Path, workers: int, size: int = 64) -> Path:
    """Prepare the cohort's healthy pretraining pool as slice shards of ``size`` px at 2 mm
    (resumable)."""
    from braindino.data.prepare import collect_inputs, load_prepare_config, prepare_shards

    cfg = load_prepare_config(
        dotlist=[f"preprocess.slices.size={size}", "preprocess.spacing=[2.0,2.0,2.0]"]
    )
    inputs = collect_inputs(cfg, [str(cohort / "pretrain_pool.csv")])
    report = prepare_shards(inputs, out / "shards", cfg, workers=workers)
    print(f"{report['volumes_ok']} volumes → {report['slices']} slices in {out / 'shards'}")
    return out / "shards"


def pool_shards(out: Path, seed: int, pool_subjects: int = 60) -> Path:
    """A cohort of ``seed`` holding only the healthy pretraining pool (``pool_subjects``; the
    generator's minimum of labelled subjects beside it) in ``out / "cohort"``, prepared as 64-px
    shards (:func:`build_shards`): the pretraining data of the evidence protocols."""
    from braindino.synth.generate import generate_cohort

    cohort = out / "cohort"
    generate_cohort(
        cohort,
        subjects={"ixi": 2},
        seed=seed,
        tasks=["ixi"],
        pool_subjects=pool_subjects,
        baseline=False,
        progress=False,
    )
    return build_shards(out, cohort, workers=2)


def pretrain_config(out: Path, shards: Path, cohort: Path, stage: int, epochs: int):
    """The tiny config at the demo's slice size (``configs/pretrain/demo.yaml``) for stage 1,
    or with stage2_gram continuing from stage 1."""
    from braindino.config import load_config

    dotlist = [
        f"data.shards={shards}",
        f"run.out={out / 'runs' / f'stage{stage}'}",
        f"schedule.epochs={epochs}",
        f"probe.cohort={cohort}",
    ]
    overrides = ["pretrain/tiny", "pretrain/demo"]
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


def probe_evidence(cohort: Path, stage1_cfg, encoder_dir: Path) -> list:
    """Frozen probes of the exported encoder vs its random-init twin (brain age, diagnosis):
    logistic regression on the last 4 blocks' CLS ⊕ mean patch tokens (the features of the CI
    evidence test, bench/RESULTS.md protocol 5), with intervals and McNemar's test."""
    from braindino.demo_report import probe_rows
    from braindino.models import load_encoder, random_like
    from braindino.ssl.probe import ProbeSet

    size = int(stage1_cfg.probe.image_size or stage1_cfg.model.img_size)
    probes = ProbeSet(
        cohort,
        list(DEMO_PROBE_TASKS),
        size,
        DEMO_PROBE_SLICES,
        preprocess={"spacing": [2.0, 2.0, 2.0]},
        pooling="cls+patch",
        blocks=DEMO_BLOCKS,
    )
    encoder = load_encoder(encoder_dir)
    return probe_rows(probes, encoder, random_like(encoder, seed=12345), DEMO_PROBE_TASKS)


def analyze(out: Path, encoder: Path, progress: bool = True) -> dict:
    """``braindino analyze`` of the export beside its twin: the dense tissue probe, PCA and
    attention maps, retrieval, embeddings (``out/analyze``)."""
    from braindino.analysis.options import AnalyzeOptions
    from braindino.analysis.run import run_analysis

    options = AnalyzeOptions(
        encoder=str(encoder),
        out=str(out / "analyze"),
        probes=["tissue"],
        probe_subjects=DEMO_TISSUE_SUBJECTS,
        scales=[1],
        progress=progress,
    )
    return run_analysis(options)


def demo_report(out: Path, rows: list, encoder: Path, stage1_cfg, iterations: int) -> Path:
    """The demo's ``report.md``: the evidence table first, then the pictures."""
    from braindino.demo_report import write_demo_report

    size, arch = int(stage1_cfg.model.img_size), str(stage1_cfg.model.arch)
    setting = (
        f"Encoder `{encoder}`: {arch} pretrained {iterations} iterations (stage 1 + stage 2) on "
        f"{size}-px axial slices (2 mm) of the synthetic cohort's healthy pool; probes and "
        "tasks use subjects never pretrained on. bench/RESULTS.md has the powered comparisons "
        "(protocols 5 and 6) and how the demo's slice and patch size were chosen."
    )
    pictures = [
        (title, f"{folder}/{name}")
        for title, folder, name in (
            ("Dense tissue probe", "analyze/plots", "dense_probes.png"),
            ("PCA of patch tokens (first 3 components as RGB)", "analyze/plots", "pca.png"),
            ("Last-block CLS attention", "analyze/plots", "attention_0.png"),
            ("ADNI-like label-scarcity sweep", "downstream/adni/plots", "label_scarcity.png"),
            ("ADNI-like attention over slices", "downstream/adni/plots", "attention_encoder.png"),
        )
        if (out / folder / name).is_file()
    ]
    notes = [
        "Full reports: `analyze/report.md` (every map and probe), `downstream/adni/report.md` "
        "(every seed and label fraction)."
    ]
    return write_demo_report(out / "report.md", rows, setting, pictures, notes)


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

    _say("1/7 synthetic cohort")
    cohort = build_cohort(args.subjects, args.seed)
    stage1 = pretrain_config(out, out / "shards", cohort, 1, args.stage1_epochs)
    _say("2/7 slice shards")
    build_shards(out, cohort, args.workers, size=int(stage1.model.img_size))
    _say("3/7 stage 1 pretraining (DINO + iBOT + KoLeo)")
    pretrain(stage1)
    _say("4/7 stage 2 pretraining (Gram anchoring)")
    stage2 = pretrain_config(out, out / "shards", cohort, 2, args.stage2_epochs)
    pretrain(stage2)
    encoder = export_run(out / "runs" / "stage2", out / "encoder")
    print(f"exported encoder → {encoder}")
    _say("5/7 frozen probes: demo encoder vs its random twin")
    rows = probe_evidence(cohort, stage1, encoder)
    _say("6/7 ADNI-like 3-class classification (slice attention head), demo vs random init")
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
    _say("7/7 representation analyses (dense tissue probe, PCA and attention maps)")
    analysis = analyze(out, encoder)
    from braindino.demo_report import classification_rows, dense_rows

    adni_metrics = json.loads((adni / "metrics.json").read_text(encoding="utf-8"))
    rows = dense_rows(analysis) + rows + classification_rows(adni_metrics)
    iterations = sum(
        int(c.schedule.epochs) * int(c.schedule.iters_per_epoch) for c in (stage1, stage2)
    )
    report = demo_report(out, rows, encoder, stage1, iterations)
    _say(None)
    print(report.read_text(encoding="utf-8").split("## Pictures")[0])
    print(f"\nreports: {report}, {out / 'analyze' / 'report.md'}, {adni / 'report.md'}")
    print(f"TensorBoard: tensorboard --logdir {out / 'runs'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
