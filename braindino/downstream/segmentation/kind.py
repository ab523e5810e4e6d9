"""Segmentation as a kind of the protocol (``downstream/segment.py``).

One sample is one case (images + label map): every case is prepared once on the encoder's slice
grid (cached); for every head (``decoder``, ``linear``) x label fraction x seed a model is trained
on that share of the training cases and selected on the validation cases only; each test case is
predicted once, mapped back to its original image space, scored per region and written as NIfTI
-> per-case CSV, ``metrics.json`` with bootstrap intervals, the report.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig
from torch import nn
from tqdm.auto import tqdm

from braindino.downstream.adapted import trainable_counts
from braindino.downstream.options import SegmentOptions
from braindino.downstream.protocol import load_checked_task, run_protocol, say
from braindino.downstream.segmentation.augment import AugmentSettings
from braindino.downstream.segmentation.cases import prepare_case
from braindino.downstream.segmentation.evaluate import evaluate_case
from braindino.downstream.segmentation.model import SegmentationModel
from braindino.downstream.segmentation.regions import LabelScheme
from braindino.downstream.segmentation.report import write_report
from braindino.downstream.segmentation.train import TrainSettings, train_head
from braindino.errors import ConfigError
from braindino.models import MaskableViT, add_lora
from braindino.tasks import cache_dir, image_columns, segmentation_manifest


def train_settings(options: SegmentOptions) -> TrainSettings:
    """The training settings the options ask for."""
    return TrainSettings(
        epochs=options.epochs,
        steps_per_epoch=options.steps_per_epoch,
        batch_size=options.batch_size,
        lr=options.lr,
        encoder_lr=options.adapter_lr if options.adapter == "lora" else options.encoder_lr,
        foreground_fraction=options.foreground_fraction,
        augment=AugmentSettings() if options.augment else None,
        patience=options.patience,
        progress=options.progress,
    )


def model_encoder(encoder: MaskableViT, options: SegmentOptions) -> nn.Module:
    """The encoder one model trains on: a LoRA copy (``--adapter lora``), a copy to fine-tune
    (``--unfreeze-encoder``) or the shared frozen encoder itself. Seed the RNG first."""
    if options.adapter == "lora":
        return add_lora(
            encoder,
            options.lora_rank,
            options.lora_alpha,
            options.lora_dropout,
            options.lora_targets,
        )
    return copy.deepcopy(encoder) if options.unfreeze_encoder else encoder


class SegmentationKind:
    """Segmentation heads over an encoder; collects the per-case, per-region score rows."""

    stratify = "class"

    def __init__(self, options: SegmentOptions) -> None:
        self.options = options
        self.case_rows: list[dict] = []

    def manifest(self, task: DictConfig) -> pd.DataFrame:
        """Images + label map per case."""
        self.scheme = LabelScheme.from_task(task)
        return segmentation_manifest(task, self.options.data_root, cohort=self.options.cohort)

    def bind(self, task: DictConfig, manifest: pd.DataFrame, splits: pd.DataFrame, out: Path):
        """Remember the run; the train and test splits must hold cases."""
        self.task, self.manifest_rows, self.splits, self.out = task, manifest, splits, out
        self.by_split = {s: manifest[manifest["split"] == s] for s in ("train", "val", "test")}
        if self.by_split["train"].empty or self.by_split["test"].empty:
            raise ConfigError(
                "the train or test split is empty",
                path="splits",
                fix="use more cases or change split.fractions",
            )

    def prepare(self, encoder: MaskableViT, label: str, preprocess: dict) -> tuple:
        """``(encoder, cases)``: every case on the encoder's slice grid (from the store)."""
        options, manifest = self.options, self.manifest_rows
        store = Path(options.cache) if options.cache else cache_dir() / "segment"
        columns, cases = image_columns(manifest), {}
        rows = list(manifest.itertuples(index=False))
        for row in tqdm(rows, desc="prepare cases", disable=not options.progress, leave=False):
            images = [str(getattr(row, c)) for c in columns]
            case = prepare_case(row.subject, images, str(row.mask), self.scheme, preprocess, store)
            cases[row.subject] = case
        return encoder, cases

    def heads(self) -> list[str]:
        """``--head`` (``decoder`` and/or ``linear``)."""
        return list(self.options.heads)

    def train_and_test(
        self, prepared: tuple, head: str, keep: list[str], seed: int, tags: dict
    ) -> dict:
        """Train one head on the kept training cases (seeded), select it on the validation
        cases, then evaluate every test case once in its source space (predictions written
        under ``out/predictions/<encoder>_<head>_f<fraction>_s<seed>/``)."""
        encoder, cases = prepared
        options, scheme, by_split = self.options, self.scheme, self.by_split
        kept = set(keep)
        train = [cases[s] for s in by_split["train"]["subject"] if s in kept]
        val = [cases[s] for s in by_split["val"]["subject"]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SegmentationModel(
                model_encoder(encoder, options),
                train[0].images.shape[1],  # modalities
                scheme.num_classes,
                head=head,
                blocks=options.blocks,
                width=options.width,
                unfreeze_encoder=options.unfreeze_encoder,
                adapted=options.adapter == "lora",
            )
        history = train_head(
            model, train, val, scheme.class_regions(), train_settings(options), seed
        )
        label, fraction = tags["encoder"], tags["fraction"]
        folder = self.out / "predictions" / f"{label}_{head}_f{fraction:g}_s{seed}"
        rows = []
        for row in by_split["test"].itertuples(index=False):  # the test split: once per head
            path = folder / f"{row.subject}_pred.nii.gz" if options.save_predictions else None
            scores, _ = evaluate_case(
                model, cases[row.subject], str(row.image), str(row.mask), scheme, path
            )
            written = str(path.relative_to(self.out)) if path is not None else ""
            for region, values in scores.items():
                rows.append(
                    {**tags, "head": head, "subject": row.subject, "region": region}
                    | {**values, "prediction": written}
                )
        self.case_rows += rows
        means = pd.DataFrame(rows).groupby("region", sort=False)["dice"].mean()
        say(
            f"  {label} {head} fraction={fraction:g} seed={seed}: Dice "
            + ", ".join(f"{r}={v:.3f}" for r, v in means.items()),
            options.progress,
        )
        own = [*model.head.parameters(), *model.mixer.parameters()]  # decoder or probe, mixer
        return {
            "head": head,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(by_split["test"]),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
            "unfreeze_encoder": options.unfreeze_encoder,
            **({"parameters": trainable_counts(model.encoder, own)} if model.adapted else {}),
            "history": history,
        }

    def write_report(self, results: list[dict], skipped: dict[str, str]) -> dict[str, Any]:
        """``cases.csv``, ``metrics.json``, overlays and ``report.md``."""
        return write_report(
            self.out,
            self.task,
            self.options,
            self.manifest_rows,
            self.scheme,
            results,
            pd.DataFrame(self.case_rows),
            skipped,
        )


def run_segmentation(options: SegmentOptions) -> dict[str, Any]:
    """Run the segmentation protocol for ``options`` and write the run folder; returns
    ``metrics.json``'s content."""
    task = load_checked_task(options, "segment")
    return run_protocol(SegmentationKind(options), task)
