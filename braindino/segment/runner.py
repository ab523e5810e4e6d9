"""``run_segmentation``: the segmentation protocol of one task, end to end.

Manifest (images + label map per case) -> saved subject-level splits -> per encoder: every case
prepared once on the encoder's slice grid (cached) -> for every head x label fraction x seed: a
head trained on that share of the training cases and selected on the validation cases only ->
each test case predicted once, mapped back to its original image space, scored per region and
written as NIfTI -> per-case CSV, ``metrics.json`` with bootstrap intervals, the report.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from braindino.config import save_config
from braindino.downstream.options import default_out
from braindino.downstream.report import say_data
from braindino.downstream.runner import encoder_list, load_compare_encoder
from braindino.downstream.samples import image_columns
from braindino.errors import ConfigError
from braindino.features import encoder_preprocess
from braindino.segment.augment import AugmentSettings
from braindino.segment.cases import CaseSlices, load_or_prepare
from braindino.segment.evaluate import evaluate_case
from braindino.segment.model import SegmentationModel
from braindino.segment.options import SegmentOptions
from braindino.segment.regions import LabelScheme
from braindino.segment.report import write_report
from braindino.segment.train import TrainSettings, train_head
from braindino.tasks import (
    cache_dir,
    label_fraction_subjects,
    load_task,
    segmentation_manifest,
    split_manifest,
)


def _say(text: str, progress: bool) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def load_segmentation_task(options: SegmentOptions):
    """The merged task config; a non-segmentation task is a one-line error naming its script."""
    task = load_task(options.task, options.overrides or None)
    if task.target != "segmentation":
        script = {"class": "classify", "regression": "regress", "survival": "survival"}
        raise ConfigError(
            f"task {task.name} is a {task.target} task; segment.py does not run it",
            path="--task",
            fix=f"run downstream/{script[str(task.target)]}.py --task {task.name}",
        )
    return task


def prepare_cases(
    manifest: pd.DataFrame,
    scheme: LabelScheme,
    preprocess: dict,
    store: Path,
    progress: bool,
) -> dict[str, CaseSlices]:
    """Every case of the manifest on the encoder's slice grid (from the store when there)."""
    columns = image_columns(manifest)
    out = {}
    rows = list(manifest.itertuples(index=False))
    for row in tqdm(rows, desc="prepare cases", disable=not progress, leave=False):
        images = [str(getattr(row, c)) for c in columns]
        out[row.subject] = load_or_prepare(
            store, row.subject, images, str(row.mask), scheme, preprocess
        )
    return out


def train_settings(options: SegmentOptions) -> TrainSettings:
    """The training settings the options ask for."""
    return TrainSettings(
        epochs=options.epochs,
        steps_per_epoch=options.steps_per_epoch,
        batch_size=options.batch_size,
        lr=options.lr,
        encoder_lr=options.encoder_lr,
        foreground_fraction=options.foreground_fraction,
        augment=AugmentSettings() if options.augment else None,
        patience=options.patience,
        progress=options.progress,
    )


def train_and_test(
    encoder,
    encoder_tag: tuple[str, str],
    head: str,
    fraction: float,
    seed: int,
    cases: dict[str, CaseSlices],
    splits: pd.DataFrame,
    by_split: dict[str, pd.DataFrame],
    scheme: LabelScheme,
    options: SegmentOptions,
    out: Path,
) -> tuple[dict, list[dict]]:
    """Train one head on ``fraction`` of the training cases (seeded), select it on the
    validation cases, then evaluate every test case once in its source space (predictions
    written under ``out/predictions/<encoder>_<head>_f<fraction>_s<seed>/``).

    Returns the run record and the per-case, per-region score rows."""
    label, spec = encoder_tag
    keep = set(label_fraction_subjects(splits, fraction, seed))
    train = [cases[s] for s in by_split["train"]["subject"] if s in keep]
    val = [cases[s] for s in by_split["val"]["subject"]]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SegmentationModel(
            copy.deepcopy(encoder) if options.unfreeze_encoder else encoder,
            train[0].images.shape[1],  # modalities
            scheme.num_classes,
            head=head,
            blocks=options.blocks,
            width=options.width,
            unfreeze_encoder=options.unfreeze_encoder,
        )
    history = train_head(model, train, val, scheme.class_regions(), train_settings(options), seed)
    tags = {"encoder": label, "head": head, "fraction": fraction, "seed": seed}
    folder = out / "predictions" / f"{label}_{head}_f{fraction:g}_s{seed}"
    rows = []
    for row in by_split["test"].itertuples(index=False):  # the test split: once per head
        path = folder / f"{row.subject}_pred.nii.gz" if options.save_predictions else None
        scores, _ = evaluate_case(
            model, cases[row.subject], str(row.image), str(row.mask), scheme, path
        )
        written = str(path.relative_to(out)) if path is not None else ""
        for region, values in scores.items():
            rows.append(
                {**tags, "subject": row.subject, "region": region, **values, "prediction": written}
            )
    record = {
        **tags,
        "encoder_spec": spec,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(by_split["test"]),
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "encoder_parameters": int(sum(p.numel() for p in model.encoder.parameters())),
        "unfreeze_encoder": options.unfreeze_encoder,
        "history": history,
    }
    means = pd.DataFrame(rows).groupby("region", sort=False)["dice"].mean()
    _say(
        f"  {label} {head} fraction={fraction:g} seed={seed}: Dice "
        + ", ".join(f"{r}={v:.3f}" for r, v in means.items()),
        options.progress,
    )
    return record, rows


def run_segmentation(options: SegmentOptions) -> dict[str, Any]:
    """Run the protocol for ``options`` and write the run folder; returns ``metrics.json``'s
    content."""
    task = load_segmentation_task(options)
    scheme = LabelScheme.from_task(task)
    out = Path(options.out) if options.out else default_out(str(task.name))
    out.mkdir(parents=True, exist_ok=True)
    manifest = segmentation_manifest(task, options.data_root, cohort=options.cohort)
    say_data(manifest, options.progress)
    manifest, splits = split_manifest(manifest, task, out / "splits.csv", "class")
    by_split = {s: manifest[manifest["split"] == s] for s in ("train", "val", "test")}
    if by_split["train"].empty or by_split["test"].empty:
        raise ConfigError(
            "the train or test split is empty",
            path="splits",
            fix="use more cases or change split.fractions",
        )
    fractions = [float(f) for f in (options.label_fractions or task.label_fractions)]
    save_config(
        OmegaConf.create({"task": OmegaConf.to_container(task), "run": options.as_dict()}),
        out / "config.yaml",
    )
    store = Path(options.cache) if options.cache else cache_dir() / "segment"
    results, case_rows = [], []
    reference, reference_preprocess = None, None
    for label, spec in encoder_list(options):  # type: ignore[arg-type]
        _say(f"[{task.name}] encoder {label}: {spec}", options.progress)
        encoder = load_compare_encoder(spec, reference)
        if reference_preprocess is None:
            reference = encoder
            reference_preprocess = OmegaConf.to_container(
                encoder_preprocess(encoder, options.preprocess or None), resolve=True
            )
        preprocess = reference_preprocess  # every encoder sees the same slices
        cases = prepare_cases(manifest, scheme, preprocess, store, options.progress)
        for head in options.heads:
            for fraction in fractions:
                for seed in options.seeds:
                    record, rows = train_and_test(
                        encoder,
                        (label, spec),
                        head,
                        fraction,
                        seed,
                        cases,
                        splits,
                        by_split,
                        scheme,
                        options,
                        out,
                    )
                    results.append(record)
                    case_rows += rows
    return write_report(out, task, options, manifest, scheme, results, pd.DataFrame(case_rows))
