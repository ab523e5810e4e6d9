"""``run_downstream``: the frozen-transfer protocol of one task, end to end.

Manifest -> saved subject-level splits -> cached features per encoder -> for every label
fraction x seed: a head trained on that share of the training subjects, selected on the
validation split only, then run once on the test split -> metrics with bootstrap CIs,
predictions, attention weights -> the run folder's report.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from braindino.config import save_config
from braindino.downstream.families import Family
from braindino.downstream.options import FAMILIES, RunOptions, default_encoder, default_out
from braindino.downstream.report import say_data, write_report
from braindino.downstream.samples import (
    SampleFeatures,
    head_data,
    manifest_features,
    pooled,
    split_rows,
)
from braindino.errors import BrainDinoError, ConfigError
from braindino.features import FeatureCache, encoder_preprocess
from braindino.heads import build_head, fit_head, predict
from braindino.metrics import knn_accuracy
from braindino.models import MaskableViT, load_encoder, random_like
from braindino.tasks import (
    cache_dir,
    label_fraction_subjects,
    load_manifest,
    load_task,
    split_manifest,
)

KNN_KS = (1, 3, 5, 10, 20, 50)
NATURAL_IMAGE = "vit_small_patch16_dinov3.lvd1689m"  # --compare natural: used when available
BASELINE_LABELS = {"random": "random_init", "natural": "natural_image"}


def _say(text: str, progress: bool) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def load_run_task(options: RunOptions):
    """The merged task config, checked against the script's family."""
    task = load_task(options.task, options.overrides or None)
    allowed = FAMILIES[options.family]
    is_knn = str(task.head) == "knn"
    if task.target not in allowed or (options.family == "knn") != is_knn:
        fits = [f for f, targets in FAMILIES.items() if task.target in targets]
        script = "knn" if is_knn else next(f for f in fits if f != "knn")
        raise ConfigError(
            f"task {task.name} is a {task.target} task"
            + (" evaluated by k-NN" if is_knn else "")
            + f"; {options.family}.py does not run it",
            path="--task",
            fix=f"run downstream/{script}.py --task {task.name}",
        )
    return task


def encoder_list(options: RunOptions) -> list[tuple[str, str]]:
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


def _train_rows(manifest: pd.DataFrame, rows: np.ndarray, keep: list[str]) -> np.ndarray:
    subjects = manifest["subject"].astype(str).to_numpy()
    return rows[np.isin(subjects[rows], keep)]


def train_and_test(
    family: Family,
    head_name: str,
    head_options: dict,
    samples: SampleFeatures,
    manifest: pd.DataFrame,
    rows: dict[str, np.ndarray],
    train: np.ndarray,
    seed: int,
    options: RunOptions,
) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """Train one head on ``train`` rows, select on val, evaluate the test split once.

    Returns the result record, the test predictions and (attention heads) slice weights.
    """
    family.fit_targets(manifest.iloc[train])
    sets = {
        "train": head_data(samples, train, family.targets(manifest.iloc[train])),
        "test": head_data(samples, rows["test"], family.targets(manifest.iloc[rows["test"]])),
    }
    val_rows = rows["val"]
    if val_rows.size == 0:  # no validation split: select on the training loss
        val_rows = train
    sets["val"] = head_data(samples, val_rows, family.targets(manifest.iloc[val_rows]))
    metric_fn, maximize = family.selection(manifest.iloc[val_rows])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(head_name, samples.width, family.num_classes(), **head_options)
    batch = len(train) if family.target == "survival" else options.batch_size
    history = fit_head(
        head,
        sets["train"],
        sets["val"],
        epochs=options.epochs,
        lr=options.lr or family.default_lr(),
        batch_size=batch,
        seed=seed,
        patience=options.patience,
        metric_fn=metric_fn,
        maximize=maximize,
    )
    outputs = predict(head, sets["test"])  # the one test evaluation of this head
    test_frame = manifest.iloc[rows["test"]]
    predicted = family.predictions(outputs, test_frame)
    metrics = family.test_metrics(test_frame, predicted, options.bootstrap, seed)
    record = {
        "head": head_name,
        "n_train": len(train),
        "n_val": int(rows["val"].size),
        "n_test": int(rows["test"].size),
        "metrics": metrics,
        "history": history.to_dict(),
        "scaler": family.scaler.to_dict() if family.scaler is not None else None,
    }
    attention = None
    if isinstance(outputs, dict) and "attention" in outputs:
        attention = _attention_table(outputs["attention"].double().numpy(), samples, rows["test"])
        attention["subject"] = manifest["subject"].to_numpy()[attention.pop("row").to_numpy()]
    return record, predicted, attention


def _attention_table(
    weights: np.ndarray, samples: SampleFeatures, rows: np.ndarray
) -> pd.DataFrame:
    parts = []
    for i, row in enumerate(rows):
        count = samples.features[row].shape[0]
        parts.append(
            pd.DataFrame(
                {
                    "row": row,
                    "slice": np.arange(count),
                    "position": np.linspace(0, 1, count) if count > 1 else [0.5],
                    "z": samples.z[row][:count],
                    "weight": weights[i, :count],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def knn_result(
    samples: SampleFeatures,
    manifest: pd.DataFrame,
    rows: dict[str, np.ndarray],
    train: np.ndarray,
    options: RunOptions,
    seed: int,
) -> tuple[dict, pd.DataFrame]:
    """k-NN accuracy (k in 1..50) of the mean slice features, neighbours from ``train`` only,
    scored on the test split; bootstrap CIs over test subjects."""
    train_x, test_x = pooled(samples, train), pooled(samples, rows["test"])
    train_y = manifest["target"].to_numpy()[train].astype(int)
    test_y = manifest["target"].to_numpy()[rows["test"]].astype(int)
    correct = {k: np.zeros(len(test_y)) for k in KNN_KS}
    for i in range(len(test_y)):
        one = knn_accuracy(train_x, train_y, test_x[i : i + 1], test_y[i : i + 1], KNN_KS)
        for k in KNN_KS:
            correct[k][i] = one[k]
    metrics = {}
    for k in KNN_KS:
        if k > len(train_y):
            metrics[f"knn_accuracy@{k}"] = {"value": math.nan, "low": math.nan, "high": math.nan}
            continue
        metrics[f"knn_accuracy@{k}"] = _mean_ci(correct[k], options.bootstrap, seed)
    predicted = pd.DataFrame(
        {f"correct_k{k}": correct[k] for k in KNN_KS if k <= len(train_y)},
        index=manifest.index[rows["test"]],
    )
    record = {"head": "knn", "n_train": len(train), "n_val": int(rows["val"].size)}
    record.update({"n_test": len(test_y), "metrics": metrics})
    return record, predicted


def _mean_ci(values: np.ndarray, n: int, seed: int) -> dict[str, float]:
    from braindino.metrics import bootstrap_ci

    value, low, high = bootstrap_ci(lambda v: float(np.mean(v)), values, n=n, seed=seed)
    return {"value": value, "low": low, "high": high}


def _slices(task) -> int | str:
    return "all" if str(task.slices) == "all" else int(task.slices)


def run_downstream(options: RunOptions) -> dict[str, Any]:
    """Run the protocol for ``options`` and write the run folder; returns the metrics dict
    (also written as ``metrics.json``)."""
    task = load_run_task(options)
    encoders = encoder_list(options)
    out = Path(options.out) if options.out else default_out(str(task.name))
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(task, options.data_root, cohort=options.cohort)
    if task.target == "class" and not task.labels.classes:  # a CSV's classes: its labels
        task.labels.classes = list(manifest.attrs["classes"])
    say_data(manifest, options.progress)
    manifest, splits = split_manifest(manifest, task, out / "splits.csv", str(task.target))
    rows = split_rows(manifest, str(task.target))
    fractions = [float(f) for f in (options.label_fractions or task.label_fractions)]
    head_name = options.head or str(task.head)
    head_options = OmegaConf.to_container(task.head_options, resolve=True) or {}
    if head_name == "knn":
        head_options = {}
    save_config(
        OmegaConf.create({"task": OmegaConf.to_container(task), "run": options.as_dict()}),
        out / "config.yaml",
    )
    cache = FeatureCache(options.cache or cache_dir() / "features")
    results: list[dict] = []
    predictions, attention = [], []
    reference_preprocess: dict | None = None
    reference: MaskableViT | None = None
    skipped: dict[str, str] = {}
    for label, spec in encoders:
        _say(f"[{task.name}] encoder {label}: {spec}", options.progress)
        try:
            encoder = load_compare_encoder(spec, reference)
        except BrainDinoError as exc:
            if spec != "natural":
                raise
            skipped[label] = str(exc)
            _say(f"  skipped {label}: not available ({exc})", options.progress)
            continue
        if reference is None:
            reference = encoder
            reference_preprocess = OmegaConf.to_container(
                encoder_preprocess(encoder, options.preprocess or None), resolve=True
            )
        preprocess = options.preprocess if label == "encoder" else reference_preprocess
        samples = manifest_features(
            cache, encoder, manifest, options.feature, preprocess, _slices(task), options.progress
        )
        for fraction in fractions:
            for seed in options.seeds:
                keep = label_fraction_subjects(splits, fraction, seed)
                train = _train_rows(manifest, rows["train"], keep)
                if head_name == "knn":
                    record, predicted = knn_result(samples, manifest, rows, train, options, seed)
                    weights = None
                else:
                    record, predicted, weights = train_and_test(
                        Family(task),
                        head_name,
                        dict(head_options),
                        samples,
                        manifest,
                        rows,
                        train,
                        seed,
                        options,
                    )
                tags = {"encoder": label, "fraction": fraction, "seed": int(seed)}
                results.append({**tags, "encoder_spec": spec, **record})
                base = manifest.loc[predicted.index, _truth_columns(manifest)]
                predictions.append(pd.concat([base, predicted], axis=1).assign(**tags))
                if weights is not None:
                    attention.append(weights.assign(**tags))
                primary = next(iter(record["metrics"].items()))
                _say(
                    f"  {label} fraction={fraction:g} seed={seed}: "
                    f"{primary[0]}={primary[1]['value']:.4f}",
                    options.progress,
                )
    return write_report(
        out,
        task,
        options,
        manifest,
        results,
        pd.concat(predictions, ignore_index=True),
        pd.concat(attention, ignore_index=True) if attention else None,
        Family(task),
        skipped,
    )


def load_compare_encoder(spec: str, reference: MaskableViT | None) -> MaskableViT:
    """The encoder behind a spec: ``random`` is a random-init twin of the main encoder (same
    architecture and init arguments), ``natural`` timm's natural-image ViT-S/16."""
    if spec == "random" and reference is not None:
        return random_like(reference)
    if spec == "natural":
        return load_encoder(NATURAL_IMAGE)
    return load_encoder(spec)


def _truth_columns(manifest: pd.DataFrame) -> list[str]:
    wanted = ["subject", "dataset", "split", "label", "target", "value", "time", "event"]
    return [c for c in wanted if c in manifest.columns and manifest[c].notna().any()]
