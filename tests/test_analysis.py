"""Representation analyses (braindino.analysis): patch labels, the dense probe and its
position-only baseline, on hand-built cases and a random micro ViT."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from braindino.analysis import LabelledCase, dense_probe, patch_labels
from braindino.errors import BrainDinoError
from braindino.models import load_encoder
from braindino.synth.tissue import tissue_classes

ENCODER = "random:vit_micro_patch16_dinov3"


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENCODER)


def test_patch_labels_by_majority_centre_and_structure():
    labels = np.array(
        [
            [0, 0, 1, 2, 0, 0],
            [0, 1, 2, 2, 0, 0],
            [0, 0, 3, 3, 0, 0],
            [0, 0, 3, 1, 0, 3],
        ],
        np.uint8,
    )[None]
    # 2x2 patches: [[0,0,0,1], [1,2,2,2], [0,0,0,0]], [[0,0,0,0], [3,3,3,1], [0,0,0,3]]
    assert patch_labels(labels, 2, 4, "majority").tolist() == [[[0, 2, 0], [0, 3, 0]]]
    assert patch_labels(labels, 2, 4, "centre").tolist() == [[[1, 2, 0], [0, 1, 3]]]
    # structure: the most frequent non-zero class once non-zero pixels cover >= 1/4 (1 pixel)
    assert patch_labels(labels, 2, 4, "structure").tolist() == [[[1, 2, 0], [0, 3, 3]]]
    with pytest.raises(BrainDinoError, match="rule"):
        patch_labels(labels, 2, 4, "mode")


def test_tissue_classes_take_the_dominant_tissue_and_wmh_as_wm():
    maps = {
        "csf": np.array([0.6, 0.1, 0.0, 0.0, 0.1]),
        "gm": np.array([0.2, 0.5, 0.2, 0.0, 0.1]),
        "wm": np.array([0.1, 0.3, 0.2, 0.0, 0.1]),
        "wmh": np.array([0.0, 0.0, 0.4, 0.0, 0.0]),
    }
    assert tissue_classes(maps).tolist() == [1, 2, 3, 0, 0]


def _cases(subjects: int, size: int = 64, slices: int = 2) -> list[LabelledCase]:
    """The label is the right half of each slice; the image shows it (bright = class 1) under
    per-subject noise, so content solves the task and so does position, until slices shift."""
    rng = np.random.default_rng(0)
    labels = np.zeros((slices, size, size), np.uint8)
    labels[:, :, size // 2 :] = 1
    cases = []
    for i in range(subjects):
        images = 2.0 * labels + rng.normal(0, 0.3, labels.shape)
        cases.append(LabelledCase(f"s{i}", images.astype(np.float32), labels.copy()))
    return cases


def test_dense_probe_scores_are_sklearn_balanced_accuracy_over_test_subjects(encoder):
    result = dense_probe(encoder, _cases(4), ["left", "right"], shift=1, bootstrap=50)
    assert set(result.train_subjects) | set(result.test_subjects) == {"s0", "s1", "s2", "s3"}
    assert not set(result.train_subjects) & set(result.test_subjects)
    assert len(result.y_true) == len(result.test_subjects) * 2 * 4 * 4  # 2 slices, 4x4 patches
    expected = balanced_accuracy_score(result.y_true, result.y_pred)
    point, low, high = result.balanced_accuracy
    assert point == pytest.approx(expected, abs=1e-12)
    assert low <= point <= high
    assert result.as_dict()["balanced_accuracy"]["value"] == point


def test_position_baseline_solves_unshifted_slices_but_not_shifted_ones(encoder):
    result = dense_probe(encoder, _cases(6), ["left", "right"], shift=2, bootstrap=50)
    assert result.grid == (8, 8)  # 4x4 patches + 2 per side
    assert result.position_unshifted[0] == 1.0  # the label is a function of the cell
    assert result.position_baseline[0] < 0.9  # whole-patch shifts hide it
    assert result.balanced_accuracy[0] > 0.95  # the tokens still see the bright half
    unshifted = dense_probe(encoder, _cases(6), ["left", "right"], shift=0, bootstrap=50)
    assert unshifted.position_baseline[0] == 1.0 and unshifted.grid == (4, 4)


def test_dense_probe_at_twice_the_resolution_has_a_finer_grid(encoder):
    result = dense_probe(encoder, _cases(4, size=32), ["left", "right"], scale=2, bootstrap=20)
    assert result.grid == (4 + 2 * 2 * 2, 4 + 2 * 2 * 2)  # 64 px = 4 patches, shift 2 x scale
    assert len(result.y_true) == len(result.test_subjects) * 2 * 16


def test_dense_probe_needs_two_subjects(encoder):
    with pytest.raises(BrainDinoError, match="at least 2 subjects"):
        dense_probe(encoder, _cases(1), ["left", "right"])
