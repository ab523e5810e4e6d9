"""Encoder export (timm-compatible safetensors + config.json) and load_encoder."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file

from braindino.errors import BrainDinoError
from braindino.models import create_backbone, load_encoder, random_like, save_encoder

ARCH = "vit_micro_patch16_dinov3"
PREPROCESSING = {"orientation": "RAS", "normalise": "robust_zscore", "slice_size": 224}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    backbone = create_backbone(ARCH, drop_path_rate=0.1).eval()
    with torch.no_grad():  # move away from init so a wrong load could not pass by accident
        for param in backbone.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    out = tmp_path_factory.mktemp("export") / "encoder"
    save_encoder(backbone, out, arch=ARCH, extra={"preprocessing": PREPROCESSING})
    return backbone, out


def test_export_writes_timm_keys_and_a_config(exported):
    backbone, out = exported
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["arch"] == ARCH and config["timm_name"] == "vit_small_patch16_dinov3"
    assert (config["embed_dim"], config["depth"], config["num_heads"]) == (96, 4, 2)
    assert (config["patch_size"], config["num_register_tokens"], config["in_chans"]) == (16, 4, 1)
    assert config["img_size"] == 224
    assert config["extra"]["preprocessing"] == PREPROCESSING
    assert config["train_kwargs"] == {"drop_path_rate": 0.1}
    assert "drop_path_rate" not in config["timm_kwargs"]
    weights = load_file(str(out / "model.safetensors"))
    reference = timm.create_model(config["timm_name"], **config["timm_kwargs"])
    assert set(weights) == set(reference.state_dict())
    assert "mask_token" not in weights
    assert torch.equal(weights["blocks.2.mlp.fc1.weight"], backbone.vit.blocks[2].mlp.fc1.weight)


def test_round_trip_gives_identical_features(exported):
    backbone, out = exported
    loaded = load_encoder(out)
    assert not loaded.training and loaded.arch == ARCH
    assert loaded.extra["preprocessing"] == PREPROCESSING
    assert loaded.source.startswith("export:")
    x = torch.randn(2, 1, 96, 112)
    with torch.no_grad():
        expected = backbone.get_intermediate_layers(x, blocks=2)
        got = loaded.get_intermediate_layers(x, blocks=2)
    for exp, new in zip(expected, got):
        for key in ("cls", "registers", "patches"):
            assert torch.equal(exp[key], new[key])
    assert load_encoder(out / "model.safetensors").source == loaded.source


def test_plain_timm_loads_the_export(exported):
    backbone, out = exported
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    model = timm.create_model(
        config["timm_name"],
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
        **config["timm_kwargs"],
    ).eval()
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        ours = backbone.forward_features(x)
        tokens = model.forward_features(x)
        cls = model(x)
    torch.testing.assert_close(tokens[:, 0], ours["cls"])
    torch.testing.assert_close(tokens[:, 1:5], ours["registers"])
    torch.testing.assert_close(tokens[:, 5:], ours["patches"])
    torch.testing.assert_close(cls, ours["cls"])


def test_random_baseline_is_reproducible_by_seed():
    x = torch.randn(1, 1, 64, 64)
    first, again, other = (load_encoder(f"random:{ARCH}", seed=s) for s in (0, 0, 1))
    with torch.no_grad():
        assert torch.equal(first(x), again(x))
        assert not torch.allclose(first(x), other(x))
    assert first.source == f"random:{ARCH}:seed=0" != other.source
    assert not first.training


def test_load_errors_name_the_file_and_the_fix(exported, tmp_path):
    _, out = exported
    with pytest.raises(BrainDinoError, match="encoder not found"):
        load_encoder(tmp_path / "nowhere")
    with pytest.raises(BrainDinoError, match=r"no config\.json"):
        load_encoder(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BrainDinoError, match="not valid JSON"):
        load_encoder(broken)
    # config of one architecture next to weights of another
    other = tmp_path / "other"
    save_encoder(create_backbone("vit_tiny_patch16_dinov3", depth=1), other)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "config.json").write_text((out / "config.json").read_text(encoding="utf-8"))
    (mixed / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(BrainDinoError, match=r"mixed/model\.safetensors: weights do not match"):
        load_encoder(mixed)
    # same architecture, other weights: the recorded SHA-256 catches the swap
    sibling = save_encoder(create_backbone(ARCH), tmp_path / "sibling")
    (mixed / "model.safetensors").write_bytes((sibling / "model.safetensors").read_bytes())
    with pytest.raises(BrainDinoError, match="SHA-256"):
        load_encoder(mixed)
    with pytest.raises(BrainDinoError, match="unknown backbone"):
        load_encoder("random:vit_nonexistent")


def test_hub_encoder_offline_fails_with_one_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BrainDinoError) as info:
        load_encoder("vit_small_patch16_dinov3.lvd1689m")
    assert "network" in str(info.value) and "\n" not in str(info.value)


def test_random_like_keeps_the_init_arguments_and_draws_new_weights():
    """The --compare random baseline: same architecture and LayerScale init as the encoder."""
    encoder = create_backbone(ARCH, img_size=64, init_values=1.0).eval()
    twin = random_like(encoder, seed=3)
    assert twin.timm_kwargs == encoder.timm_kwargs
    gammas = [p for n, p in twin.named_parameters() if n.endswith("gamma_1")]
    assert gammas and all(torch.all(g == 1.0) for g in gammas)
    assert not torch.equal(
        twin.vit.blocks[0].attn.qkv.weight, encoder.vit.blocks[0].attn.qkv.weight
    )
    assert torch.equal(random_like(encoder, seed=3).vit.cls_token, twin.vit.cls_token)
    with torch.no_grad():  # LayerScale 1 lets the CLS token see the image (1e-5 would not)
        cls = twin(torch.randn(4, 1, 64, 64))
    assert torch.cdist(cls, cls).max() > 1e-2
