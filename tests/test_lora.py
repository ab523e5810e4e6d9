"""LoRA adapters on the encoder (``--adapter lora``): the adapted encoder starts as the frozen
one, its trainable parameters are rank x (in + out) per adapted layer, validation selection keeps
the adapters with the head, and a classify run trains adapters and head without the feature
cache, leaving the base weights alone; bad options fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import braindino.downstream.adapted as adapted_module
import braindino.downstream.volume as runner
import braindino.features.cache as feature_cache
from braindino.downstream.adapted import AdaptedEncoderHead, SampleSlices, VolumeSlices
from braindino.downstream.cli import main, parse_options
from braindino.downstream.options import RunOptions
from braindino.errors import BrainDinoError
from braindino.features import encode_slices, forward_slice_features
from braindino.heads import build_head, fit_head
from braindino.models import adapter_counts, add_lora, load_encoder

pytest.importorskip("peft")

ENCODER = "random:vit_micro_patch16_dinov3"  # embed 96, 4 blocks, qkv 96->288, proj 96->96
# the micro ViT's own parameters by hand: patch embed 16*16*96 + 96, cls 96, 4 registers 4*96,
# final norm 2*96; per block: 2 norms 4*96, qkv 96*288 (no bias), proj 96*96 + 96,
# fc1 96*384 + 384, fc2 384*96 + 96, LayerScale 2*96
BLOCK = 4 * 96 + 96 * 288 + 96 * 96 + 96 + 96 * 384 + 384 + 384 * 96 + 96 + 2 * 96
MICRO_PARAMETERS = 16 * 16 * 96 + 96 + 96 + 4 * 96 + 2 * 96 + 4 * BLOCK  # 472,320


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENCODER)


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_adapted_encoder_starts_exactly_as_the_frozen_one(encoder):
    images = np.random.default_rng(0).standard_normal((5, 32, 32)).astype(np.float32)
    frozen = encode_slices(encoder, images)  # the cached path's computation, plain encoder
    adapted = add_lora(encoder, rank=4, alpha=8, targets=["qkv", "proj", "fc1", "fc2"]).eval()
    with torch.no_grad():
        got = forward_slice_features(adapted, torch.from_numpy(images), "cls+patch_mean")
    expected = np.concatenate([frozen["cls"], frozen["patch_mean"]], axis=1)
    assert np.array_equal(got.numpy(), expected)  # B = 0 at initialisation: not one bit differs
    # the adapters are in the forward path: a non-zero B changes the features (by little: the
    # random encoder's LayerScale is 1e-5)
    with torch.no_grad():
        adapted.vit.blocks[0].attn.qkv.lora_B["default"].weight.fill_(0.1)
        moved = forward_slice_features(adapted, torch.from_numpy(images), "cls")
    assert np.abs(moved.numpy() - frozen["cls"]).max() > 1e-6


def test_head_sees_each_images_frozen_features_side_by_side_with_padding(encoder):
    rng = np.random.default_rng(2)
    stacks = [rng.standard_normal((2, n, 32, 32)).astype(np.float32) for n in (3, 2)]  # M = 2
    samples = SampleSlices(stacks, [np.arange(3), np.arange(2)], encoder, "cls", 2 * 96)
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, features, padding_mask):
            seen.append((features, padding_mask))
            return {}

    model = AdaptedEncoderHead(add_lora(encoder, rank=2), Spy(), "cls").eval()
    with torch.no_grad():
        model(*VolumeSlices(samples, np.arange(2), torch.zeros(2)).inputs(torch.arange(2), "cpu"))
    ((features, mask),) = seen
    assert mask.tolist() == [[False, False, False], [False, False, True]]
    for v, stack in enumerate(stacks):
        n = stack.shape[1]
        expected = np.concatenate([encode_slices(encoder, image)["cls"] for image in stack], 1)
        assert np.array_equal(features[v, :n].numpy(), expected)
    assert not features[1, 2].any()  # the padding slice


def test_trainable_parameters_are_rank_times_in_plus_out_per_adapted_layer(encoder):
    cases = {
        (4, ("qkv", "proj")): 4 * ((4 * (96 + 288)) + 4 * (96 + 96)),  # 4 blocks x 2 layers
        (2, ("fc2",)): 4 * (2 * (384 + 96)),
        (8, ("qkv",)): 4 * (8 * (96 + 288)),
    }
    for (rank, targets), expected in cases.items():
        adapted = add_lora(encoder, rank=rank, targets=targets)
        trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
        counts = adapter_counts(adapted)
        assert trainable == counts["adapter"] == expected, (rank, targets)
        assert counts["encoder"] == MICRO_PARAMETERS
        assert counts["adapter_percent"] == pytest.approx(100 * expected / MICRO_PARAMETERS)
    assert all(p.requires_grad for p in encoder.vit.parameters())  # the original: untouched


def test_selection_restores_the_best_epochs_adapters_with_the_head(encoder):
    rng = np.random.default_rng(1)
    images = [rng.standard_normal((1, 3 + i % 2, 32, 32)).astype(np.float32) for i in range(4)]
    samples = SampleSlices(images, [np.arange(3 + i % 2) for i in range(4)], encoder, "cls", 96)
    data = VolumeSlices(samples, np.arange(4), torch.tensor([0, 1, 0, 1]))
    torch.manual_seed(0)
    model = AdaptedEncoderHead(add_lora(encoder, rank=2), build_head("mean_mlp", 96, 2), "cls")
    seen = []
    scores = iter([0.9, 0.5, 0.1])  # epoch 1 is the best

    def metric(outputs, targets):
        seen.append({**lora_weights(model), **lora_weights(model.head)})
        return next(scores)

    groups = model.parameter_groups(lr=1e-2, adapter_lr=1e-2)
    history = fit_head(
        model, data, data, epochs=3, batch_size=2, metric_fn=metric, maximize=True,
        patience=None, param_groups=groups,
    )  # fmt: skip
    assert history.best_epoch == 1
    restored = lora_weights(model)
    assert restored and all(torch.equal(restored[k], seen[0][k]) for k in restored)
    assert any(not torch.equal(restored[k], seen[2][k]) for k in restored)  # it did move on
    assert any(float(w.abs().max()) > 0 for k, w in restored.items() if "lora_B" in k)


@pytest.fixture(scope="module")
def adni(tmp_path_factory) -> Path:
    from braindino.synth.generate import generate_cohort

    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(
        out, subjects={"adni": 15}, seed=0, pool_subjects=0, baseline=False, progress=False
    )
    return out / "ADNI"


def test_classify_with_lora_trains_adapters_not_the_encoder_and_skips_the_cache(
    adni, tmp_path, monkeypatch, capsys
):
    made, fitted, encoded = [], [], []
    add, fit = adapted_module.add_lora, runner.fit_head

    def record_add(base, *a, **k):
        made.append((base, add(base, *a, **k)))
        return made[-1][1]

    def record_fit(model, *a, **k):
        start = lora_weights(model)
        history = fit(model, *a, **k)
        fitted.append((model, start))
        return history

    monkeypatch.setattr(adapted_module, "add_lora", record_add)
    monkeypatch.setattr(runner, "fit_head", record_fit)
    monkeypatch.setattr(feature_cache, "encode_volume", lambda *a, **k: encoded.append(a))
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["--task", "adni", "--encoder", ENCODER, "--data-root", str(adni), "--out", str(out),
            "--cache", str(cache), "--set", "slices=4", "--preprocess", "spacing=4.0",
            "--preprocess", "slices.size=32", "--epochs", "2", "--bootstrap", "20",
            "--batch-size", "8", "--label-fraction", "1", "--adapter", "lora",
            "--lora-rank", "2", "--adapter-lr", "1e-2"]  # fmt: skip
    assert main("classify", argv) == 0
    assert "feature cache: not used" in capsys.readouterr().err
    assert encoded == [] and not cache.exists()  # no cache read, written or even created
    ((base, adapted),), ((model, start),) = made, fitted
    assert model.encoder is adapted
    changed = [k for k, w in lora_weights(model).items() if not torch.equal(w, start[k])]
    assert any("lora_A" in k for k in changed) and any("lora_B" in k for k in changed)
    fresh = load_encoder(ENCODER).state_dict()  # the same seeded random init, never trained
    assert all(torch.equal(w, fresh[k]) for k, w in base.state_dict().items())
    for name, weight in adapted.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(weight, fresh[name.replace(".base_layer", "")]), name
    metrics = json.loads((out / "metrics.json").read_text())
    adapter = 2 * (96 + 288 + 96 + 96) * 4  # rank 2 on qkv and proj of 4 blocks
    head = sum(p.numel() for p in build_head("attention", 96, 3).parameters())
    counts = metrics["adapter"]["parameters"]["encoder"]
    assert (counts["adapter"], counts["head"], counts["encoder"]) == (
        adapter, head, MICRO_PARAMETERS
    )  # fmt: skip
    assert counts["trainable"] == adapter + head
    assert counts["adapter_percent"] == pytest.approx(100 * adapter / MICRO_PARAMETERS)
    assert metrics["results"][0]["parameters"] == counts
    assert metrics["feature_cache"].startswith("not used")
    report = (out / "report.md").read_text()
    assert "LoRA adapters (peft), rank 2" in report and "feature cache: not used" in report
    assert f"adapters {adapter:,}" in report


def test_bad_adapter_options_fail_in_one_line(encoder):
    for argv, flag in (
        (["--adapter", "lora", "--lora-rank", "0"], "--lora-rank"),
        (["--adapter", "lora", "--lora-alpha", "0"], "--lora-alpha"),
        (["--adapter", "lora", "--lora-dropout", "1"], "--lora-dropout"),
        (["--adapter", "dora"], "--adapter"),
    ):
        with pytest.raises(BrainDinoError) as error:
            parse_options("classify", argv)
        assert error.value.path == flag
    with pytest.raises(BrainDinoError, match=r"unknown LoRA target module.*qkvv") as error:
        add_lora(encoder, targets=["qkvv"])
    assert error.value.path == "--lora-targets" and "fc1, fc2, proj, qkv" in str(error.value)
    with pytest.raises(BrainDinoError, match="both train the encoder"):
        parse_options("segment", ["--adapter", "lora", "--unfreeze-encoder"])
    with pytest.raises(BrainDinoError, match="k-NN trains nothing"):
        runner.run_downstream(RunOptions(task="knn", script="knn", adapter="lora"))
    assert parse_options("classify", ["--lora-targets", "qkv,fc1"]).lora_targets == ["qkv", "fc1"]


@pytest.mark.parametrize("script", ["regress", "survival"])
def test_regress_and_survival_train_with_adapters(adni, tmp_path, script):
    import pandas as pd

    images = sorted(adni.rglob("*.nii.gz"))
    frame = pd.DataFrame({"subject": [f"s{i:02d}" for i in range(len(images))], "image": images})
    rng = np.random.default_rng(0)
    if script == "regress":
        frame["target"], task = np.linspace(40, 85, len(images)), "brain_age"
    else:
        frame["time"] = rng.integers(100, 1500, len(images)).astype(float)
        frame["event"], task = np.array([1, 0, 1] * 5)[: len(images)], "upenn_cox"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "run"
    argv = ["--task", task, "--encoder", ENCODER, "--data-root", str(tmp_path / "manifest.csv"),
            "--out", str(out), "--set", "slices=4", "--preprocess", "spacing=4.0",
            "--preprocess", "slices.size=32", "--epochs", "2", "--bootstrap", "20",
            "--label-fraction", "1", "--adapter", "lora", "--lora-targets", "qkv",
            "--quiet"]  # fmt: skip
    assert main(script, argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (result,) = metrics["results"]
    assert result["parameters"]["adapter"] == 8 * (96 + 288) * 4  # default rank 8, qkv only
    primary = result["metrics"][metrics["primary_metric"]]["value"]
    assert primary is not None and np.isfinite(primary)


def test_segment_with_lora_trains_adapters_and_the_decoder_only(tmp_path, monkeypatch):
    import braindino.downstream.segmentation.kind as segment_kind
    from braindino.synth.generate import generate_cohort

    generate_cohort(
        tmp_path, subjects={"brats2021": 14}, seed=0, pool_subjects=0, baseline=False,
        progress=False,
    )  # fmt: skip
    made, add = [], segment_kind.add_lora
    monkeypatch.setattr(segment_kind, "add_lora", lambda *a: made.append(add(*a)) or made[-1])
    out = tmp_path / "run"
    argv = ["--task", "brats2021", "--data-root", str(tmp_path / "BraTS2021"), "--out", str(out),
            "--cache", str(tmp_path / "slices"), "--encoder", ENCODER, "--preprocess",
            "spacing=4.0", "--preprocess", "slices.size=32", "--epochs", "2",
            "--steps-per-epoch", "2", "--batch-size", "4", "--width", "16", "--head", "decoder",
            "--label-fraction", "1", "--bootstrap", "20", "--no-predictions", "--quiet",
            "--adapter", "lora", "--lora-rank", "2", "--adapter-lr", "1e-2"]  # fmt: skip
    assert main("segment", argv) == 0
    (adapted,) = made
    weights = lora_weights(adapted)
    assert any(float(w.abs().max()) > 0 for k, w in weights.items() if "lora_B" in k)  # trained
    fresh = load_encoder(ENCODER).state_dict()
    for name, weight in adapted.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(weight, fresh[name.replace(".base_layer", "")]), name
    metrics = json.loads((out / "metrics.json").read_text())
    counts = metrics["adapter"]["parameters"]["encoder"]
    assert (counts["adapter"], counts["encoder"]) == (
        2 * (96 + 288 + 96 + 96) * 4,
        MICRO_PARAMETERS,
    )
    assert counts["trainable"] == metrics["results"][0]["trainable_parameters"]
    assert "LoRA adapters (peft), rank 2" in (out / "report.md").read_text()
