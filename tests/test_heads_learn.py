"""Every downstream head learns through the scripts' protocol on synthetic-cohort images.

The features come from a random-init micro ViT with LayerScale 1 (a random projection of the
slices: it carries image contrast, nothing learned), so what is tested is the head and the
protocol, not an encoder. The label each head must learn is carried by the images' contrast: the
MRI sequence of BraTS-like volumes (T1, T1c, T2, FLAIR) as a class (mean-pool and attention heads),
as a number (regression head) and as a survival time (Cox head). Chance levels: AUC / C-index 0.5,
and for regression the MAE of predicting the test targets' mean. The floors were measured on
other cohort seeds (bench/RESULTS.md, "Every head learns") and are set well below them.

With the demo-scale encoders the subtler synthetic effects (atrophy for age and diagnosis, lesion
age for stroke) are NOT carried by the frozen features; that is recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from braindino.downstream.cli import main

SEQUENCES = ("T1", "T1c", "T2", "FLAIR")
COHORT_SEED = 5
FAST = ["--feature", "patch_mean", "--set", "slices=16", "--preprocess", "spacing=4.0",
        "--preprocess", "slices.size=32", "--bootstrap", "50", "--quiet", "--label-fraction", "1",
        "--seeds", "0,1,2"]  # fmt: skip


@pytest.fixture(scope="module")
def cohort(make_cohort) -> Path:
    """24 BraTS-like subjects (96 volumes) in their native layout."""
    return make_cohort({"brats2021": 24}, seed=COHORT_SEED)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A random-init micro ViT with LayerScale 1, exported like a pretrained encoder."""
    from braindino.models import create_backbone, save_encoder

    torch.manual_seed(0)
    backbone = create_backbone("vit_micro_patch16_dinov3", img_size=32, init_values=1.0)
    return save_encoder(backbone.eval(), tmp_path_factory.mktemp("encoder") / "random_ls1")


@pytest.fixture(scope="module")
def sequence_table(cohort) -> pd.DataFrame:
    """One row per volume: subject, image, sequence, and a number the contrast carries: 0 for the
    T1-weighted pair (T1 and T1c look alike, the cohort's hard pair), 1 for T2, 2 for FLAIR."""
    truth = pd.read_csv(cohort / "BraTS2021" / "truth.csv", dtype={"subject": str})
    folder = cohort / "BraTS2021"
    rows = [
        {"subject": row["subject"], "image": str(folder / row[f"file_{seq}"]), "sequence": seq}
        for _, row in truth.iterrows()
        for seq in SEQUENCES
    ]
    table = pd.DataFrame(rows)
    return table.assign(level=table["sequence"].map({"T1": 0, "T1c": 0, "T2": 1, "FLAIR": 2}))


def _run(family: str, argv: list[str], out: Path) -> dict:
    assert main(family, [*argv, "--out", str(out), *FAST]) == 0
    return json.loads((out / "metrics.json").read_text())


def _mean(metrics: dict, name: str) -> float:
    value = float(np.mean([r["metrics"][name]["value"] for r in metrics["results"]]))
    print(f"{metrics['task']} {name} mean over seeds: {value:.3f}")  # shown with pytest -s
    return value


@pytest.mark.parametrize("head", ["mean_mlp", "attention"])
def test_classification_heads_learn_the_sequence(cohort, encoder, tmp_path, head):
    root = cohort / "BraTS2021"
    argv = ["--task", "brats_sequence", "--encoder", str(encoder), "--head", head,
            "--data-root", str(root), "--cache", str(tmp_path.parent / "f")]  # fmt: skip
    metrics = _run("classify", argv, tmp_path / head)
    assert _mean(metrics, "macro_auc") >= 0.75  # chance 0.5; measured 0.90-0.92 (seeds 7, 8)
    assert _mean(metrics, "balanced_accuracy") >= 0.45  # chance 0.25; measured 0.60-0.68


def test_regression_head_learns_an_image_borne_number(encoder, sequence_table, tmp_path):
    table = sequence_table.assign(target=sequence_table["level"] * 10.0)
    table.to_csv(tmp_path / "manifest.csv", index=False)
    argv = ["--task", "brain_age", "--encoder", str(encoder), "--data-root",
            str(tmp_path / "manifest.csv"), "--cache", str(tmp_path.parent / "f")]  # fmt: skip
    metrics = _run("regress", argv, tmp_path / "run")
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    for _, part in predictions.groupby("seed"):
        target = part["target"].to_numpy(float)
        chance = np.mean(np.abs(target - target.mean()))
        mae = np.mean(np.abs(part["prediction"].to_numpy(float) - target))
        print(f"regression seed MAE {mae:.2f} vs test-mean MAE {chance:.2f}")
        assert mae <= 0.85 * chance  # measured 0.63-0.67 (cohort seeds 7, 8)
    assert _mean(metrics, "r2") >= 0.2


def test_cox_head_learns_an_image_borne_survival_time(encoder, sequence_table, tmp_path):
    rng = np.random.default_rng(0)
    time = 300.0 * (3 - sequence_table["level"]) + rng.uniform(0, 50, len(sequence_table))
    event = (rng.uniform(size=len(sequence_table)) < 0.8).astype(int)  # 20 % censored
    sequence_table.assign(time=time, event=event).to_csv(tmp_path / "manifest.csv", index=False)
    argv = ["--task", "upenn_cox", "--encoder", str(encoder), "--data-root",
            str(tmp_path / "manifest.csv"), "--cache", str(tmp_path.parent / "f")]  # fmt: skip
    metrics = _run("survival", argv, tmp_path / "run")
    assert _mean(metrics, "c_index") >= 0.58  # chance 0.5; measured 0.645-0.648 (seeds 7, 8)
