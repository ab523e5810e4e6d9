"""The last block run on the wanted tokens only equals the full forward on those tokens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from braindino.errors import BrainDinoError
from braindino.models import create_backbone
from braindino.models.partial_block import run_block_on_rows

FAMILIES = {
    "dinov3": ("vit_micro_patch16_dinov3", {}, 64),
    "dinov2": ("vit_small_patch14_reg4_dinov2", {"depth": 2, "embed_dim": 96, "num_heads": 2}, 56),
    # separate q/v biases (timm's q_bias, k_bias, v_bias) instead of a plain qkv layer
    "dinov3_qkvb": (
        "vit_small_patch16_dinov3_qkvb",
        {"depth": 2, "embed_dim": 96, "num_heads": 2},
        64,
    ),
}


def _keep(batch: int, n_patches: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    keep = torch.rand(batch, n_patches, generator=gen) < 0.3
    keep[0] = False  # an image with no wanted patch (a local crop)
    keep[1, -1] = True
    return keep


def _model(family: str, drop_path: float) -> nn.Module:
    name, kwargs, _ = FAMILIES[family]
    torch.manual_seed(0)
    model = create_backbone(name, drop_path_rate=drop_path, **kwargs).double()
    with torch.no_grad():
        model.mask_token.normal_()
        for block in model.vit.blocks:  # LayerScale away from its tiny init, so the MLP counts
            for p in block.parameters():
                if p.ndim == 1 and p.shape[0] == model.embed_dim:
                    p.normal_()
    return model


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("drop_path", [0.0, 0.5])
def test_kept_tokens_and_gradients_equal_the_full_forward(family, drop_path):
    model = _model(family, drop_path).train()
    size = FAMILIES[family][2]
    x = torch.randn(3, 1, size, size, dtype=torch.float64)
    n_patches = (size // model.patch_size[0]) ** 2
    masks, keep = _keep(3, n_patches, seed=1), _keep(3, n_patches, seed=2)
    weight = torch.randn(model.embed_dim, dtype=torch.float64)

    torch.manual_seed(7)  # the same stochastic-depth draws for both forwards
    full = model.forward_features(x, masks=masks)
    full_loss = (full["cls"] @ weight).sin().sum() + (full["patches"][keep] @ weight).cos().sum()
    full_loss.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)

    torch.manual_seed(7)
    part = model.forward_features(x, masks=masks, keep_patches=keep)
    part_loss = (part["cls"] @ weight).sin().sum() + (part["patches"] @ weight).cos().sum()
    part_loss.backward()

    assert set(part) == {"cls", "registers", "patches"}  # the same keys, fewer rows
    torch.testing.assert_close(part["cls"], full["cls"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(part["registers"], full["registers"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(part["patches"], full["patches"][keep], rtol=1e-12, atol=1e-12)
    got = _grads(model)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)


class _FixedDropPath(nn.Module):
    """Stochastic depth with a fixed per-sample factor, so the test knows who was dropped."""

    drop_prob = 0.5

    def __init__(self, factors: list[float]):
        super().__init__()
        self.factors = torch.tensor(factors, dtype=torch.float64)

    def forward(self, x):
        return x * self.factors.view(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_kept_row_gets_its_own_images_stochastic_depth_factor(family):
    model = _model(family, 0.0).train()
    block = model.vit.blocks[-1]
    block.drop_path2 = _FixedDropPath([0.0, 2.0, 1.0])
    n_prefix = model.num_prefix_tokens
    tokens = torch.randn(3, n_prefix + 16, model.embed_dim, dtype=torch.float64)
    keep = _keep(3, 16, seed=4)
    kwargs = {"rope": model.vit.rope.get_embed(shape=[4, 4])} if model.family == "eva" else {}
    full = block(tokens, **kwargs)
    rows = run_block_on_rows(block, tokens, keep, n_prefix, kwargs)
    expected = torch.cat(
        [full[:, :n_prefix].reshape(-1, model.embed_dim), full[:, n_prefix:][keep]]
    )
    torch.testing.assert_close(rows, expected, rtol=1e-12, atol=1e-12)


def test_other_block_classes_run_whole_then_select():
    class Doubler(nn.Module):
        def forward(self, x):
            return 2 * x

    tokens = torch.randn(2, 1 + 6, 4)
    keep = torch.tensor([[True, False, False, True, False, False], [False] * 6])
    rows = run_block_on_rows(Doubler(), tokens, keep, 1, {})
    expected = torch.cat([2 * tokens[:, 0], 2 * tokens[0, [1, 4]]])  # patches 0 and 3
    torch.testing.assert_close(rows, expected)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = _model("dinov3", 0.0)
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    keep = _keep(2, 16, seed=3)
    model.forward_features(x, keep_patches=keep)["patches"].square().sum().backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)
    model.set_grad_checkpointing(True)
    model.forward_features(x, keep_patches=keep)["patches"].square().sum().backward()
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected[name], msg=name)


def test_bad_keep_patches_name_the_argument():
    model = _model("dinov3", 0.0)
    x = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    with pytest.raises(BrainDinoError, match="keep_patches must be a bool tensor"):
        model.forward_features(x, keep_patches=torch.ones(2, 15, dtype=torch.bool))
    with pytest.raises(BrainDinoError, match="keep_patches"):
        model.forward_features(x, keep_patches=torch.ones(2, 16))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_partial_path_skips_the_work_of_unwanted_tokens(family):
    from torch.utils.flop_counter import FlopCounterMode

    model = _model(family, 0.0).eval()
    size = FAMILIES[family][2]
    x = torch.randn(2, 1, size, size, dtype=torch.float64)
    n_patches = (size // model.patch_size[0]) ** 2
    keep = torch.zeros(2, n_patches, dtype=torch.bool)
    flops = []
    for kwargs in ({}, {"keep_patches": keep}):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.forward_features(x, **kwargs)
        flops.append(counter.get_total_flops())
    d, tokens = model.embed_dim, model.num_prefix_tokens + n_patches
    # per unwanted token: MLP fc1 + fc2 (8 d² MACs), its query and output projections (2 d²),
    # 2 FLOPs a MAC; plus its attention row (4 N d) where the counter counts the CPU kernel
    linear = 2 * n_patches * 2 * (8 + 2) * d * d
    attention = 2 * n_patches * 4 * tokens * d
    assert flops[0] - flops[1] in (linear, linear + attention)
