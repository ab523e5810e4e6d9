"""Downstream heads on slice features: pooling maths, losses, training with validation-only
selection, and learning on synthetic features where only some slices carry the signal."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from braindino.errors import BrainDinoError, ConfigError
from braindino.heads import (
    AttentionPoolingHead,
    CoxHead,
    HeadData,
    MeanPoolHead,
    RegressionHead,
    TargetScaler,
    build_head,
    fit_head,
    pad_slices,
    predict,
    survival_targets,
)
from braindino.losses import class_variance_loss, supcon_loss
from braindino.metrics import concordance_index, macro_auc, r2

SIGNAL = slice(6, 10)  # the slices that carry the label in the synthetic features


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared CPU cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def signal_slices(n: int, seed: int, slices: int = 16, dim: int = 16) -> HeadData:
    """Noise slices; slices 6–9 carry a marker (dim 1) and the class (sign of dim 0)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    features = torch.randn(n, slices, dim, generator=generator)
    features[:, SIGNAL, 1] += 2.0
    features[:, SIGNAL, 0] += (2.0 * labels[:, None] - 1.0) * 0.8
    return HeadData(features, labels)


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 6, 8, generator=generator)
    age = 50 + 15 * features[:, :, 0].mean(1) + 8 * features[:, :, 2].mean(1)
    return features, age


def auc_metric(outputs: dict, labels: torch.Tensor) -> float:
    return macro_auc(labels.numpy(), outputs["logits"].softmax(1).numpy())


# ---------------------------------------------------------------- pooling maths


def test_attention_matches_formula_sums_to_one_and_ignores_padding() -> None:
    torch.manual_seed(0)
    head = AttentionPoolingHead(8, 3, attn_dim=5).double()
    features = torch.randn(2, 6, 8, dtype=torch.float64)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True  # volume 1 has 4 real slices
    out = head(features, mask)
    # Independent float64 numpy computation of s_i = w2·tanh(W1 h_i + b1), softmax, Σ α h.
    w1 = head.pooling.score_hidden.weight.detach().numpy()
    b1 = head.pooling.score_hidden.bias.detach().numpy()
    w2 = head.pooling.score.weight.detach().numpy()[0]
    for b, n_real in ((0, 6), (1, 4)):
        h = features[b, :n_real].numpy()
        s = np.tanh(h @ w1.T + b1) @ w2
        alpha = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        np.testing.assert_allclose(out["attention"][b, :n_real].detach().numpy(), alpha)
    assert torch.all(out["attention"][1, 4:] == 0)
    torch.testing.assert_close(out["attention"].sum(1), torch.ones(2, dtype=torch.float64))
    # Whatever sits in the padding slices does not change the outputs.
    scrambled = features.clone()
    scrambled[1, 4:] = 1e3
    for key in ("logits", "embedding", "attention"):
        torch.testing.assert_close(head(scrambled, mask)[key], out[key])
    torch.testing.assert_close(head(features[1:, :4])["logits"], out["logits"][1:])


def test_mean_pool_head_is_layernorm_linear_gelu_linear_of_the_unpadded_mean() -> None:
    torch.manual_seed(0)
    head = MeanPoolHead(8, 3, hidden=16).double()
    features, mask = pad_slices([torch.randn(5, 8), torch.randn(3, 8)])
    assert features.shape == (2, 5, 8) and mask.tolist()[1] == [False] * 3 + [True] * 2
    logits = head(features.double(), mask)["logits"]
    norm, first, _, _, second = head.mlp
    for b, n_real in ((0, 5), (1, 3)):
        pooled = features[b, :n_real].double().mean(0)
        normed = (pooled - pooled.mean()) / torch.sqrt(pooled.var(unbiased=False) + norm.eps)
        normed = normed * norm.weight + norm.bias
        hidden = first(normed)
        gelu = 0.5 * hidden * (1 + torch.erf(hidden / np.sqrt(2.0)))
        torch.testing.assert_close(logits[b], second(gelu))


def test_float16_cached_features_are_accepted() -> None:
    head = MeanPoolHead(8, 2)
    out = head(torch.randn(3, 4, 8).half())
    assert out["logits"].dtype == torch.float32 and torch.isfinite(out["logits"]).all()


# ---------------------------------------------------------------- losses


def test_composite_loss_is_ce_plus_supcon_plus_tenth_class_variance() -> None:
    torch.manual_seed(1)
    head = AttentionPoolingHead(8, 3)
    out = head(torch.randn(10, 5, 8))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    expected = (
        F.cross_entropy(out["logits"], labels)
        + supcon_loss(out["embedding"], labels, temperature=0.07)
        + 0.1 * class_variance_loss(out["embedding"], labels)
    )
    torch.testing.assert_close(head.composite_loss(out, labels), expected)
    weighted = AttentionPoolingHead(8, 3, supcon_weight=0.5, variance_weight=2.0)
    weighted.load_state_dict(head.state_dict())
    expected = (
        F.cross_entropy(out["logits"], labels)
        + 0.5 * supcon_loss(out["embedding"], labels)
        + 2.0 * class_variance_loss(out["embedding"], labels)
    )
    torch.testing.assert_close(weighted.composite_loss(out, labels), expected)


def test_regression_losses_and_cox_loss_hand_worked() -> None:
    prediction = torch.tensor([0.0, 1.0, 4.0])
    target = torch.tensor([1.0, 1.0, 1.0])
    out = {"prediction": prediction}
    assert float(RegressionHead(4).loss(out, target)) == pytest.approx((1 + 0 + 9) / 3)
    assert float(RegressionHead(4, loss="mae").loss(out, target)) == pytest.approx(4 / 3)
    # Huber, delta 1: 0.5·1² for |e| = 1, 0 for 0, 1·(3 − 0.5) for |e| = 3.
    assert float(RegressionHead(4, loss="huber").loss(out, target)) == pytest.approx(3 / 3)
    # Cox: times 1, 2, 3 all events, risks r: Σ_i [log Σ_{j ≥ i} e^{r_j} − r_i] / 3.
    risk = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)
    r = risk.numpy()
    by_hand = sum(np.log(np.exp(r[i:]).sum()) - r[i] for i in range(3)) / 3
    loss = CoxHead(4).loss({"risk": risk}, survival_targets([1, 2, 3], [1, 1, 1]))
    assert float(loss) == pytest.approx(by_hand)


def test_target_scaler_fits_train_only_and_inverts() -> None:
    train = np.array([0.0, 10.0, 100.0, 1000.0])
    scaler = TargetScaler(log1p=True).fit(train)
    logs = np.log1p(train)
    assert scaler.mean == pytest.approx(logs.mean()) and scaler.std == pytest.approx(logs.std())
    other = np.array([5.0, 50.0])  # transforming other data does not refit
    expected = (np.log1p(other) - logs.mean()) / logs.std()
    np.testing.assert_allclose(scaler.transform(other), expected)
    back = scaler.inverse_transform(scaler.transform(torch.tensor(other)))
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), other, rtol=1e-5)
    restored = TargetScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(restored.transform(other), scaler.transform(other))
    with pytest.raises(BrainDinoError, match="log1p needs targets > -1"):
        scaler.transform(np.array([-2.0]))
    with pytest.raises(BrainDinoError, match="not been fitted"):
        TargetScaler().transform(other)
    with pytest.raises(BrainDinoError, match="all 3 training targets are equal"):
        TargetScaler().fit([7.0, 7.0, 7.0])


# ---------------------------------------------------------------- training


def _heads() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [
        AttentionPoolingHead(16, 2),
        MeanPoolHead(16, 2, hidden=32),
        RegressionHead(16, pooling="attention", hidden=32),
        CoxHead(16, pooling="attention", hidden=32),
    ]


@pytest.mark.parametrize("index", range(4))
def test_every_head_parameter_changes_when_trained(index: int) -> None:
    head = _heads()[index]
    data = signal_slices(24, seed=0)
    if isinstance(head, RegressionHead):
        data = HeadData(data.features, data.targets.float() * 2 - 1)
    if isinstance(head, CoxHead):
        data = HeadData(data.features, survival_targets(np.arange(24) + 1.0, np.ones(24)))
    # Every parameter gets a real gradient from the loss (a softmax-invariant score bias b2
    # would get ~1e-9, float rounding only, which Adam would still turn into steps).
    head.loss(head(data.features), data.targets).backward()
    no_gradient = [n for n, p in head.named_parameters() if float(p.grad.abs().max()) < 1e-5]
    assert not no_gradient, f"no gradient: {no_gradient}"
    head.zero_grad()
    before = {name: p.detach().clone() for name, p in head.named_parameters()}
    fit_head(head, data, data, epochs=3, lr=1e-2, batch_size=8, patience=None)
    unchanged = [n for n, p in head.named_parameters() if torch.equal(p.detach(), before[n])]
    assert not unchanged, f"never updated: {unchanged}"


def test_attention_head_learns_and_moves_attention_to_signal_slices() -> None:
    train, val, test = signal_slices(96, 0), signal_slices(64, 1), signal_slices(64, 2)
    torch.manual_seed(0)
    head = AttentionPoolingHead(16, 2)
    mass_before = float(predict(head, test)["attention"][:, SIGNAL].sum(1).mean())
    history = fit_head(
        head, train, val, epochs=30, lr=3e-3, batch_size=16, patience=10,
        metric_fn=auc_metric, maximize=True,
    )  # fmt: skip
    out = predict(head, test)
    attention = out["attention"].mean(0)
    mass_after = float(attention[SIGNAL].sum())
    # Measured over 4 seeds: test AUC 0.90–0.93, signal mass 0.41–0.46 (uniform: 4/16 = 0.25).
    assert auc_metric(out, test.targets) > 0.75
    assert mass_before == pytest.approx(0.25, abs=0.05)
    assert mass_after > 0.34 and mass_after > mass_before + 0.08
    other = torch.ones(16, dtype=torch.bool)
    other[SIGNAL] = False
    assert attention[SIGNAL].min() > attention[other].max()  # every signal slice above the rest
    assert history.best_val_metric == max(history.val_metric)


def test_regression_and_cox_heads_learn_above_chance() -> None:
    (train_x, train_age), (val_x, val_age) = regression_data(128, 0), regression_data(64, 1)
    scaler = TargetScaler().fit(train_age)
    torch.manual_seed(0)
    head = RegressionHead(8, hidden=32)
    fit_head(
        head, (train_x, scaler.transform(train_age)), (val_x, scaler.transform(val_age)),
        epochs=40, lr=3e-3, batch_size=32, patience=8,
    )  # fmt: skip
    predicted = scaler.inverse_transform(predict(head, (val_x, val_age))["prediction"])
    assert r2(val_age.numpy(), predicted.numpy()) > 0.6

    def survival(x: torch.Tensor, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        hazard = np.exp(1.5 * x[:, :, 0].mean(1).numpy() * 2)
        event_time = rng.exponential(1 / hazard)
        censor_time = rng.exponential(2.0, len(hazard))
        return survival_targets(np.minimum(event_time, censor_time), event_time <= censor_time)

    train_y, val_y = survival(train_x, 0), survival(val_x, 1)
    torch.manual_seed(0)
    cox = CoxHead(8, hidden=32)
    fit_head(cox, (train_x, train_y), (val_x, val_y), epochs=40, lr=3e-3, batch_size=128)
    risk = predict(cox, (val_x, val_y))["risk"].numpy()
    assert concordance_index(val_y[:, 0].numpy(), risk, val_y[:, 1].numpy()) > 0.65


def test_fit_head_selects_and_restores_the_best_validation_epoch() -> None:
    torch.manual_seed(0)
    head = MeanPoolHead(16, 2, hidden=8)
    data = signal_slices(16, 0)
    scores = iter([0.2, 0.9, 0.5, 0.4, 0.95, 0.1])  # best at epoch 2; patience 2 stops at 4
    snapshots = []

    def scripted_metric(outputs: dict, labels: torch.Tensor) -> float:
        snapshots.append({k: v.clone() for k, v in head.state_dict().items()})
        return next(scores)

    history = fit_head(
        head, data, data, epochs=6, lr=1e-2, batch_size=4, patience=2,
        metric_fn=scripted_metric, maximize=True,
    )  # fmt: skip
    assert history.val_metric == [0.2, 0.9, 0.5, 0.4] and history.stopped_early
    assert history.best_epoch == 2 and history.best_val_metric == 0.9
    assert len(history.train_loss) == len(history.val_loss) == 4
    for name, value in head.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][name])
    assert not torch.equal(snapshots[1]["mlp.1.weight"], snapshots[3]["mlp.1.weight"])


def test_fit_head_has_no_test_argument_and_is_reproducible() -> None:
    names = inspect.signature(fit_head).parameters
    assert not [name for name in names if "test" in name.lower()]
    data, val = signal_slices(24, 0), signal_slices(12, 1)
    results = []
    for _ in range(2):
        torch.manual_seed(3)
        head = AttentionPoolingHead(16, 2, dropout=0.2)
        history = fit_head(head, data, val, epochs=3, batch_size=5, seed=11, patience=None)
        results.append((history.val_loss, head.state_dict()))
    assert results[0][0] == results[1][0]
    for name, value in results[0][1].items():
        assert torch.equal(value, results[1][1][name])
    torch.manual_seed(3)
    head = AttentionPoolingHead(16, 2, dropout=0.2)
    other = fit_head(head, data, val, epochs=3, batch_size=5, seed=12, patience=None)
    assert other.val_loss != results[0][0]
    plain = MeanPoolHead(16, 2)
    state = torch.get_rng_state()
    fit_head(plain, data, val, epochs=1, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG stream is untouched


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_one_clear_error() -> None:
    head = AttentionPoolingHead(8, 2)
    with pytest.raises(BrainDinoError, match="every slice marked as padding"):
        head(torch.randn(2, 3, 8), torch.tensor([[False] * 3, [True] * 3]))
    with pytest.raises(BrainDinoError, match=r"AttentionPoolingHead\(features\).*in_dim 8"):
        head(torch.randn(2, 3, 7))
    with pytest.raises(BrainDinoError, match=r"padding_mask"):
        head(torch.randn(2, 3, 8), torch.zeros(2, 3))
    data = signal_slices(8, 0, dim=8)
    with pytest.raises(BrainDinoError, match=r"fit_head\(maximize\)"):
        fit_head(head, data, data, epochs=1, maximize=True)
    broken = HeadData(torch.full((8, 4, 8), float("nan")), data.targets)
    with pytest.raises(BrainDinoError, match=r"training loss.*epoch 1"):
        fit_head(head, broken, data, epochs=1)
    with pytest.raises(BrainDinoError, match=r"fit_head\(optimizer\)"):
        fit_head(head, data, data, optimizer="sgd")
    with pytest.raises(BrainDinoError, match=r"RegressionHead\(pooling\)"):
        RegressionHead(8, pooling="max")
    with pytest.raises(BrainDinoError, match=r"survival_targets\(event\)"):
        survival_targets([1.0, 2.0], [1, 2])


def test_build_head_by_config_name() -> None:
    assert isinstance(build_head("mean_mlp", 8, 3), MeanPoolHead)
    assert build_head("attention", 8, 3, attn_dim=4).pooling.score_hidden.out_features == 4
    assert isinstance(build_head("cox", 8, pooling="attention"), CoxHead)
    with pytest.raises(ConfigError, match=r"head: unknown head 'max'"):
        build_head("max", 8, 2)
    with pytest.raises(ConfigError, match="head_options"):
        build_head("regression", 8, hiden=3)
    with pytest.raises(ConfigError, match=r"labels\.classes"):
        build_head("attention", 8)


def test_one_selection_loop_keeps_the_first_of_tied_scores_and_minimises_by_default() -> None:
    from braindino.heads.selection import FitHistory, train_with_selection

    scores = [3.0, 2.0, 2.0, 1.5, 4.0]  # minimised: ties do not replace, epoch 4 is the best
    kept = []
    history = FitHistory()
    best = train_with_selection(
        epochs=5,
        train_epoch=lambda epoch: 10.0 - epoch,
        validate=lambda epoch: (scores[epoch - 1], None),
        snapshot=lambda: kept.append(len(kept)) or {"epoch": torch.tensor(len(history.val_metric))},
        history=history,
        patience=None,
    )
    assert history.best_epoch == 4 and history.best_val_metric == 1.5
    assert int(best["epoch"]) == 4 and len(kept) == 3  # epochs 1, 2 and 4 improved
    assert history.train_loss == [9.0, 8.0, 7.0, 6.0, 5.0] and history.val_loss == []
    assert not history.stopped_early


def test_braindino_default_head_is_the_mean_of_slice_features_then_the_mlp() -> None:
    """``mean_mlp`` = BrainDINO's head: the slice features' mean (padding left out), then
    LayerNorm → Linear → GELU → Linear, recomputed here by hand in float64."""
    torch.manual_seed(0)
    head = MeanPoolHead(6, 3, hidden=5).double()
    features = torch.randn(2, 4, 6, dtype=torch.float64)
    padding = torch.tensor([[False, False, False, True], [False] * 4])
    out = head(features, padding)["logits"]
    norm, first, second = head.mlp[0], head.mlp[1], head.mlp[4]
    means = torch.stack([features[0, :3].mean(0), features[1].mean(0)])
    z = F.layer_norm(means, (6,), norm.weight, norm.bias, norm.eps)
    expected = F.linear(F.gelu(F.linear(z, first.weight, first.bias)), second.weight, second.bias)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
