"""Representation analyses (braindino.analysis): patch labels, the dense probe and its
position-only baseline, on hand-built cases and a random micro ViT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from braindino.analysis import LabelledCase, dense_probe, paired_probe_difference, patch_labels
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
    present = np.unique(result.y_true)
    recalls = recall_score(result.y_true, result.y_pred, labels=present, average=None)
    assert list(result.recall().values()) == pytest.approx(list(recalls), abs=1e-12)


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


def test_paired_probe_difference_resamples_test_subjects_for_both_encoders(encoder):
    cases = _cases(6)
    first = dense_probe(encoder, cases, ["left", "right"], shift=2, bootstrap=20)
    second = dense_probe(encoder, cases, ["left", "right"], shift=2, bootstrap=20)
    second.y_pred = first.y_true.copy()  # a perfect second encoder
    value, low, high = paired_probe_difference(first, second, bootstrap=200, seed=3)
    truth, subject = first.y_true, first.test_subject
    assert value == pytest.approx(balanced_accuracy_score(truth, first.y_pred) - 1.0, abs=1e-12)
    # independent cluster bootstrap: draw test subjects with replacement, both encoders alike
    rng = np.random.default_rng(11)
    draws = []
    for _ in range(2000):
        ids = rng.integers(0, len(first.test_subjects), len(first.test_subjects))
        rows = np.concatenate([np.flatnonzero(subject == i) for i in ids])
        draws.append(balanced_accuracy_score(truth[rows], first.y_pred[rows]) - 1.0)
    assert low == pytest.approx(np.percentile(draws, 2.5), abs=0.03)
    assert high == pytest.approx(np.percentile(draws, 97.5), abs=0.03)
    assert paired_probe_difference(first, first, bootstrap=50) == (0.0, 0.0, 0.0)
    other = dense_probe(encoder, cases, ["left", "right"], shift=1, bootstrap=20)
    assert not first.same_test_patches(other)
    with pytest.raises(ValueError, match="same patches"):
        paired_probe_difference(first, other)


def test_dense_scorer_records_each_encoder_and_picks_the_best_random_one(encoder):
    from braindino.analysis.dense_scorer import DenseScorer, tissue_cases
    from braindino.models import random_like

    cases = tissue_cases(encoder, subjects=4, seed=0, slices=2)
    assert [case.subject for case in cases] == ["tissue000", "tissue001", "tissue002", "tissue003"]
    assert all(len(case.images) == 2 and case.images.shape == case.labels.shape for case in cases)
    assert all(set(np.unique(case.labels)) <= {0, 1, 2, 3} for case in cases)
    scorer = DenseScorer(cases, bootstrap=20)
    encoders = {"random 1": encoder, "random 2": random_like(encoder, 2), "pretrained": encoder}
    scores = {name: scorer(model, name)["dense"]["tissue"] for name, model in encoders.items()}
    assert set(scorer.results) == set(encoders)
    for name, result in scorer.results.items():
        assert scores[name] == pytest.approx(
            balanced_accuracy_score(result.y_true, result.y_pred), abs=1e-12
        )
    best = max(("random 1", "random 2"), key=scores.get)
    assert scorer.best_random() is scorer.results[best]


def test_dense_probe_needs_two_subjects(encoder):
    with pytest.raises(BrainDinoError, match="at least 2 subjects"):
        dense_probe(encoder, _cases(1), ["left", "right"])


def test_principal_components_match_sklearn_pca():
    from sklearn.decomposition import PCA

    from braindino.analysis.pca_map import pca_rgb, principal_components

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 3.0
    mean, components = principal_components(x, 3)
    reference = PCA(n_components=3).fit(x)
    np.testing.assert_allclose(mean, reference.mean_, atol=1e-10)
    for ours, theirs in zip(components, reference.components_):
        assert abs(ours @ theirs) == pytest.approx(1.0, abs=1e-8)  # same axis up to sign
    patches = x.reshape(2, 10, 10, 6)
    foreground = np.ones((2, 10, 10), bool)
    foreground[0, 0, :] = False
    rgb = pca_rgb(patches, foreground)
    assert rgb.shape == (2, 10, 10, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert not rgb[0, 0].any()  # background is black
    scores = PCA(n_components=3).fit(x[foreground.reshape(-1)]).transform(x)
    order = np.argsort(scores[:, 0][foreground.reshape(-1)])  # colour follows the first PC
    red = rgb.reshape(-1, 3)[foreground.reshape(-1), 0][order]
    assert np.all(np.diff(red) >= -1e-6) or np.all(np.diff(red) <= 1e-6)


def test_cls_attention_is_softmax_qk_of_the_last_block(encoder):
    import torch
    from timm.layers import apply_rot_embed_cat

    from braindino.analysis.attention_map import cls_attention

    images = np.random.default_rng(2).normal(size=(2, 48, 64)).astype(np.float32)
    fused = encoder.vit.blocks[-1].attn.fused_attn
    maps = cls_attention(encoder, images, batch_size=1)
    assert maps.shape == (2, encoder.num_heads, 3, 4)
    block = encoder.vit.blocks[-1]
    captured = {}
    hook = block.register_forward_pre_hook(
        lambda _m, args, kwargs: captured.update(x=args[0], rope=kwargs["rope"]),
        with_kwargs=True,
    )
    with torch.no_grad():
        encoder.forward_features(torch.from_numpy(images).unsqueeze(1))
    hook.remove()
    attn = block.attn
    with torch.no_grad():  # float64, from the block's weights
        x = block.norm1(captured["x"]).double()
        bias = None if attn.q_bias is None else torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
        qkv = torch.nn.functional.linear(
            x, attn.qkv.weight.double(), None if bias is None else bias.double()
        )
        b, n, _ = x.shape
        q, k, _ = qkv.reshape(b, n, 3, encoder.num_heads, -1).permute(2, 0, 3, 1, 4)
        p = encoder.num_prefix_tokens
        rope, half = captured["rope"].double(), attn.rotate_half
        q = torch.cat([q[:, :, :p], apply_rot_embed_cat(q[:, :, p:], rope, half=half)], dim=2)
        k = torch.cat([k[:, :, :p], apply_rot_embed_cat(k[:, :, p:], rope, half=half)], dim=2)
        manual = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    expected = manual[:, :, 0, p:].reshape(2, encoder.num_heads, 3, 4).numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    assert attn.fused_attn == fused  # the fused path is restored


def test_nearest_slices_rank_by_sklearn_cosine_and_skip_the_own_subject():
    from sklearn.metrics.pairwise import cosine_similarity

    from braindino.analysis.retrieval import nearest_slices

    rng = np.random.default_rng(3)
    bank = rng.normal(size=(12, 5))
    subjects = np.repeat(["a", "b", "c"], 4)
    index, similarity = nearest_slices(bank[:2], subjects[:2], bank, subjects, k=3)
    reference = cosine_similarity(bank[:2], bank)
    for q in range(2):
        others = np.flatnonzero(subjects != subjects[q])
        expected = others[np.argsort(-reference[q, others])][:3]
        assert index[q].tolist() == expected.tolist()
        np.testing.assert_allclose(similarity[q], reference[q, expected], atol=1e-12)
    index, similarity = nearest_slices(bank[:1], subjects[:1], bank[:5], subjects[:5], k=3)
    assert index[0].tolist() == [4, -1, -1] and np.isnan(similarity[0, 1:]).all()


def test_embedding_pca_is_sklearn_pca_up_to_sign():
    from sklearn.decomposition import PCA

    from braindino.analysis.embedding_map import embed_2d

    x = np.random.default_rng(4).normal(size=(20, 6))
    ours = embed_2d(x, "pca")
    theirs = PCA(2).fit_transform(x)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-8)
    assert embed_2d(x, "tsne").shape == (20, 2)


def test_cli_writes_one_report_with_every_encoder_side_by_side(tmp_path):
    import json
    import re

    import matplotlib.image

    from braindino.analysis.cli import main

    out = tmp_path / "report"
    argv = [
        "--encoder", ENCODER, "--out", str(out), "--probes", "tissue", "--probe-subjects", "5",
        "--probe-slices", "2",
        "--preprocess", "slices.size=96", "--bootstrap", "20", "--volumes", "6", "--show", "2",
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["encoders"]) == {"encoder", "random_init"}
    keys = {(r["probe"], r["scale"], r["encoder"]) for r in metrics["dense_probes"]}
    assert len(keys) == 2 * 2  # scales 1, 2 x both encoders
    for scale in (1, 2):
        rows = {r["encoder"]: r for r in metrics["dense_probes"] if r["scale"] == scale}
        paired = rows["random_init"]["encoder_minus_this"]
        values = [rows[e]["balanced_accuracy"]["value"] for e in ("encoder", "random_init")]
        assert paired["value"] == pytest.approx(values[0] - values[1], abs=1e-12)
        assert paired["low"] <= paired["value"] <= paired["high"]
    report = (out / "report.md").read_text()
    assert "random_init" in report and "position (shifted)" in report
    pictures = re.findall(r"\]\((plots/[^)]+\.png)\)", report)
    names = {Path(p).stem.split("_")[0] for p in pictures}
    assert {"dense", "pca", "attention", "retrieval", "embedding"} <= names
    for picture in pictures:
        assert matplotlib.image.imread(out / picture).ndim == 3
    assert len(metrics["retrieval"]["encoder"][0]) == 4
    assert "t-SNE" in report or (out / "plots" / "embedding_subject.png").is_file()


def test_cli_refuses_a_task_and_a_folder_together(tmp_path):
    from braindino.analysis.cli import parse_options

    with pytest.raises(BrainDinoError, match="both --task and --folder"):
        parse_options(["--task", "adni", "--folder", str(tmp_path)])


def test_labelled_case_puts_the_label_map_on_the_image_slices():
    from braindino.analysis import labelled_case
    from braindino.io import Volume

    data = np.zeros((40, 48, 30), np.float32)
    data[8:32, 6:42, 4:26] = 100.0  # a "head" so the foreground crop has something to keep
    data[14:22, 20:34, 10:18] = 300.0  # a bright block: the labelled structure
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    labels = (data == 300.0).astype(np.uint8)
    case = labelled_case(
        None, "s0", Volume(data, affine), Volume(labels, affine), {"slices.size": 64}, slices=3
    )
    assert case.images.shape == case.labels.shape == (3, 64, 64)
    bright = case.images > (case.images.max() + np.median(case.images)) / 2
    inside = case.labels > 0
    overlap = (bright & inside).sum() / (bright | inside).sum()
    assert inside.any() and overlap > 0.85  # the same pixels, up to interpolation at edges


def test_segmentation_task_cases_map_brats_labels_to_classes(tmp_path):
    from braindino.analysis.task_cases import segmentation_volumes
    from braindino.io import read_volume
    from braindino.synth.generate import generate_cohort

    generate_cohort(
        tmp_path, subjects={"brats2021": 2}, seed=0, pool_subjects=0, baseline=False,
        progress=False, tasks=["brats2021"],
    )  # fmt: skip
    cases, classes = segmentation_volumes("brats2021", str(tmp_path / "BraTS2021"), [], 5, "FLAIR")
    assert classes == ("no tumour", "necrotic_core", "oedema", "enhancing")
    assert len(cases) == 2
    subject, image, labels = cases[0]
    assert image.endswith(f"{subject}_flair.nii.gz")
    raw = read_volume(image.replace("_flair", "_seg"), check=False).data
    expected = np.select([raw == 1, raw == 2, raw == 4], [1, 2, 3], 0)  # BraTS 2021: 4 enhancing
    assert (raw == 4).any() and np.array_equal(labels.data, expected)
