"""Each loss against a hand-worked case and an independent float64 reference (loops, lifelines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from braindino.errors import DataError
from braindino.losses import (
    class_variance_loss,
    cox_loss,
    dice_loss,
    dino_loss,
    gram_loss,
    ibot_loss,
    koleo_loss,
    sinkhorn_knopp,
    supcon_loss,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _t(array: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(array, dtype=dtype)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---------------------------------------------------------------- Sinkhorn–Knopp


def _sinkhorn_reference(logits: np.ndarray, temperature: float, iterations: int) -> np.ndarray:
    """The textbook multiplicative form (SwAV/DINOv2), in float64, prototypes × samples."""
    q = np.exp(logits / temperature).T  # [K, N]
    n_prototypes, n_samples = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= n_prototypes
        q /= q.sum(axis=0, keepdims=True)
        q /= n_samples
    return (q * n_samples).T


def test_sinkhorn_hand_worked_one_iteration() -> None:
    # exp(logits) = [[3, 1], [1, 1]]; columns → [[3/4, 1/2], [1/4, 1/2]]; rows → below.
    logits = torch.log(torch.tensor([[3.0, 1.0], [1.0, 1.0]]))
    probs = sinkhorn_knopp(logits, temperature=1.0, iterations=1)
    expected = torch.tensor([[3 / 5, 2 / 5], [1 / 3, 2 / 3]])
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)


def test_sinkhorn_matches_float64_reference_and_balances_columns() -> None:
    logits = _rng(1).normal(size=(16, 8)) * 0.5
    probs = sinkhorn_knopp(_t(logits, torch.float32), temperature=0.1, iterations=3)
    expected = _sinkhorn_reference(logits, 0.1, 3)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-5)
    # A skewed batch (every sample prefers prototype 0) ends balanced: N/K mass per column.
    skewed = torch.tensor([[2.0, 0.0], [1.5, 0.0], [1.0, 0.2], [0.5, 0.1]])
    balanced = sinkhorn_knopp(skewed, temperature=1.0, iterations=200)
    torch.testing.assert_close(balanced.sum(dim=0), torch.tensor([2.0, 2.0]), atol=1e-4, rtol=0)
    softmax_mass = torch.softmax(skewed, dim=1).sum(dim=0)
    three_step_mass = sinkhorn_knopp(skewed, temperature=1.0).sum(dim=0)
    assert (three_step_mass - 2).abs().max() < (softmax_mass - 2).abs().max() / 4


def test_sinkhorn_on_cosine_logits_at_the_lowest_teacher_temperature() -> None:
    """The heads' logits are cosines in [-1, 1]; at 0.04 the targets equal the float64 textbook
    form, and the caller's logits are left as they were."""
    x = _unit(_rng(7).normal(size=(24, 16)))
    w = _unit(_rng(8).normal(size=(64, 16)))
    cosines = x @ w.T
    logits = _t(cosines, torch.float32)
    probs = sinkhorn_knopp(logits, temperature=0.04, iterations=3)
    expected = _sinkhorn_reference(cosines, 0.04, 3)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-4, atol=1e-7)
    assert torch.equal(logits, _t(cosines, torch.float32))


def test_sinkhorn_low_temperature_bf16_no_overflow_no_grad() -> None:
    logits = torch.zeros(6, 4)
    logits[:, 0] = 30.0  # exp(30 / 0.04) overflows the textbook form in any float type
    logits[3, 2] = 29.0
    leaf = logits.to(torch.bfloat16).requires_grad_(True)
    probs = sinkhorn_knopp(leaf, temperature=0.04)
    assert probs.dtype == torch.float32 and not probs.requires_grad
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(6), atol=1e-5, rtol=0)
    # Prototypes no sample prefers still receive mass: the batch is spread over all of them.
    assert (probs.sum(dim=0) > 0.5).all()


def test_sinkhorn_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"sinkhorn_knopp\(temperature\).*pass a value > 0"):
        sinkhorn_knopp(torch.zeros(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match=r"sinkhorn_knopp\(iterations\)"):
        sinkhorn_knopp(torch.zeros(2, 3), temperature=0.1, iterations=0)
    with pytest.raises(ValueError, match=r"sinkhorn_knopp\(teacher_logits\).*shape"):
        sinkhorn_knopp(torch.zeros(2, 3, 4), temperature=0.1)


# ---------------------------------------------------------------- DINO


def _dino_reference(student, teacher, tau, ignore_diagonal):
    """Explicit loops over crop pairs and images, float64."""
    n_student, n_images, _ = student.shape
    n_teacher = teacher.shape[0]
    losses = []
    for s in range(n_student):
        for t in range(n_teacher):
            if ignore_diagonal and s == t:
                continue
            per_image = [
                -np.sum(teacher[t, n] * np.log(_softmax(student[s, n] / tau)))
                for n in range(n_images)
            ]
            losses.append(np.mean(per_image))
    return float(np.mean(losses))


def test_dino_hand_worked_two_crops() -> None:
    # Student crop 0 → softmax [1/4, 3/4], crop 1 → [1/2, 1/2]; teacher t0 = [1, 0], t1 = [.5, .5].
    student = torch.tensor([[[0.0, math.log(3.0)]], [[0.0, 0.0]]])
    teacher = torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]])
    # Pairs (s0, t1): 0.5·ln4 + 0.5·ln(4/3); (s1, t0): ln 2.
    expected = (0.5 * math.log(16 / 3) + math.log(2.0)) / 2
    loss = dino_loss(student, teacher, student_temperature=1.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("ignore_diagonal", [True, False])
def test_dino_matches_pair_loop(ignore_diagonal: bool) -> None:
    rng = _rng(2)
    student = rng.normal(size=(5, 3, 6))
    teacher = _softmax(rng.normal(size=(2, 3, 6)))
    loss = dino_loss(_t(student), _t(teacher), 0.1, ignore_diagonal=ignore_diagonal)
    assert loss.item() == pytest.approx(_dino_reference(student, teacher, 0.1, ignore_diagonal))
    assert loss.dtype == torch.float64


def test_dino_gradient_and_precision() -> None:
    rng = _rng(3)
    student = _t(rng.normal(size=(3, 2, 4))).requires_grad_(True)
    teacher = _t(_softmax(rng.normal(size=(2, 2, 4))))
    assert torch.autograd.gradcheck(lambda s: dino_loss(s, teacher, 0.1), (student,))
    # bf16 inputs and an enclosing bf16 autocast give the fp32 answer on the same values.
    s32, t32 = student.detach().float(), teacher.float()
    reference = dino_loss(s32, t32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = dino_loss(s32, t32)
    assert autocast_loss.dtype == torch.float32
    assert autocast_loss.item() == pytest.approx(reference.item(), rel=1e-6)
    s16 = s32.bfloat16()
    assert dino_loss(s16, t32).item() == pytest.approx(dino_loss(s16.float(), t32).item())


def test_dino_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"dino_loss\(teacher_probs\)"):
        dino_loss(torch.zeros(4, 2, 5), torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"dino_loss\(ignore_diagonal\)"):
        dino_loss(torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))


# ---------------------------------------------------------------- iBOT


def test_ibot_matches_per_image_loop_with_an_unmasked_image() -> None:
    rng = _rng(4)
    masks = np.array(
        [[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 1, 0]], dtype=bool
    )  # 2, 0 and 3 masked tokens
    n_masked, k, tau = int(masks.sum()), 7, 0.1
    student = rng.normal(size=(n_masked, k))
    teacher = _softmax(rng.normal(size=(n_masked, k)))
    per_image, row = [], 0
    for image in range(masks.shape[0]):
        token_losses = []
        for patch in range(masks.shape[1]):
            if masks[image, patch]:
                token_losses.append(-np.sum(teacher[row] * np.log(_softmax(student[row] / tau))))
                row += 1
        per_image.append(np.mean(token_losses) if token_losses else 0.0)
    expected = float(np.mean(per_image))
    loss = ibot_loss(_t(student), _t(teacher), torch.tensor(masks), tau)
    assert loss.item() == pytest.approx(expected)
    student_leaf = _t(student).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda s: ibot_loss(s, _t(teacher), torch.tensor(masks), tau), (student_leaf,)
    )


def test_ibot_hand_worked_and_errors() -> None:
    # One masked token (student softmax [1/4, 3/4], target [0, 1]) in image 0, none in image 1.
    masks = torch.tensor([[False, True], [False, False]])
    loss = ibot_loss(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.0, 1.0]]), masks, 1.0)
    assert loss.item() == pytest.approx(math.log(4 / 3) / 2, abs=1e-6)
    with pytest.raises(ValueError, match=r"ibot_loss\(student_patch_logits\).*3 rows.*1"):
        ibot_loss(torch.zeros(3, 2), torch.zeros(3, 2), masks)
    with pytest.raises(ValueError, match=r"ibot_loss\(masks\).*bool"):
        ibot_loss(torch.zeros(1, 2), torch.zeros(1, 2), masks.long())


# ---------------------------------------------------------------- KoLeo


def test_koleo_hand_worked_three_points() -> None:
    # Unit-circle angles 0°, 60°, 180° (scaled, to show the normalisation): nearest distances
    # 1, 1 and √3, so the loss is −(0 + 0 + ln√3)/3 = −ln3/6.
    angles = np.deg2rad([0.0, 60.0, 180.0])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.array([[2.0], [0.5], [7.0]])
    loss = koleo_loss(_t(points), eps=0.0 + 1e-12)
    assert loss.item() == pytest.approx(-math.log(3.0) / 6, abs=1e-9)


def test_koleo_matches_loop_groups_and_gradient() -> None:
    rng = _rng(5)
    groups = rng.normal(size=(2, 6, 4))
    expected = []
    for points in groups:
        unit = _unit(points)
        nearest = [
            min(np.linalg.norm(unit[i] - unit[j]) for j in range(len(unit)) if j != i)
            for i in range(len(unit))
        ]
        expected.append(-np.mean(np.log(np.array(nearest) + 1e-8)))
    assert koleo_loss(_t(groups)).item() == pytest.approx(np.mean(expected))
    assert koleo_loss(_t(groups[1])).item() == pytest.approx(expected[1])
    leaf = _t(groups[0]).requires_grad_(True)
    assert torch.autograd.gradcheck(koleo_loss, (leaf,))


def test_koleo_tiny_batches_and_duplicates_stay_finite() -> None:
    one = torch.randn(1, 8, requires_grad=True)
    loss = koleo_loss(one)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(one.grad, torch.zeros(1, 8))
    twins = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 1.0]], requires_grad=True)
    loss = koleo_loss(twins)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(twins.grad).all()


# ---------------------------------------------------------------- Gram


def test_gram_hand_worked() -> None:
    # Student patches orthogonal → Gram I; teacher patches parallel → Gram of ones.
    # Off-diagonal differences of 1 in 2 of 4 entries → 0.5.
    student = torch.tensor([[[3.0, 0.0], [0.0, 2.0]]])
    teacher = torch.tensor([[[1.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    assert gram_loss(student, teacher).item() == pytest.approx(0.5, abs=1e-6)


def test_gram_matches_loop_and_gradient() -> None:
    rng = _rng(6)
    student = rng.normal(size=(3, 4, 5))
    teacher = rng.normal(size=(3, 4, 7))  # teacher width may differ
    per_image = []
    for s_img, t_img in zip(student, teacher):
        total = 0.0
        for i in range(4):
            for j in range(4):
                s_cos = s_img[i] @ s_img[j] / np.linalg.norm(s_img[i]) / np.linalg.norm(s_img[j])
                t_cos = t_img[i] @ t_img[j] / np.linalg.norm(t_img[i]) / np.linalg.norm(t_img[j])
                total += (s_cos - t_cos) ** 2
        per_image.append(total / 16)
    assert gram_loss(_t(student), _t(teacher)).item() == pytest.approx(np.mean(per_image))
    s_leaf = _t(student).requires_grad_(True)
    t_leaf = _t(teacher).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: gram_loss(s, t_leaf), (s_leaf,))
    gram_loss(s_leaf, t_leaf).backward()
    assert t_leaf.grad is None  # the teacher is a fixed target
    with pytest.raises(ValueError, match=r"gram_loss\(teacher_patches\)"):
        gram_loss(torch.zeros(2, 4, 3), torch.zeros(2, 5, 3))


# ---------------------------------------------------------------- SupCon and class variance


def _supcon_reference(embeddings: np.ndarray, labels: np.ndarray, tau: float) -> float:
    unit = _unit(embeddings)
    n = len(unit)
    total = 0.0
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(unit[i] @ unit[a] / tau) for a in range(n) if a != i)
        terms = [math.log(math.exp(unit[i] @ unit[p] / tau) / denominator) for p in positives]
        total += -sum(terms) / len(positives)
    return total / n


def test_supcon_hand_worked() -> None:
    # τ = 1; anchor 0: −log(1/(1+e⁻¹)); anchor 1: −log(1/2); anchor 2 has no positive → 0.
    embeddings = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    expected = (math.log(1 + math.exp(-1)) + math.log(2.0)) / 3
    assert supcon_loss(embeddings, labels, 1.0).item() == pytest.approx(expected, abs=1e-6)


def test_supcon_matches_anchor_loop_and_gradient() -> None:
    rng = _rng(7)
    embeddings = rng.normal(size=(7, 5))
    labels = np.array([0, 1, 0, 2, 1, 1, 3])  # classes 2 and 3 are anchors without positives
    expected = _supcon_reference(embeddings, labels, 0.07)
    loss = supcon_loss(_t(embeddings), torch.tensor(labels), 0.07)
    assert loss.item() == pytest.approx(expected)
    leaf = _t(embeddings).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: supcon_loss(e, torch.tensor(labels), 0.5), (leaf,))
    single = torch.randn(1, 4, requires_grad=True)
    assert supcon_loss(single, torch.tensor([0])).item() == 0.0
    with pytest.raises(ValueError, match=r"supcon_loss\(labels\).*3 entries for 7"):
        supcon_loss(_t(embeddings), torch.tensor([0, 1, 0]))


def test_class_variance_hand_worked_and_loop() -> None:
    # Class 0: unit vectors (1,0), (0,1), mean (.5,.5), squared deviations (.25, .25) each:
    # published mean over samples and dimensions 0.25, summed over dimensions 0.5;
    # class 1 has one sample and is skipped.
    embeddings = torch.tensor([[4.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    loss = class_variance_loss(embeddings, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(0.25, abs=1e-6)
    summed = class_variance_loss(embeddings, torch.tensor([0, 0, 1]), reduction="sum")
    assert summed.item() == pytest.approx(0.5, abs=1e-6)
    rng = _rng(8)
    points = rng.normal(size=(9, 3))
    labels = np.array([2, 0, 2, 5, 0, 2, 7, 0, 2])  # class 5 and 7 singletons
    unit = _unit(points)
    per_class = []
    for c in (0, 2):
        members = unit[labels == c]
        centre = members.mean(axis=0)
        per_class.append(((members - centre) ** 2).mean())  # the published script's .mean()
    got = class_variance_loss(_t(points), torch.tensor(labels)).item()
    assert got == pytest.approx(np.mean(per_class))
    summed = class_variance_loss(_t(points), torch.tensor(labels), reduction="sum").item()
    assert summed == pytest.approx(3 * np.mean(per_class))
    singletons = class_variance_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert singletons.item() == 0.0


# ---------------------------------------------------------------- Cox


def _breslow_reference(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Explicit risk-set loop: −Σ_events (r_i − log Σ_{t_j ≥ t_i} e^{r_j}) / #events."""
    total = 0.0
    for i in range(len(risk)):
        if event[i]:
            at_risk = [j for j in range(len(risk)) if time[j] >= time[i]]
            total -= risk[i] - math.log(sum(math.exp(risk[j]) for j in at_risk))
    return total / event.sum()


def test_cox_hand_worked_with_and_without_ties() -> None:
    # No ties: event at t=1 over {e⁰, 2, e⁰} → ln4; event at t=3 alone → 0; 2 events → ln2.
    risk = torch.tensor([0.0, math.log(2.0), 0.0])
    loss = cox_loss(risk, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 0, 1]))
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    # Breslow ties: both events at t=1 share the risk set {1, 2, 3} (sum 6): ln6 and ln3.
    risk = torch.tensor([0.0, math.log(2.0), math.log(3.0)])
    loss = cox_loss(risk, torch.tensor([1.0, 1.0, 2.0]), torch.tensor([True, True, False]))
    assert loss.item() == pytest.approx((math.log(6.0) + math.log(3.0)) / 2, abs=1e-6)


def test_cox_matches_breslow_loop_with_ties_and_censoring() -> None:
    rng = _rng(9)
    risk = rng.normal(size=25)
    time = rng.integers(1, 8, size=25).astype(float)  # many ties
    event = rng.random(25) < 0.6
    loss = cox_loss(_t(risk)[:, None], _t(time), torch.tensor(event))
    assert loss.item() == pytest.approx(_breslow_reference(risk, time, event))
    leaf = _t(risk).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: cox_loss(r, _t(time), torch.tensor(event)), (leaf,))


def test_cox_matches_lifelines_log_likelihood() -> None:
    lifelines = pytest.importorskip("lifelines")
    import pandas as pd

    rng = _rng(10)
    x = rng.normal(size=40)
    time = rng.exponential(scale=np.exp(-0.8 * x))  # distinct times: Efron = Breslow
    event = rng.random(40) < 0.7
    frame = pd.DataFrame({"x": x, "time": time, "event": event.astype(int)})
    fitter = lifelines.CoxPHFitter().fit(frame, duration_col="time", event_col="event")
    beta = float(fitter.params_["x"])
    loss = cox_loss(_t(beta * x), _t(time), torch.tensor(event))
    assert -loss.item() * event.sum() == pytest.approx(fitter.log_likelihood_, rel=1e-6)
    assert beta > 0  # higher risk ⇔ earlier event, the sign convention the loss uses


def test_cox_no_events_and_direction() -> None:
    risk = torch.randn(5, requires_grad=True)
    loss = cox_loss(risk, torch.arange(5.0), torch.zeros(5, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(risk.grad, torch.zeros(5))
    time, event = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.ones(4)
    right_order = torch.tensor([3.0, 2.0, 1.0, 0.0])  # earliest event has the highest risk
    assert cox_loss(right_order, time, event) < cox_loss(right_order.flip(0), time, event)
    with pytest.raises(ValueError, match=r"cox_loss\(event\).*3 entries for 4"):
        cox_loss(torch.zeros(4), time, torch.ones(3))


# ---------------------------------------------------------------- Dice


def _dice_reference(probs: np.ndarray, truth: np.ndarray, batch: bool, smooth: float) -> float:
    """Per-class loops over [N, C, ...] float64 maps; classes absent from the target skipped."""
    groups = [list(range(probs.shape[0]))] if batch else [[n] for n in range(probs.shape[0])]
    scores = []
    for images in groups:
        for c in range(probs.shape[1]):
            p, g = probs[images, c], truth[images, c]
            if g.sum() == 0:
                continue
            scores.append(1 - (2 * np.sum(p * g) + smooth) / (p.sum() + g.sum() + smooth))
    return float(np.mean(scores)) if scores else 0.0


def test_dice_hand_worked_two_pixels() -> None:
    # Foreground probabilities 3/4 and 1/2, target [1, 0]: Dice = 2·0.75 / (1.25 + 1) = 2/3.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])  # [N=1, C=2, L=2]
    loss = dice_loss(logits, torch.tensor([[1, 0]]), smooth=1e-12)
    assert loss.item() == pytest.approx(1 / 3, abs=1e-6)


@pytest.mark.parametrize("batch_dice", [True, False])
def test_dice_softmax_matches_loop_skipping_absent_classes(batch_dice: bool) -> None:
    rng = _rng(11)
    logits = rng.normal(size=(2, 4, 5, 6))
    labels = rng.choice([0, 1, 3], size=(2, 5, 6))  # class 2 absent everywhere
    labels[1][labels[1] == 3] = 1  # class 3 absent from image 1 only
    probs = _softmax(np.moveaxis(logits, 1, -1))
    probs = np.moveaxis(probs, -1, 1)
    truth = np.moveaxis(np.eye(4)[labels], -1, 1)
    expected = _dice_reference(probs[:, 1:], truth[:, 1:], batch_dice, 1e-5)
    loss = dice_loss(_t(logits), torch.tensor(labels), batch_dice=batch_dice)
    assert loss.item() == pytest.approx(expected)
    with_background = _dice_reference(probs, truth, batch_dice, 1e-5)
    loss = dice_loss(
        _t(logits), torch.tensor(labels), batch_dice=batch_dice, include_background=True
    )
    assert loss.item() == pytest.approx(with_background)


def test_dice_multilabel_regions_and_edge_cases() -> None:
    rng = _rng(12)
    logits = rng.normal(size=(2, 3, 4, 4))
    regions = (rng.random(size=(2, 3, 4, 4)) < 0.4).astype(float)  # overlapping 0/1 regions
    probs = 1 / (1 + np.exp(-logits))
    expected = _dice_reference(probs, regions, True, 1e-5)
    assert dice_loss(_t(logits), _t(regions), multilabel=True).item() == pytest.approx(expected)
    perfect = torch.tensor(regions) * 40 - 20
    assert dice_loss(perfect, _t(regions), multilabel=True).item() < 1e-6
    background_only = dice_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    assert background_only.item() == 0.0
    with pytest.raises(DataError, match=r"dice_loss\(target\).*\[0, 2\].*found 0\.\.4"):
        dice_loss(torch.randn(1, 3, 4, 4), torch.tensor([[[0, 4], [1, 2]]]).repeat(1, 2, 2))
    with pytest.raises(ValueError, match=r"dice_loss\(target\).*multilabel"):
        dice_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), multilabel=True)


def _bicubic_numpy(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resampling [N, D, h, w] -> [N, D, h', w'] written out in float64: Keys' cubic
    kernel with a = -0.75, pixel-centre coordinates, edge indices clamped (PyTorch's rules)."""

    def weights(t: float) -> list[float]:
        a = -0.75

        def near(x):  # |x| <= 1
            return ((a + 2) * x - (a + 3)) * x * x + 1

        def far(x):  # 1 < |x| < 2
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    def axis(n_in: int, n_out: int) -> np.ndarray:
        matrix = np.zeros((n_out, n_in))
        for i in range(n_out):
            src = (i + 0.5) * n_in / n_out - 0.5
            base = int(np.floor(src))
            for k, w in zip(range(base - 1, base + 3), weights(src - base)):
                matrix[i, min(max(k, 0), n_in - 1)] += w
        return matrix

    rows, cols = axis(maps.shape[2], size[0]), axis(maps.shape[3], size[1])
    return np.einsum("ih,ndhw,jw->ndij", rows, maps, cols)


def test_a_higher_resolution_teachers_patch_map_is_resized_bicubically() -> None:
    from braindino.losses.gram import resize_patch_grid

    rng = _rng(21)
    teacher = rng.normal(size=(2, 8 * 6, 5))  # [N, h*w, D] on an 8 x 6 grid (2x a 4 x 3 one)
    resized = resize_patch_grid(_t(teacher), (8, 6), (4, 3))
    maps = teacher.transpose(0, 2, 1).reshape(2, 5, 8, 6)
    expected = _bicubic_numpy(maps, (4, 3)).reshape(2, 5, 12).transpose(0, 2, 1)
    np.testing.assert_allclose(resized.numpy(), expected, rtol=1e-10, atol=1e-12)
    same = resize_patch_grid(_t(teacher), (8, 6), (8, 6))
    assert torch.equal(same, _t(teacher))
    with pytest.raises(ValueError, match=r"resize_patch_grid\(patches\).*48 patches"):
        resize_patch_grid(_t(teacher), (7, 6), (4, 3))
