"""Backbone (maskable timm DINOv3 ViT), its feature API, weight initialisation and the DINO head."""

from __future__ import annotations

import json

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from braindino.errors import BrainDinoError, ConfigError
from braindino.models import DINOHead, create_backbone

ARCH = "vit_micro_patch16_dinov3"


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    model = create_backbone(ARCH).eval()
    with torch.no_grad():  # a non-trivial mask token, so masking visibly matters
        model.mask_token.normal_()
    return model


def _masks(batch: int, n_patches: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(batch, n_patches, generator=gen) < 0.4
    masks[:, 0] = True
    return masks


def test_tiny_arch_is_the_dinov3_layout_scaled_down(backbone):
    assert backbone.timm_name == "vit_small_patch16_dinov3"
    assert (backbone.embed_dim, backbone.depth, backbone.num_heads) == (96, 4, 2)
    assert backbone.num_register_tokens == 4 and backbone.patch_size == (16, 16)
    assert backbone.in_chans == 1 and backbone.vit.rope is not None
    assert backbone.vit.pos_embed is None  # RoPE only, like DINOv3
    assert torch.allclose(backbone.vit.blocks[0].gamma_1, torch.full((96,), 1e-5))  # LayerScale
    assert all(block.attn.fused_attn for block in backbone.vit.blocks)  # F.sdpa attention


@pytest.mark.parametrize("size", [(224, 224), (96, 96), (160, 192)])
def test_any_crop_size_runs_through_the_same_module(backbone, size):
    x = torch.randn(3, 1, *size)
    with torch.no_grad():
        out = backbone.forward_features(x)
        raw = backbone.get_intermediate_layers(x, blocks=1, norm=False)[0]
    n_patches = (size[0] // 16) * (size[1] // 16)
    assert set(out) == {"cls", "registers", "patches"}
    assert out["cls"].shape == (3, 96)
    assert out["registers"].shape == (3, 4, 96)
    assert out["patches"].shape == (3, n_patches, 96)
    pre_norm = torch.cat([raw["cls"][:, None], raw["registers"], raw["patches"]], dim=1)
    assert pre_norm.shape == (3, 1 + 4 + n_patches, 96)
    # normed outputs: LayerNorm of the raw tokens (independent recomputation)
    ref = F.layer_norm(pre_norm.double(), (96,), eps=1e-5)
    ref = ref * backbone.vit.norm.weight.double() + backbone.vit.norm.bias.double()
    torch.testing.assert_close(out["patches"].double(), ref[:, 5:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["cls"].double(), ref[:, 0], rtol=1e-5, atol=1e-5)


def test_batch_of_crops_equals_crops_one_by_one(backbone):
    x = torch.randn(3, 1, 96, 96)
    with torch.no_grad():
        batched = backbone.forward_features(x)["patches"]
        single = torch.cat([backbone.forward_features(x[i : i + 1])["patches"] for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_bad_inputs_fail_with_clear_errors(backbone):
    with pytest.raises(BrainDinoError, match="multiple of the patch size"):
        backbone.forward_features(torch.randn(1, 1, 100, 96))
    with pytest.raises(BrainDinoError, match=r"\[B, 1, H, W\]"):
        backbone.forward_features(torch.randn(1, 3, 96, 96))
    with pytest.raises(BrainDinoError, match="masks"):
        backbone.forward_features(torch.randn(2, 1, 96, 96), masks=torch.zeros(2, 35).bool())
    with pytest.raises(BrainDinoError, match="masks"):
        backbone.forward_features(torch.randn(2, 1, 96, 96), masks=torch.zeros(2, 36))


def test_all_false_mask_equals_plain_forward(backbone):
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        plain = backbone.forward_features(x)
        masked = backbone.forward_features(x, masks=torch.zeros(2, 36, dtype=torch.bool))
    for key in ("cls", "registers", "patches"):
        assert torch.equal(plain[key], masked[key])


def test_masked_patches_see_the_mask_token_not_the_image(backbone):
    x = torch.randn(2, 1, 96, 96)
    masks = _masks(2, 36)
    pixel_masks = masks.view(2, 1, 6, 6).repeat_interleave(16, 2).repeat_interleave(16, 3)
    with torch.no_grad():
        out = backbone.forward_features(x, masks)["patches"]
        scribbled = torch.where(pixel_masks, torch.randn_like(x) * 5, x)
        out_scribbled = backbone.forward_features(scribbled, masks)["patches"]
        plain = backbone.forward_features(x)["patches"]
    torch.testing.assert_close(out, out_scribbled, rtol=1e-5, atol=1e-5)  # masked pixels unseen
    assert (out - plain).abs().max() > 1e-2  # masking changes the output


def test_mask_token_acts_as_a_patch_embedding(backbone):
    """With the mask token set to the embedding of patch content c, masking = pasting c."""
    x = torch.randn(2, 1, 96, 96)
    masks = _masks(2, 36, seed=3)
    content = torch.randn(1, 1, 16, 16)
    pixel_masks = masks.view(2, 1, 6, 6).repeat_interleave(16, 2).repeat_interleave(16, 3)
    pasted = torch.where(pixel_masks, content.repeat(1, 1, 6, 6), x)
    proj = backbone.vit.patch_embed.proj
    embedding = (proj.weight * content).sum(dim=(1, 2, 3)) + proj.bias  # conv by hand
    saved = backbone.mask_token.detach().clone()
    try:
        with torch.no_grad():
            backbone.mask_token.copy_(embedding[None])
            masked = backbone.forward_features(x, masks)
            reference = backbone.forward_features(pasted)
    finally:
        with torch.no_grad():
            backbone.mask_token.copy_(saved)
    for key in ("cls", "registers", "patches"):
        torch.testing.assert_close(masked[key], reference[key], rtol=1e-4, atol=1e-4)


def test_gradient_reaches_the_mask_token():
    torch.manual_seed(0)
    model = create_backbone(ARCH)
    x = torch.randn(2, 1, 64, 64)
    model.forward_features(x, masks=_masks(2, 16))["patches"].square().sum().backward()
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model.forward_features(x)["patches"].square().sum().backward()
    assert model.mask_token.grad is None  # unmasked crops do not touch it


def test_intermediate_layers_match_running_blocks_by_hand(backbone):
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        layers = backbone.get_intermediate_layers(x, blocks=(1, -1), norm=True)
        # by hand: timm's own tokens, block by block
        vit = backbone.vit
        tokens, rope = vit._pos_embed(vit.patch_embed(x))
        by_hand, by_hand_raw = [], []
        for block in vit.blocks:
            tokens = block(tokens, rope=rope)
            by_hand_raw.append(tokens)
            by_hand.append(vit.norm(tokens))
        raw = backbone.get_intermediate_layers(x, blocks=2, norm=False, reshape=True)
        final = backbone.forward_features(x)
    for feats, ref in zip(layers, (by_hand[1], by_hand[3])):
        torch.testing.assert_close(feats["cls"], ref[:, 0])
        torch.testing.assert_close(feats["registers"], ref[:, 1:5])
        torch.testing.assert_close(feats["patches"], ref[:, 5:])
    torch.testing.assert_close(layers[1]["patches"], final["patches"])
    assert len(raw) == 2 and raw[1]["patches"].shape == (2, 96, 4, 6)
    grid = by_hand_raw[-1][:, 5:].reshape(2, 4, 6, 96).permute(0, 3, 1, 2)
    torch.testing.assert_close(raw[1]["patches"], grid)
    with pytest.raises(BrainDinoError, match="blocks"):
        backbone.get_intermediate_layers(x, blocks=(7,))


def test_backbone_matches_plain_timm_model(backbone):
    reference = timm.create_model(backbone.timm_name, **backbone.timm_kwargs)
    reference.load_state_dict(backbone.timm_state_dict())
    reference.eval()
    x = torch.randn(2, 1, 96, 128)
    with torch.no_grad():
        ours = backbone.forward_features(x)
        tokens = reference.forward_features(x)
        pooled = reference(x)
    torch.testing.assert_close(ours["patches"], tokens[:, 5:])
    torch.testing.assert_close(backbone(x), pooled)


def test_dinov2_family_backbone_runs_and_masks():
    model = create_backbone("vit_small_patch14_reg4_dinov2", depth=2, embed_dim=96, num_heads=2)
    x = torch.randn(2, 1, 98, 126)
    out = model.forward_features(x, masks=_masks(2, 63))
    assert model.patch_size == (14, 14)
    assert out["patches"].shape == (2, 63, 96) and out["registers"].shape == (2, 4, 96)


def test_unknown_arch_and_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown backbone architecture"):
        create_backbone("vit_base_patch16_dinov4")
    with pytest.raises(ConfigError, match="weight tag"):
        create_backbone("vit_base_patch16_dinov3.lvd1689m")
    with pytest.raises(ConfigError, match="num_classes"):
        create_backbone(ARCH, num_classes=10)
    with pytest.raises(ConfigError, match="rejected its arguments"):
        create_backbone(ARCH, not_an_option=3)


def test_init_from_local_natural_image_checkpoint_sums_rgb_filters(tmp_path):
    kwargs = {"embed_dim": 96, "num_heads": 2, "depth": 2}
    rgb = timm.create_model("vit_small_patch16_dinov3", in_chans=3, num_classes=0, **kwargs)
    state = rgb.state_dict()
    # Meta's original DINOv3 key names, as in the released .pth files
    meta = {}
    for key, value in state.items():
        key = key.replace("reg_token", "storage_tokens")
        key = key.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        meta[key] = value.clone()
    meta["mask_token"] = torch.zeros(1, 96)
    file = tmp_path / "dinov3_tiny.safetensors"
    save_file(meta, str(file))
    model = create_backbone("vit_small_patch16_dinov3", pretrained=file, **kwargs)
    loaded = model.timm_state_dict()
    expected = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(loaded["patch_embed.proj.weight"], expected)
    for key in ("reg_token", "blocks.1.gamma_2", "blocks.1.attn.qkv.weight", "norm.weight"):
        assert torch.equal(loaded[key], state[key])


def test_wrong_local_checkpoint_names_the_file(tmp_path):
    file = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(3)}, str(file))
    with pytest.raises(BrainDinoError, match=r"other\.safetensors"):
        create_backbone("vit_small_patch16_dinov3", pretrained=file, depth=2)
    with pytest.raises(BrainDinoError, match="not found"):
        create_backbone("vit_small_patch16_dinov3", pretrained=tmp_path / "missing.pth", depth=2)


def test_hub_weights_offline_fail_with_one_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BrainDinoError) as info:
        create_backbone("vit_small_patch16_dinov3", pretrained="vit_small_patch16_dinov3.lvd1689m")
    line = str(info.value)
    assert "\n" not in line and "network" in line and "local file" in line


# ----------------------------------------------------------------------------- DINO head
def _head(**kw) -> DINOHead:
    torch.manual_seed(0)
    return DINOHead(in_dim=32, out_dim=50, hidden_dim=40, bottleneck_dim=16, **kw)


def test_head_shapes_and_l2_normalised_bottleneck():
    head = _head()
    x = torch.randn(2, 7, 32)
    assert head(x).shape == (2, 7, 50)
    bottleneck = head.bottleneck(x)
    assert bottleneck.shape == (2, 7, 16)
    torch.testing.assert_close(bottleneck.norm(dim=-1), torch.ones(2, 7))
    assert sum(isinstance(m, torch.nn.Linear) for m in head.mlp) == 3
    assert sum(isinstance(m, torch.nn.GELU) for m in head.mlp) == 2
    assert len(DINOHead(32, 10, 40, 16, nlayers=1).mlp) == 1


def test_head_logits_are_cosines_to_prototypes():
    head = _head()
    x = torch.randn(5, 32)
    with torch.no_grad():
        hidden = head.mlp(x).double()
        weight = head.last_layer.weight.double()
        cosine = (hidden / hidden.norm(dim=1, keepdim=True)) @ (
            weight / weight.norm(dim=1, keepdim=True)
        ).T
        torch.testing.assert_close(head(x).double(), cosine, rtol=1e-5, atol=1e-6)
    plain = _head(normalize_prototypes=False)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), plain.bottleneck(x) @ plain.last_layer.weight.T)
    # the factored form (for ibot_loss) holds the same logits as its two factors
    factored = head(x, factored=True)
    assert factored.shape == (5, head.last_layer.weight.shape[0])
    with torch.no_grad():
        torch.testing.assert_close(factored.materialize().double(), cosine, rtol=1e-5, atol=1e-6)


def test_frozen_prototype_layer_gets_no_update():
    head = _head()
    optimiser = torch.optim.AdamW(head.parameters(), lr=0.1, weight_decay=0.5)
    before = {k: v.detach().clone() for k, v in head.state_dict().items()}
    head(torch.randn(8, 32)).logsumexp(dim=-1).mean().backward()
    assert head.last_layer.weight.grad is not None
    head.drop_last_layer_grad()
    optimiser.step()
    after = head.state_dict()
    assert torch.equal(after["last_layer.weight"], before["last_layer.weight"])
    assert not torch.equal(after["mlp.0.weight"], before["mlp.0.weight"])


def test_head_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="out_dim=0"):
        DINOHead(32, out_dim=0)


def test_rope_coordinate_jitter_is_on_in_the_vit_recipes_and_only_while_training(tmp_path):
    """model.rope_rescale_coords (DINOv3: 2) reaches timm's RoPE of the student; in eval mode
    (teacher, export, downstream) the encoder is exactly the one without it, and an export does
    not carry it."""
    from braindino.config import load_config
    from braindino.errors import ConfigError
    from braindino.models import load_encoder, save_encoder
    from braindino.ssl.build import build_meta_arch

    small = ["model.arch=vit_micro_patch16_dinov3", "model.drop_path_rate=0.0", "model.img_size=32"]
    small += [f"heads.{h}.{k}={v}" for h in ("dino", "ibot") for k, v in
              (("out_dim", 16), ("hidden_dim", 16), ("bottleneck_dim", 8))]  # fmt: skip
    for recipe in ("vits16", "vitb16", "vitl16"):
        assert (
            load_config("pretrain/default", [f"pretrain/{recipe}"]).model.rope_rescale_coords == 2
        )
    cfg = load_config("pretrain/default", ["pretrain/vits16"], small)
    torch.manual_seed(0)
    jittered = build_meta_arch(cfg).student.backbone
    assert jittered.vit.rope.rescale_coords == 2.0
    assert "rope_rescale_coords" not in jittered.timm_kwargs  # train-only
    plain_cfg = load_config("pretrain/default", [], small)
    assert plain_cfg.model.rope_rescale_coords is None
    plain = build_meta_arch(plain_cfg).student.backbone
    plain.load_state_dict(jittered.state_dict())
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        jittered.eval(), plain.eval()
        torch.testing.assert_close(jittered(x), plain(x), rtol=0, atol=0)
        jittered.train()
        torch.manual_seed(1)
        first = jittered(x)
        second = jittered(x)
        torch.manual_seed(1)
        again = jittered(x)
    assert not torch.allclose(first, second)  # a new scale every step
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # drawn from the seeded RNG
    save_encoder(jittered, tmp_path / "enc")
    written = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert "rope_rescale_coords" not in written["timm_kwargs"]  # what timm rebuilds it from
    assert load_encoder(tmp_path / "enc").vit.rope.rescale_coords is None
    with pytest.raises(ConfigError, match=r"model.rope_rescale_coords.*>= 1"):
        build_meta_arch(
            load_config("pretrain/default", [], [*small, "model.rope_rescale_coords=0.5"])
        )
