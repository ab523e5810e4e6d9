"""Which slice size and patch size should ``make demo`` train at? Measure, do not guess.

    python bench/demo_resolution_bench.py --cohort COHORT --out OUT --settings 64/16,128/16,64/8

For each ``SIZE/PATCH`` setting: the cohort's pretraining pool as slice shards of ``SIZE`` px at
2 mm (foreground crop, longer side -> SIZE), ``configs/pretrain/tiny.yaml`` trained on them for
``--epochs`` x 20 iterations with global crops of SIZE px, local crops of SIZE / 2 px and a
ViT-tiny of that patch size (the iBOT masks on its grid), exported; then the exported teacher
and two random-init twins (:func:`random_like`, seeds 12345 and 1) are scored by the probes of
``bench/peer_bench.py``: logistic regression and k-NN on the last 4 blocks' CLS + mean patch
tokens of 8 slices per volume (``brain_age``, ``diagnosis``), and the dense tissue probe (patch
tokens -> background / CSF / GM / WM on shifted slices of ``--tissue-subjects`` IXI-like heads
rendered at SIZE px). Every setting sees the same volumes, steps and batch; what changes is how
much anatomy one token covers (a 16-px patch of a 64-px slice is about 1/4 of the head).

Training seconds and the median step time are recorded, because the demo has about 15 minutes
on 2 cores for everything. Finished settings are reused when the bench runs again into ``--out``.
One JSON document goes to ``--out/resolution.json`` and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from peer_bench import score

from braindino.analysis.cases import labelled_case
from braindino.analysis.synthetic import synthetic_volumes
from braindino.config import load_config
from braindino.demo import build_shards
from braindino.models import load_encoder, random_like
from braindino.ssl.export import export_run
from braindino.ssl.probe import ProbeSet
from braindino.ssl.trainer import pretrain

RANDOM_SEEDS = (12345, 1)


def setting_config(size: int, patch: int, shards: Path, out: Path, epochs: int, seed: int):
    """The tiny config at ``size`` px slices and ``patch`` px patches."""
    dotlist = [
        f"data.shards={shards}",
        f"run.out={out}",
        "run.progress=false",
        f"run.seed={seed}",
        f"schedule.epochs={epochs}",
        f"model.img_size={size}",
        f"augment.global_crops.size={size}",
        f"augment.local_crops.size={size // 2}",
        f"augment.masking.patch_size={patch}",
    ]
    if patch != 16:
        dotlist.append(f"model.kwargs.patch_size={patch}")
    return load_config("pretrain/default", ["pretrain/tiny"], dotlist)


def main() -> None:
    """Train and probe every setting; write resolution.json and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cohort", required=True, help="synthetic cohort (pool + probe labels)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--settings", default="64/16,128/16,64/8", help="SIZE/PATCH, comma list")
    parser.add_argument("--epochs", type=int, default=12, help="x 20 iterations (tiny config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="brain_age,diagnosis", help="probe tasks")
    parser.add_argument("--tissue-subjects", type=int, default=60, help="dense tissue probe")
    parser.add_argument("--workers", type=int, default=2, help="processes preparing shards")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    volumes = synthetic_volumes("tissue", args.tissue_subjects, "T1", args.seed)
    results: dict = {"epochs": args.epochs, "settings": {}}
    for setting in args.settings.split(","):
        size, patch = (int(v) for v in setting.split("/"))
        folder = out / f"{size}_{patch}"
        shards = build_shards(out / f"shards_{size}", Path(args.cohort), args.workers, size=size)
        cfg = setting_config(size, patch, shards, folder / "run", args.epochs, args.seed)
        export = folder / "encoder"
        start = time.perf_counter()
        if not (export / "config.json").is_file():
            pretrain(cfg)
            export_run(folder / "run", export)
        seconds = time.perf_counter() - start
        encoder = load_encoder(export)
        probes = ProbeSet(
            args.cohort,
            args.tasks.split(","),
            size,
            8,
            preprocess={"spacing": [2.0] * 3},
            pooling="cls+patch",
            blocks=4,
        )
        shard_preprocess = {"spacing": [2.0] * 3, "slices": {"size": size}}
        cases = [labelled_case(None, *volume, shard_preprocess) for volume in volumes]
        entry = {
            "train_s": round(seconds, 1),
            "grid": size // patch,
            "pretrained": score(probes, cases, encoder),
            "random_init": {
                str(s): score(probes, cases, random_like(encoder, seed=s)) for s in RANDOM_SEEDS
            },
        }
        results["settings"][setting] = entry
        print(json.dumps({setting: entry}), flush=True)
        (out / "resolution.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print("| setting | grid | train s | probe | task | best random | pretrained | gain |")
    print("|---|---|---|---|---|---|---|---|")
    for setting, entry in results["settings"].items():
        for c, tasks in entry["pretrained"].items():
            for task, value in tasks.items():
                best = max(r[c][task] for r in entry["random_init"].values())
                print(
                    f"| {setting} | {entry['grid']}² | {entry['train_s']:.0f} | {c} | {task} | "
                    f"{best:.3f} | {value:.3f} | {value - best:+.3f} |"
                )


if __name__ == "__main__":
    main()
