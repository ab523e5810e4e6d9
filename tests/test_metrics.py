"""braindino.metrics against independent computations (hand-worked cases, brute force in float64,
scikit-learn, lifelines, SimpleITK)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from lifelines.utils import concordance_index as lifelines_c
from scipy import ndimage
from scipy.spatial.distance import cdist
from scipy.stats import chi2
from sklearn.metrics import roc_auc_score

from braindino.errors import BrainDinoError, ConfigError
from braindino.metrics import (
    HD95_EMPTY_MM,
    HIGHER_IS_BETTER,
    METRICS,
    balanced_accuracy,
    bootstrap_ci,
    concordance_index,
    dice,
    get_metric,
    hd95,
    kaplan_meier_split,
    knn_accuracy,
    macro_auc,
    mae,
    pearson_r,
    r2,
    rmse,
)

# ---------------------------------------------------------------- classification


def test_binary_auc_hand_worked() -> None:
    # Positives {0.35, 0.8} vs negatives {0.1, 0.4}: 3 of the 4 pairs are ranked right.
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    assert macro_auc(y, p1) == pytest.approx(0.75)
    assert macro_auc(y, np.stack([1 - p1, p1], axis=1)) == pytest.approx(0.75)
    # A tied positive/negative pair counts one half: pairs (0.2 vs 0.2) tie, (0.2 vs 0.9) right.
    assert macro_auc([0, 1, 1], [0.2, 0.2, 0.9]) == pytest.approx(0.75)


def test_multiclass_auc_matches_sklearn_ovr_macro() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(y, proba, multi_class="ovr", average="macro")
    assert macro_auc(y, proba) == pytest.approx(expected, abs=1e-12)
    # Raw logits rank each class differently from its probability: refused, not mis-scored.
    with pytest.raises(BrainDinoError, match="softmax"):
        macro_auc(y, logits)


def test_auc_undefined_when_a_class_is_missing_and_bad_labels_raise() -> None:
    assert np.isnan(macro_auc([1, 1, 1], [0.2, 0.3, 0.9]))
    assert np.isnan(macro_auc([0, 1, 1], np.full((3, 3), 1 / 3)))
    with pytest.raises(BrainDinoError, match=r"macro_auc\(y_true\)"):
        macro_auc([0, 3, 1], np.full((3, 3), 1 / 3))
    with pytest.raises(BrainDinoError, match="different lengths"):
        macro_auc([0, 1], [0.1, 0.2, 0.3])


def test_balanced_accuracy_hand_worked() -> None:
    # Class 0 recall 2/3, class 1 recall 1/1 → mean 5/6.
    assert balanced_accuracy([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(5 / 6)
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    assert balanced_accuracy([0, 0, 0, 1], scores) == pytest.approx(5 / 6)


# ---------------------------------------------------------------- regression


def test_regression_metrics_against_float64_formulas() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 40)
    p = y + rng.normal(0, 5, 40)
    err = p - y
    assert mae(y, p) == pytest.approx(np.abs(err).sum() / 40)
    assert rmse(y, p) == pytest.approx(np.sqrt((err**2).sum() / 40))
    assert r2(y, p) == pytest.approx(1 - (err**2).sum() / ((y - y.mean()) ** 2).sum())
    yc, pc = y - y.mean(), p - p.mean()
    assert pearson_r(y, p) == pytest.approx((yc @ pc) / np.sqrt((yc @ yc) * (pc @ pc)))
    assert mae([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.5)


def test_regression_undefined_cases_and_nan_input() -> None:
    assert np.isnan(r2([3.0, 3.0, 3.0], [1.0, 2.0, 3.0]))
    assert np.isnan(pearson_r([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    with pytest.raises(BrainDinoError, match=r"mae\(y_pred\).*NaN"):
        mae([1.0, 2.0], [1.0, np.nan])


# ---------------------------------------------------------------- survival


def _brute_force_c(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C over all ordered pairs (i had the event first), ties in risk count 1/2."""
    concordant = comparable = 0.0
    for i, j in itertools.permutations(range(len(time)), 2):
        if not event[i]:
            continue
        if time[j] > time[i] or (time[j] == time[i] and not event[j]):
            comparable += 1
            concordant += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return concordant / comparable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concordance_matches_brute_force_and_lifelines_with_ties_and_censoring(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 45
    time = rng.integers(1, 12, n).astype(float)  # many tied times
    risk = np.round(rng.normal(size=n) - 0.1 * time, 1)  # tied risks, informative
    event = rng.random(n) < 0.6
    expected = _brute_force_c(time, risk, event)
    assert concordance_index(time, risk, event) == pytest.approx(expected, abs=1e-12)
    assert concordance_index(time, risk, event) == pytest.approx(
        lifelines_c(time, -risk, event), abs=1e-12
    )


def test_concordance_direction_and_undefined() -> None:
    time = np.array([1.0, 2.0, 3.0, 4.0])
    assert concordance_index(time, [4, 3, 2, 1]) == 1.0  # higher risk dies earlier
    assert concordance_index(time, [1, 2, 3, 4]) == 0.0
    assert np.isnan(concordance_index(time, [1, 2, 3, 4], [0, 0, 0, 0]))
    with pytest.raises(BrainDinoError, match=r"concordance_index\(event\)"):
        concordance_index(time, [1, 2, 3, 4], [0, 2, 1, 1])


def _km_by_hand(time: np.ndarray, event: np.ndarray) -> dict[float, float]:
    survival, out = 1.0, {}
    for t in np.unique(time[event]):
        at_risk = np.sum(time >= t)
        deaths = np.sum((time == t) & event)
        survival *= 1 - deaths / at_risk
        out[float(t)] = survival
    return out


def _logrank_p_by_hand(time, event, group) -> float:
    observed_minus_expected = variance = 0.0
    for t in np.unique(time[event]):
        at_risk = time >= t
        n, n1 = at_risk.sum(), (at_risk & group).sum()
        d = ((time == t) & event).sum()
        d1 = ((time == t) & event & group).sum()
        observed_minus_expected += d1 - d * n1 / n
        if n > 1:
            variance += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    return float(chi2.sf(observed_minus_expected**2 / variance, 1))


def test_kaplan_meier_split_against_hand_computation() -> None:
    rng = np.random.default_rng(3)
    n = 40
    risk = rng.normal(size=n)
    time = np.round(rng.exponential(np.exp(-risk) * 10), 0) + 1
    event = rng.random(n) < 0.7
    split = kaplan_meier_split(time, risk, event)
    high = risk > np.median(risk)
    assert split.threshold == pytest.approx(np.median(risk))
    assert split.high.n_subjects == high.sum() and split.low.n_subjects == (~high).sum()
    for curve, members in ((split.high, high), (split.low, ~high)):
        for t, s in _km_by_hand(time[members], event[members]).items():
            at = np.searchsorted(curve.timeline, t)
            assert curve.timeline[at] == t and curve.survival[at] == pytest.approx(s)
    assert split.logrank_p == pytest.approx(_logrank_p_by_hand(time, event, high), rel=1e-8)
    assert split.logrank_p < 0.05  # risk drives the times, so the groups separate
    with pytest.raises(BrainDinoError, match="high-risk group is empty"):
        kaplan_meier_split(time, np.ones(n), event)


# ---------------------------------------------------------------- k-NN


def test_knn_accuracy_matches_brute_force_cosine_vote() -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 8))
    train_y, test_y = rng.integers(0, 3, 60), rng.integers(0, 3, 25)
    train_x = centres[train_y] + rng.normal(size=(60, 8))
    test_x = centres[test_y] + rng.normal(size=(25, 8))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    order = np.argsort(-(unit(test_x) @ unit(train_x).T), axis=1)
    result = knn_accuracy(train_x, train_y, test_x, test_y, ks=(1, 4, 9, 100))
    for k in (1, 4, 9):
        votes = np.stack([np.bincount(train_y[row[:k]], minlength=3) for row in order])
        expected = np.mean(votes.argmax(axis=1) == test_y)  # ties → smallest label
        assert result[k] == pytest.approx(expected)
    assert result[1] > 0.5 and np.isnan(result[100])  # k above the training size: undefined


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_resamples_subjects_jointly_and_is_seeded() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=50)
    # If arrays were resampled independently, a and its copy would disagree in resamples.
    assert bootstrap_ci(lambda x, y: float(np.mean(x == y)), a, a.copy(), n=200) == (1, 1, 1)
    first = bootstrap_ci(np.mean, a, n=300, seed=7)
    assert first == bootstrap_ci(np.mean, a, n=300, seed=7)
    assert first != bootstrap_ci(np.mean, a, n=300, seed=8)


def test_bootstrap_interval_of_a_mean_has_the_normal_theory_width() -> None:
    a = np.random.default_rng(6).normal(size=400)
    point, low, high = bootstrap_ci(np.mean, a, n=1000)
    half_width = 1.959964 * a.std(ddof=1) / np.sqrt(a.size)
    assert point == pytest.approx(a.mean())
    assert low < point < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)


def test_bootstrap_skips_undefined_resamples() -> None:
    y = np.array([1] * 3 + [0] * 37)  # rare class: some resamples hold no positive
    score = np.where(y == 1, 0.8, 0.3) + np.random.default_rng(0).normal(0, 0.2, 40)
    point, low, high = bootstrap_ci(macro_auc, y, score, n=300)
    assert np.isfinite([point, low, high]).all() and low <= point <= high
    with pytest.raises(BrainDinoError, match="undefined on the full data"):
        bootstrap_ci(macro_auc, np.ones(10, int), np.arange(10.0))


# ---------------------------------------------------------------- segmentation


def _blob(seed: int, shape=(20, 22, 18), threshold=0.9) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=shape)
    smooth = ndimage.gaussian_filter(noise, 2.0)
    mask = smooth > threshold * smooth.std()
    return np.pad(mask, 2)  # keep the image edge out of SimpleITK's contour convention


def _sitk(mask: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))  # numpy axis order is reversed
    return image


def _surface_points(mask: np.ndarray, spacing) -> np.ndarray:
    """Surface voxels (a face neighbour outside), found by shifting; coordinates in mm."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    interior = inner.copy()
    for axis in range(3):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~interior) * np.asarray(spacing)


@pytest.mark.parametrize("seed", [0, 1])
def test_dice_matches_simpleitk_overlap(seed: int) -> None:
    pred, target = _blob(seed), _blob(seed + 10)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_sitk(target), _sitk(pred))
    assert dice(pred, target) == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    assert dice(pred.astype(np.uint8), target) == dice(pred, target)


@pytest.mark.parametrize("seed", [0, 1])
def test_hd95_matches_brute_force_and_simpleitk_hausdorff(seed: int) -> None:
    pred, target = _blob(seed), _blob(seed + 10)
    spacing = (1.2, 0.9, 2.5)
    a, b = _surface_points(pred, spacing), _surface_points(target, spacing)
    pairwise = cdist(a, b)
    distances = np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])
    assert hd95(pred, target, spacing) == pytest.approx(np.percentile(distances, 95), abs=1e-9)
    # The 100th percentile is the Hausdorff distance between the two surfaces.
    contour = sitk.BinaryContourImageFilter()
    contour.SetFullyConnected(False)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(
        contour.Execute(_sitk(pred, spacing)), contour.Execute(_sitk(target, spacing))
    )
    full = hd95(pred, target, spacing, percentile=100)
    assert full == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-6)
    assert hd95(pred, target, spacing) <= full


def test_hd95_masks_touching_the_image_edge_count_the_edge_as_outside() -> None:
    pred, target = _blob(2)[2:-2, 2:-2, 2:-2], _blob(3)[2:-2, 2:-2, 2:-2]
    assert pred[0].any() and target[:, :, -1].any()  # both masks reach the image border
    a, b = _surface_points(pred, (1, 1, 1)), _surface_points(target, (1, 1, 1))
    pairwise = cdist(a, b)
    distances = np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])
    assert hd95(pred, target) == pytest.approx(np.percentile(distances, 95), abs=1e-9)


def test_one_voxel_and_empty_masks_follow_brats() -> None:
    pred, target = np.zeros((6, 6, 9), bool), np.zeros((6, 6, 9), bool)
    assert dice(pred, target) == 1.0 and hd95(pred, target) == 0.0
    target[2, 2, 2] = True
    assert dice(pred, target) == 0.0 and hd95(pred, target) == HD95_EMPTY_MM
    assert hd95(target, pred) == HD95_EMPTY_MM
    assert pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=0.01) == HD95_EMPTY_MM
    pred[2, 2, 2] = True
    assert dice(pred, target) == 1.0 and hd95(pred, target) == 0.0
    pred[2, 2, 2], pred[2, 2, 5] = False, True  # one voxel 3 steps away along a 2 mm axis
    assert dice(pred, target) == 0.0
    assert hd95(pred, target, spacing=(1.0, 1.0, 2.0)) == pytest.approx(6.0)


def test_segmentation_bad_input_names_the_argument() -> None:
    with pytest.raises(BrainDinoError, match=r"dice\(pred\).*shape"):
        dice(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 5), bool))
    with pytest.raises(BrainDinoError, match=r"hd95\(target\).*0/1"):
        hd95(np.zeros((4, 4, 4), bool), np.full((4, 4, 4), 4))
    with pytest.raises(BrainDinoError, match=r"hd95\(spacing\)"):
        hd95(np.ones((4, 4, 4), bool), np.ones((4, 4, 4), bool), spacing=(1.0, 1.0))


def test_metrics_by_config_name() -> None:
    assert get_metric("c_index") is concordance_index and get_metric("hd95") is hd95
    assert set(HIGHER_IS_BETTER) == set(METRICS)
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        get_metric("auc")


def test_mcnemar_hand_worked_and_without_discordant_pairs() -> None:
    from braindino.metrics.paired import mcnemar_p

    # 5 subjects only the first gets right, 1 only the second, 4 both: exact two-sided
    # p = 2 * P(X <= 1 | 6, 1/2) = 2 * 7 / 64
    first = [1] * 5 + [0] + [1] * 4
    second = [0] * 5 + [1] + [1] * 4
    assert mcnemar_p(first, second) == pytest.approx(14 / 64)
    assert mcnemar_p(first, first) == 1.0


def test_paired_bootstrap_difference_matches_the_normal_approximation() -> None:
    """A mean difference over 600 paired subjects: the point is the difference of the means and
    the paired interval is about ±1.96 sd(a − b)/√n (much narrower than unpaired)."""
    from braindino.metrics.paired import paired_difference

    rng = np.random.default_rng(0)
    shared = rng.normal(size=600)
    a, b = shared + rng.normal(0.1, 0.3, 600), shared + rng.normal(0.0, 0.3, 600)
    value, low, high = paired_difference(np.mean, [a], [b], n=2000, seed=1)
    assert value == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    half = 1.96 * np.std(a - b, ddof=1) / np.sqrt(600)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert paired_difference(np.mean, [a], [a], n=50) == (0.0, 0.0, 0.0)


def _delong_by_comparison_table(y, a, b):
    """DeLong's statistic the long way: the [positives, negatives] table of pair comparisons
    (1 / ½ / 0) per scorer, its row and column means, their sample covariances."""
    y = np.asarray(y, bool)

    def components(s):
        psi = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
        return psi.mean(axis=1), psi.mean(axis=0)

    (a10, a01), (b10, b01) = components(np.asarray(a, float)), components(np.asarray(b, float))
    s10, s01 = np.cov([a10, b10]), np.cov([a01, b01])
    var = s10 / y.sum() + s01 / (~y).sum()
    z = (a10.mean() - b10.mean()) / math.sqrt(var[0, 0] + var[1, 1] - 2 * var[0, 1])
    return a10.mean(), b10.mean(), math.erfc(abs(z) / math.sqrt(2))


def test_delong_matches_the_comparison_table_and_sklearn_aucs() -> None:
    from sklearn.metrics import roc_auc_score

    from braindino.metrics.paired import delong_p

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    a = y + rng.normal(0, 0.8, 80)
    b = np.round(0.1 * y + rng.normal(0, 0.8, 80), 1)  # rounded: ties within and across classes
    auc_a, auc_b, p = delong_p(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a)) and auc_b == pytest.approx(
        roc_auc_score(y, b)
    )
    expected = _delong_by_comparison_table(y, a, b)
    assert (auc_a, auc_b, p) == pytest.approx(expected, rel=1e-9)
    assert 0 < p < 0.05  # a clearly better scorer on 80 subjects
    assert delong_p(y, a, 2 * a + 1)[2] == 1.0  # the same ranking: no difference at all
    with pytest.raises(BrainDinoError, match="two positives"):
        delong_p([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])


def test_paired_comparisons_give_delong_for_two_classes_only() -> None:
    from omegaconf import OmegaConf

    from braindino.downstream.paired import paired_comparisons
    from braindino.downstream.target_kinds import TargetKind

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 40)
    rows = []
    for encoder, signal in (("encoder", 1.5), ("random_init", 0.3)):
        p1 = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1, 40))))
        rows.append(
            pd.DataFrame(
                {
                    "encoder": encoder,
                    "fraction": 1.0,
                    "seed": 0,
                    "subject": [f"s{i:02d}" for i in range(40)],
                    "target": y,
                    "proba_no": 1 - p1,
                    "proba_yes": p1,
                }
            )
        )
    predictions = pd.concat(rows)
    task = OmegaConf.create({"target": "class", "labels": {"classes": ["no", "yes"]}})
    (record,) = paired_comparisons(predictions, "macro_auc", TargetKind(task), n=200)
    a, b = (
        predictions[predictions.encoder == e]["proba_yes"].to_numpy()
        for e in ("encoder", "random_init")
    )
    assert record["difference"]["value"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert record["delong_p"] == pytest.approx(_delong_by_comparison_table(y, a, b)[2], rel=1e-9)
    three = OmegaConf.create({"target": "class", "labels": {"classes": ["no", "yes", "maybe"]}})
    predictions["proba_maybe"] = 0.0
    (multi,) = paired_comparisons(predictions, "macro_auc", TargetKind(three), n=20)
    assert multi["delong_p"] is None  # DeLong compares two-class AUCs only
