"""``run_protocol``: the frozen-transfer protocol of one task, end to end, for every kind of model.

Manifest -> saved subject-level splits -> per encoder (the main one, then the ``--compare``
baselines): the data prepared once (cached slice features, or cases on the encoder's slice grid)
-> for every head x label fraction x seed: a model trained on that share of the training
subjects, selected on the validation split only, then run once on the test split -> metrics with
bootstrap CIs -> the run folder's report.

What differs between volume heads (:class:`~braindino.downstream.volume.VolumeKind`) and
segmentation (:class:`~braindino.downstream.segmentation.kind.SegmentationKind`) is a *kind*
plugged into this one loop (:class:`ModelKind`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from braindino.config import save_config
from braindino.downstream.options import SCRIPTS, ProtocolOptions, default_encoder, default_out
from braindino.downstream.report import say_data
from braindino.errors import BrainDinoError, ConfigError
from braindino.features import encoder_preprocess
from braindino.models import MaskableViT, load_encoder, random_like
from braindino.tasks import label_fraction_subjects, load_task, split_manifest

NATURAL_IMAGE = "vit_small_patch16_dinov3.lvd1689m"  # --compare natural: used when available
BASELINE_LABELS = {"random": "random_init", "natural": "natural_image"}


class ModelKind(Protocol):
    """What one kind of downstream model plugs into :func:`run_protocol`.

    ``options`` are the run's options; ``stratify`` (set by ``manifest``) is the target kind
    the splits are stratified on (``class``, ``regression``, ``survival``).
    """

    options: ProtocolOptions
    stratify: str

    def manifest(self, task: DictConfig) -> pd.DataFrame:
        """The task's manifest (one row per volume or case)."""

    def bind(self, task: DictConfig, manifest: pd.DataFrame, splits: pd.DataFrame, out: Path):
        """Remember the run's task, split manifest, subject splits and run folder."""

    def prepare(self, encoder: MaskableViT, label: str, preprocess: dict) -> Any:
        """Everything the heads of one encoder train on (computed once per encoder)."""

    def heads(self) -> list[str]:
        """The heads trained for every encoder x label fraction x seed."""

    def train_and_test(
        self, prepared: Any, head: str, keep: list[str], seed: int, tags: dict
    ) -> dict:
        """Train ``head`` on the training subjects in ``keep``, select on val, test once;
        returns the result record (``tags`` name the run in per-row outputs)."""

    def write_report(self, results: list[dict], skipped: dict[str, str]) -> dict[str, Any]:
        """Write the run folder's outputs; returns what ``metrics.json`` holds."""


def say(text: str, progress: bool) -> None:
    """One progress line on stderr (when ``progress``)."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def load_checked_task(options: ProtocolOptions, script: str) -> DictConfig:
    """The merged task config; a task ``script`` does not run is a one-line error naming the
    script that does."""
    task = load_task(options.task, options.overrides or None)
    is_knn = str(task.head) == "knn"
    runs = str(task.target) in SCRIPTS[script] and (script == "knn") == is_knn
    if not runs:
        fits = [s for s, targets in SCRIPTS.items() if str(task.target) in targets]
        other = "knn" if is_knn else next(s for s in fits if s != "knn")
        raise ConfigError(
            f"task {task.name} is a {task.target} task"
            + (" evaluated by k-NN" if is_knn else "")
            + f"; {script}.py does not run it",
            path="--task",
            fix=f"run downstream/{other}.py --task {task.name}",
        )
    return task


def encoder_list(options: ProtocolOptions) -> list[tuple[str, str]]:
    """``[(label, spec)]``: the main encoder, then the ``--compare`` baselines (``random``:
    random init of the main encoder's architecture; ``natural``: timm's natural-image DINOv3
    ViT-S/16 when its weights are available; else an encoder spec)."""
    main = options.encoder or default_encoder()
    out = [("encoder", main)]
    for spec in options.compare:
        label = BASELINE_LABELS.get(spec, spec)
        if label not in dict(out):
            out.append((label, spec))
    return out


def load_compare_encoder(spec: str, reference: MaskableViT | None) -> MaskableViT:
    """The encoder behind a spec: ``random`` is a random-init twin of the main encoder (same
    architecture and init arguments), ``natural`` timm's natural-image ViT-S/16."""
    if spec == "random" and reference is not None:
        return random_like(reference)
    return load_encoder(NATURAL_IMAGE if spec == "natural" else spec)


def run_protocol(kind: ModelKind, task: DictConfig) -> dict[str, Any]:
    """Run the protocol of ``task`` with ``kind``'s models and write the run folder; returns
    the metrics dict (also written as ``metrics.json``).

    Every encoder sees the main encoder's preprocessing, so the comparison is on the same
    slices; a ``natural`` baseline whose weights are not available is skipped and reported.
    """
    options = kind.options
    out = Path(options.out) if options.out else default_out(str(task.name))
    out.mkdir(parents=True, exist_ok=True)
    manifest = kind.manifest(task)
    say_data(manifest, options.progress)
    manifest, splits = split_manifest(manifest, task, out / "splits.csv", kind.stratify)
    kind.bind(task, manifest, splits, out)
    fractions = [float(f) for f in (options.label_fractions or task.label_fractions)]
    save_config(
        OmegaConf.create({"task": OmegaConf.to_container(task), "run": options.as_dict()}),
        out / "config.yaml",
    )
    results: list[dict] = []
    skipped: dict[str, str] = {}
    reference: MaskableViT | None = None
    reference_preprocess: dict = {}
    for label, spec in encoder_list(options):
        say(f"[{task.name}] encoder {label}: {spec}", options.progress)
        try:
            encoder = load_compare_encoder(spec, reference)
        except BrainDinoError as exc:
            if spec != "natural":
                raise
            skipped[label] = str(exc)
            say(f"  skipped {label}: not available ({exc})", options.progress)
            continue
        if reference is None:
            reference = encoder
            reference_preprocess = OmegaConf.to_container(  # type: ignore[assignment]
                encoder_preprocess(encoder, options.preprocess or None), resolve=True
            )
        prepared = kind.prepare(encoder, label, reference_preprocess)
        for head in kind.heads():
            for fraction in fractions:
                for seed in options.seeds:
                    keep = label_fraction_subjects(splits, fraction, seed)
                    tags = {"encoder": label, "fraction": fraction, "seed": int(seed)}
                    record = kind.train_and_test(prepared, head, keep, int(seed), tags)
                    results.append({**tags, "encoder_spec": spec, **record})
    return kind.write_report(results, skipped)
