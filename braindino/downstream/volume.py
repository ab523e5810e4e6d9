"""Volume heads as a kind of the protocol (``classify``, ``regress``, ``survival``, ``knn``).

One sample is one volume (or one visit's images): its slices are encoded once into the feature
cache; a head (attention, mean-pool MLP, regression, Cox) is trained on those features and
selected on validation, or the k-NN classifier scores the mean slice features. With ``--adapter
lora`` the encoder trains with the head instead, on slices encoded on the fly
(``downstream.adapted``). Per-subject test predictions and (attention heads) per-slice weights
go into the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from braindino.downstream.adapted import (
    NO_CACHE,
    SampleSlices,
    VolumeSlices,
    adapted_model,
    manifest_slices,
)
from braindino.downstream.options import RunOptions
from braindino.downstream.protocol import load_checked_task, run_protocol, say
from braindino.downstream.report import write_report
from braindino.downstream.run_folder import mean_ci
from braindino.downstream.samples import (
    SampleFeatures,
    head_data,
    manifest_features,
    pooled,
    split_rows,
)
from braindino.downstream.target_kinds import TargetKind
from braindino.errors import ConfigError
from braindino.features import FeatureCache
from braindino.heads import build_head, fit_head, predict
from braindino.metrics import knn_accuracy
from braindino.models import MaskableViT
from braindino.tasks import cache_dir, load_manifest

KNN_KS = (1, 3, 5, 10, 20, 50)
TRUTH_COLUMNS = ("subject", "dataset", "split", "label", "target", "value", "time", "event")


class VolumeKind:
    """Volume heads on cached slice features; collects predictions and attention weights."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.predictions: list[pd.DataFrame] = []
        self.attention: list[pd.DataFrame] = []

    def manifest(self, task: DictConfig) -> pd.DataFrame:
        """The task's manifest; a CSV's class labels become the task's classes."""
        self.stratify = str(task.target)
        manifest = load_manifest(task, self.options.data_root, cohort=self.options.cohort)
        if task.target == "class" and not task.labels.classes:
            task.labels.classes = list(manifest.attrs["classes"])
        return manifest

    def bind(self, task: DictConfig, manifest: pd.DataFrame, splits: pd.DataFrame, out: Path):
        """Remember the run; checks that every split can support the task's metrics."""
        self.task, self.manifest_rows, self.out = task, manifest, out
        self.rows = split_rows(manifest, str(task.target))
        self.head_options = OmegaConf.to_container(task.head_options, resolve=True) or {}

    def prepare(
        self, encoder: MaskableViT, label: str, preprocess: dict
    ) -> SampleFeatures | SampleSlices:
        """Slice features of every manifest row (from the feature cache when there); with an
        adapter, the preprocessed slices themselves (the encoder trains: no cache)."""
        options = self.options
        slices = "all" if str(self.task.slices) == "all" else int(self.task.slices)
        read = (encoder, self.manifest_rows, options.feature, preprocess, slices, options.progress)
        if options.adapter != "none":
            say(f"  feature cache: {NO_CACHE}", options.progress)
            return manifest_slices(*read)
        return manifest_features(FeatureCache(options.cache or cache_dir() / "features"), *read)

    def heads(self) -> list[str]:
        """``--head`` or the task's head (one per run)."""
        return [self.options.head or str(self.task.head)]

    def train_and_test(
        self, prepared: SampleFeatures, head: str, keep: list[str], seed: int, tags: dict
    ) -> dict:
        """One head (or k-NN) trained on the kept training subjects and tested once."""
        subjects = self.manifest_rows["subject"].astype(str).to_numpy()
        train = self.rows["train"][np.isin(subjects[self.rows["train"]], keep)]
        if head == "knn":
            record, predicted = self._knn(prepared, train, seed)
        else:
            record, predicted, weights = self._head(prepared, head, train, seed)
            if weights is not None:
                self.attention.append(weights.assign(**tags))
        manifest = self.manifest_rows
        columns = [c for c in TRUTH_COLUMNS if c in manifest and manifest[c].notna().any()]
        truth = manifest.loc[predicted.index, columns]
        self.predictions.append(pd.concat([truth, predicted], axis=1).assign(**tags))
        name, stats = next(iter(record["metrics"].items()))
        say(
            f"  {tags['encoder']} fraction={tags['fraction']:g} seed={seed}: "
            f"{name}={stats['value']:.4f}",
            self.options.progress,
        )
        return record

    def _head(
        self, samples: SampleFeatures | SampleSlices, head_name: str, train: np.ndarray, seed: int
    ) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
        options, manifest, rows = self.options, self.manifest_rows, self.rows
        target = TargetKind(self.task)
        target.fit_targets(manifest.iloc[train])
        val_rows = rows["val"] if rows["val"].size else train  # none: select on training loss
        adapted = isinstance(samples, SampleSlices)
        make_data = VolumeSlices if adapted else head_data
        sets = {
            name: make_data(samples, part, target.targets(manifest.iloc[part]))
            for name, part in (("train", train), ("val", val_rows), ("test", rows["test"]))
        }
        metric_fn, maximize = target.selection(manifest.iloc[val_rows])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = build_head(
                head_name, samples.width, target.num_classes(), **dict(self.head_options)
            )
        lr = options.lr or target.default_lr()
        model = adapted_model(samples, head, options, seed) if adapted else head
        groups = model.parameter_groups(lr, options.adapter_lr) if adapted else None
        eval_batch = options.batch_size if adapted else 256  # volumes per pass: slices are big
        history = fit_head(
            model,
            sets["train"],
            sets["val"],
            epochs=options.epochs,
            lr=lr,
            batch_size=len(train) if target.target == "survival" else options.batch_size,
            seed=seed,
            patience=options.patience,
            metric_fn=metric_fn,
            maximize=maximize,
            eval_batch_size=eval_batch,
            param_groups=groups,
        )
        outputs = predict(model, sets["test"], eval_batch)  # the one test evaluation
        test_frame = manifest.iloc[rows["test"]]
        predicted = target.predictions(outputs, test_frame)
        record = {
            "head": head_name,
            "n_train": len(train),
            "n_val": int(rows["val"].size),
            "n_test": int(rows["test"].size),
            "metrics": target.test_metrics(test_frame, predicted, options.bootstrap, seed),
            "history": history.to_dict(),
            "scaler": target.scaler.to_dict() if target.scaler is not None else None,
        }
        if adapted:
            record["parameters"] = model.counts()
        attention = None
        if isinstance(outputs, dict) and "attention" in outputs:
            weights = outputs["attention"].double().numpy()
            attention = attention_table(weights, samples, rows["test"])
            attention["subject"] = manifest["subject"].to_numpy()[attention.pop("row").to_numpy()]
        return record, predicted, attention

    def _knn(
        self, samples: SampleFeatures, train: np.ndarray, seed: int
    ) -> tuple[dict, pd.DataFrame]:
        """k-NN accuracy (k in 1..50) of the mean slice features, neighbours from ``train``
        only, scored on the test split; bootstrap CIs over test subjects."""
        manifest, test = self.manifest_rows, self.rows["test"]
        targets = manifest["target"].to_numpy()
        train_x, test_x = pooled(samples, train), pooled(samples, test)
        train_y, test_y = targets[train].astype(int), targets[test].astype(int)
        correct = {k: np.zeros(len(test_y)) for k in KNN_KS}
        for i in range(len(test_y)):
            one = knn_accuracy(train_x, train_y, test_x[i : i + 1], test_y[i : i + 1], KNN_KS)
            for k in KNN_KS:
                correct[k][i] = one[k]
        nan = {"value": float("nan"), "low": float("nan"), "high": float("nan")}
        metrics = {
            f"knn_accuracy@{k}": (
                mean_ci(correct[k], self.options.bootstrap, seed) if k <= len(train_y) else nan
            )
            for k in KNN_KS
        }
        predicted = pd.DataFrame(
            {f"correct_k{k}": correct[k] for k in KNN_KS if k <= len(train_y)},
            index=manifest.index[test],
        )
        record = {"head": "knn", "n_train": len(train), "n_val": int(self.rows["val"].size)}
        record.update({"n_test": len(test_y), "metrics": metrics})
        return record, predicted

    def write_report(self, results: list[dict], skipped: dict[str, str]) -> dict[str, Any]:
        """``metrics.json``, ``predictions.csv``, ``attention.csv``, plots and ``report.md``."""
        return write_report(
            self.out,
            self.task,
            self.options,
            self.manifest_rows,
            results,
            pd.concat(self.predictions, ignore_index=True),
            pd.concat(self.attention, ignore_index=True) if self.attention else None,
            TargetKind(self.task),
            skipped,
        )


def attention_table(
    weights: np.ndarray, samples: SampleFeatures | SampleSlices, rows: np.ndarray
) -> pd.DataFrame:
    """One row per test slice: manifest row, slice index, relative position, z and weight."""
    parts = []
    for i, row in enumerate(rows):
        count = len(samples.z[row])
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


def run_downstream(options: RunOptions) -> dict[str, Any]:
    """Run the volume protocol for ``options`` (``downstream/classify.py``, ``regress.py``,
    ``survival.py``, ``knn.py``) and write the run folder; returns ``metrics.json``'s content."""
    task = load_checked_task(options, options.script)
    if options.adapter != "none" and (options.head or str(task.head)) == "knn":
        raise ConfigError(
            f"k-NN trains nothing, so --adapter {options.adapter} has nothing to train with",
            path="--adapter",
            fix="leave --adapter out for knn.py, or use classify.py with a head",
        )
    return run_protocol(VolumeKind(options), task)
