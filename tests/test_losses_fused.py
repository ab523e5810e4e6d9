"""The fused path (``run.fused``) against the plain losses it replaces: the same values and
gradients in float64 (the factored cross-entropy in any block size, DINO, iBOT, and one whole
self-distillation step), bf16 close, and one-line errors for mismatched factors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import braindino.losses.fused as fused
from braindino.losses import dino_loss, ibot_loss, sinkhorn_knopp
from braindino.losses.fused import (
    FactoredLogits,
    factored_cross_entropy,
    fused_dino_loss,
    fused_ibot_loss,
)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _t(array: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(array, dtype=dtype)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(params=[(1 << 22, 1 << 31), (12, 1 << 31), (1, 0), (12, 0)])
def block_sizes(request, monkeypatch) -> None:
    """One block, several, one column per block; the forward's logits blocks kept for the
    backward or recomputed (0 bytes kept)."""
    slab, keep_bytes = request.param
    monkeypatch.setattr(fused, "SLAB_ELEMENTS", slab)
    monkeypatch.setattr(fused, "KEEP_LOGITS_BYTES", keep_bytes)


# more rows than feature width (the scale goes on the prototype rows) and fewer (on the logits)
@pytest.mark.parametrize("rows_width", [(5, 4), (3, 6)])
def test_factored_cross_entropy_matches_float64_in_any_block_size(block_sizes, rows_width) -> None:
    rng = _rng(12)
    m, d = rows_width
    features, prototypes = _unit(rng.normal(size=(m, d))), _unit(rng.normal(size=(9, d)))
    targets, weights, tau = rng.uniform(size=(m, 9)), rng.uniform(size=m), 0.05
    z = features @ prototypes.T / tau
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = float(np.sum(weights * -(targets * log_probs).sum(axis=1)))
    pair = (_t(features).requires_grad_(True), _t(prototypes).requires_grad_(True))
    value = factored_cross_entropy(FactoredLogits(*pair), _t(targets), _t(weights), tau)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    # hand-derived gradient: dL/dz = w (softmax(z)·Σp − p) / τ, chained through the product
    g = weights[:, None] * (_softmax(z) * targets.sum(axis=1, keepdims=True) - targets) / tau
    grad_features, grad_prototypes = torch.autograd.grad(value, pair)
    np.testing.assert_allclose(grad_features.numpy(), g @ prototypes, rtol=1e-9)
    np.testing.assert_allclose(grad_prototypes.numpy(), g.T @ features, rtol=1e-9)
    assert torch.autograd.gradcheck(
        lambda f, p: factored_cross_entropy(FactoredLogits(f, p), _t(targets), _t(weights), tau),
        pair,
    )


@pytest.mark.parametrize("rows_width", [(5, 4), (3, 6)])
def test_unit_prototypes_equal_autograd_through_an_explicit_normalisation(
    block_sizes, rows_width
) -> None:
    rng = _rng(13)
    m, d = rows_width
    features = _t(_unit(rng.normal(size=(m, d)))).requires_grad_(True)
    prototypes = _t(rng.normal(size=(9, d)) * rng.uniform(0.2, 3, size=(9, 1))).requires_grad_(True)
    targets, weights, tau = _t(rng.uniform(size=(m, 9))), _t(rng.uniform(size=m)), 0.05

    def reference(f, w):
        z = f @ (w / w.norm(dim=1, keepdim=True)).T / tau
        return (weights * -(targets * torch.log_softmax(z, dim=1)).sum(dim=1)).sum()

    def factored(f, w):
        return factored_cross_entropy(FactoredLogits(f, w, True), targets, weights, tau)

    value, expected = factored(features, prototypes), reference(features, prototypes)
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)
    got = torch.autograd.grad(value, (features, prototypes))
    want = torch.autograd.grad(expected, (features, prototypes))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert torch.autograd.gradcheck(factored, (features, prototypes))
    explicit = features.detach() @ (prototypes / prototypes.norm(dim=1)[:, None]).T
    materialised = FactoredLogits(features, prototypes, True).materialize()
    torch.testing.assert_close(sinkhorn_knopp(materialised, 0.04), sinkhorn_knopp(explicit, 0.04))


@pytest.mark.parametrize("ignore_diagonal", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_fused_dino_equals_the_plain_loss_and_its_gradients(ignore_diagonal, normalize) -> None:
    rng = _rng(4)
    f = _t(rng.normal(size=(5, 3, 4))).requires_grad_(True)  # [S, N, D]
    w = _t(rng.normal(size=(7, 4))).requires_grad_(True)  # [K, D]
    teacher = _t(_softmax(rng.normal(size=(2, 3, 7))))
    factored = FactoredLogits(f, w, normalize)
    assert factored.shape == (5, 3, 7)
    value = fused_dino_loss(factored, teacher, 0.1, ignore_diagonal)
    unit = w / w.norm(dim=1, keepdim=True) if normalize else w
    plain = dino_loss(f @ unit.T, teacher, 0.1, ignore_diagonal)
    assert value.item() == pytest.approx(plain.item(), rel=1e-12)
    for a, b in zip(torch.autograd.grad(value, (f, w)), torch.autograd.grad(plain, (f, w))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda f, w: fused_dino_loss(
            FactoredLogits(f, w, normalize), teacher, 0.1, ignore_diagonal
        ),
        (f, w),
    )


def test_fused_ibot_equals_the_plain_loss_fp32_and_bf16(monkeypatch) -> None:
    monkeypatch.setattr(fused, "SLAB_ELEMENTS", 40)  # several blocks
    torch.manual_seed(0)
    masks = torch.rand(3, 16) < 0.4
    masks[1] = False  # an image without masked tokens
    m = int(masks.sum())
    features = torch.nn.functional.normalize(torch.randn(m, 8), dim=1).requires_grad_(True)
    prototypes = torch.nn.functional.normalize(torch.randn(33, 8), dim=1).requires_grad_(True)
    probs = sinkhorn_knopp(torch.randn(m, 33), 0.07)
    factored = fused_ibot_loss(FactoredLogits(features, prototypes), probs, masks, 0.1)
    plain = ibot_loss(features @ prototypes.T, probs, masks, 0.1)
    torch.testing.assert_close(factored, plain)
    grads_f = torch.autograd.grad(factored, (features, prototypes))
    grads_p = torch.autograd.grad(plain, (features, prototypes))
    for a, b in zip(grads_f, grads_p):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    half = FactoredLogits(features.bfloat16(), prototypes.bfloat16())  # products in bf16
    low = fused_ibot_loss(half, probs, masks, 0.1)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(plain.item(), rel=2e-2)
    with pytest.raises(ValueError, match=r"ibot_loss\(student_patch_logits\).*width 8.*5"):
        fused_ibot_loss(FactoredLogits(features, torch.zeros(33, 5)), probs, masks)
    with pytest.raises(ValueError, match=r"dino_loss\(student_logits.features\)"):
        fused_dino_loss(FactoredLogits(torch.zeros(6, 4), torch.zeros(5, 4)), probs[None])
    with pytest.raises(ValueError, match=r"expected FactoredLogits.*plain loss"):
        fused_ibot_loss(features @ prototypes.T, probs, masks)


def _tiny_meta(fused_path: bool):
    from braindino.config import load_config
    from braindino.ssl.build import build_meta_arch

    cfg = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        ["model.arch=vit_micro_patch16_dinov3", "model.drop_path_rate=0.0", "model.img_size=32",
         f"run.fused={str(fused_path).lower()}"],
    )  # fmt: skip
    torch.manual_seed(0)
    return build_meta_arch(cfg).double()


@pytest.mark.parametrize("gram", [False, True])
def test_one_step_gives_the_same_loss_and_gradients_fused_or_plain(gram: bool) -> None:
    """run.fused only changes how the step is computed: the total loss, every term and every
    parameter's gradient equal the plain path's (float64)."""
    torch.manual_seed(1)
    batch = {
        "global_crops": torch.randn(4, 1, 32, 32, dtype=torch.float64),
        "local_crops": torch.randn(8, 1, 16, 16, dtype=torch.float64),
        "masks": torch.rand(4, 4) < 0.5,
    }
    batch["masks"][0] = False  # one global crop without masked patches
    results = []
    for fused_path in (True, False):
        meta = _tiny_meta(fused_path)
        assert meta.fused is fused_path
        if gram:
            meta.set_gram_teacher()
        total, logs = meta.losses(batch, teacher_temp=0.05, gram_weight=1.0 if gram else 0.0)
        total.backward()
        grads = {
            n: p.grad.clone() for n, p in meta.student.named_parameters() if p.grad is not None
        }
        results.append((total.detach(), logs, grads))
    (t_fused, logs_fused, g_fused), (t_plain, logs_plain, g_plain) = results
    torch.testing.assert_close(t_fused, t_plain, rtol=1e-10, atol=1e-12)
    for name in [k for k in logs_plain if k.startswith("loss/")]:
        torch.testing.assert_close(logs_fused[name], logs_plain[name], rtol=1e-10, atol=1e-12)
    assert set(g_fused) == set(g_plain) and len(g_plain) > 10
    for name, grad in g_plain.items():
        torch.testing.assert_close(g_fused[name], grad, rtol=1e-8, atol=1e-10, msg=name)


def test_the_gram_term_reads_the_higher_resolution_teacher_on_the_students_grid() -> None:
    """With gram_crops (the global crops at 2x) in the batch, the Gram loss compares the
    student's patches with the Gram teacher's patch map of those crops, resized bicubically to
    the student's grid; without them, with its map of the student's own crops."""
    from braindino.losses import gram_loss
    from braindino.losses.gram import resize_patch_grid

    torch.manual_seed(2)
    glob = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    batch = {
        "global_crops": glob,
        "local_crops": torch.randn(8, 1, 16, 16, dtype=torch.float64),
        "masks": torch.rand(4, 4) < 0.5,
        "gram_crops": torch.nn.functional.interpolate(glob, size=(64, 64), mode="bilinear"),
    }
    meta = _tiny_meta(True)
    meta.set_gram_teacher()
    _, logs = meta.losses(batch, teacher_temp=0.05, gram_weight=1.0)
    with torch.no_grad():
        student = meta.student(glob, batch["local_crops"], batch["masks"], all_patches=True)
        high = meta.gram_teacher.forward_features(batch["gram_crops"])["patches"]  # 4 x 4 grid
        expected = gram_loss(student["patches_global"], resize_patch_grid(high, (4, 4), (2, 2)))
        own = gram_loss(
            student["patches_global"], meta.gram_teacher.forward_features(glob)["patches"]
        )
    torch.testing.assert_close(logs["loss/gram"], expected, rtol=1e-10, atol=1e-12)
    assert not torch.isclose(expected, own)
    del batch["gram_crops"]
    _, logs = meta.losses(batch, teacher_temp=0.05, gram_weight=1.0)
    torch.testing.assert_close(logs["loss/gram"], own, rtol=1e-10, atol=1e-12)


def test_run_fused_auto_picks_the_faster_path_of_the_device_and_a_typo_is_one_error() -> None:
    """``run.fused: auto`` (the default) trains the fused step on the CPU and the plain one on a
    GPU (measured faster on each); true/false are taken as given; anything else names the key."""
    from braindino.config import load_config
    from braindino.errors import ConfigError
    from braindino.ssl.build import build_meta_arch, fused_step

    assert fused_step("auto", "cpu") is True and fused_step("auto", "cuda") is False
    assert fused_step(True, "cuda") is True and fused_step(False, "cpu") is False
    with pytest.raises(ConfigError, match=r"run\.fused must be true, false or auto"):
        fused_step("fast", "cpu")
    cfg = load_config("pretrain/default", dotlist=["model.arch=vit_micro_patch16_dinov3"])
    assert cfg.run.fused == "auto"
    assert build_meta_arch(cfg).fused is True  # where it will train: the CPU by default
    assert build_meta_arch(cfg, "cuda").fused is False
