"""The frozen-feature probes that judge pretraining against random initialisation.

These check the measuring instrument (labels from lesion masks, subject-grouped CV, feature
pooling). Whether the tiny CPU pretraining beats random init is the evidence test
(``tests/evidence/``, ``make evidence``); ``bench/pretrain_probe_bench.py`` runs the longer
versions recorded in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from braindino.errors import ConfigError, DataError
from braindino.io import read_volume
from braindino.metrics import knn_balanced_accuracy, logreg_balanced_accuracy
from braindino.preprocess import preprocess_config, preprocess_volume
from braindino.ssl.probe import ProbeSet, lesion_slices, slice_task

SLAB = (40, 50)  # axial source indices of the lesion slab (MNI 2 mm grid: 91 slices)
SPACING = {"spacing": [2.0, 2.0, 2.0]}


def _write_case(folder: Path, name: str, data: np.ndarray, affine: np.ndarray, slab) -> dict:
    """One glioma-like case: T1 and a FLAIR with a bright box, and its mask (box in ``slab``)."""
    mask = np.zeros(data.shape, np.uint8)
    mask[35:55, 45:65, slab[0] : slab[1]] = 2
    flair = np.where(data > 0.1 * data.max(), data.max() - data, 0).astype(np.float32)
    flair[mask > 0] = data.max()
    files = {}
    for role, array in (("T1", data), ("FLAIR", flair), ("seg", mask)):
        files[f"file_{role}"] = f"{name}_{role}.nii.gz"
        nib.save(nib.Nifti1Image(array, affine), str(folder / files[f"file_{role}"]))
    return {"subject": name, "glioma_pattern": "ring", **files}


@pytest.fixture(scope="module")
def lesion_cohort(tmp_path_factory, mni_2mm) -> Path:
    """A fake cohort folder ``Glioma/`` with six two-sequence cases and a ``truth.csv``."""
    data, affine = mni_2mm
    root = tmp_path_factory.mktemp("probe_cohort")
    folder = root / "Glioma"
    folder.mkdir()
    rows = [
        _write_case(folder, f"case{i}", data * (1 + 0.05 * i), affine, (SLAB[0] + i, SLAB[1] + i))
        for i in range(6)
    ]
    with (folder / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_lesion_slices_label_exactly_the_band_slices_the_mask_crosses(lesion_cohort):
    image, mask = (
        lesion_cohort / "Glioma/case0_T1.nii.gz",
        lesion_cohort / "Glioma/case0_seg.nii.gz",
    )
    slices, positive = lesion_slices(image, mask, 64, per_class=1000, preprocess=SPACING)

    # expected from the slice positions alone: at 2 mm the grid is the source grid, so a slice
    # is positive iff its source index is inside the slab, and only the central 20-80 % is used
    stack = preprocess_volume(
        read_volume(image), preprocess_config({"slices": {"size": 64}, **SPACING})
    )
    n = len(stack.z)
    band_z = stack.z[int(n * 0.2) : int(np.ceil(n * 0.8))]
    inside = (band_z >= SLAB[0]) & (band_z < SLAB[1])
    assert 0 < inside.sum() < len(band_z)
    assert positive.sum() == inside.sum()
    assert (~positive).sum() == (~inside).sum()
    assert slices.shape == (len(band_z), 64, 64)
    assert slices.dtype == np.float32


def test_lesion_slices_caps_each_class(lesion_cohort):
    image, mask = (
        lesion_cohort / "Glioma/case0_T1.nii.gz",
        lesion_cohort / "Glioma/case0_seg.nii.gz",
    )
    slices, positive = lesion_slices(image, mask, 64, per_class=3, preprocess=SPACING)
    assert positive.tolist() == [True] * 3 + [False] * 3
    assert len(slices) == 6


def test_slice_task_pools_sequences_per_subject_and_honours_exclude(lesion_cohort):
    images, labels, groups = slice_task(lesion_cohort, "tumour_slice", 32, per_class=2)
    assert images.shape == (6 * 2 * 4, 1, 32, 32)  # 6 cases x (T1, FLAIR) x 2 per class x 2
    assert sorted(set(labels)) == ["clear", "lesion"]
    assert sorted(set(groups)) == [f"Glioma/case{i}" for i in range(6)]
    assert all((groups == g).sum() == 8 for g in set(groups))
    with pytest.raises(DataError, match="left after excluding Glioma"):
        slice_task(lesion_cohort, "tumour_slice", 32, exclude=["Glioma"])
    with pytest.raises(DataError, match="no cases with a lesion mask"):
        slice_task(lesion_cohort, "stroke_slice", 32)


def test_probe_set_features_concatenate_normed_cls_and_mean_patch(lesion_cohort):
    from braindino.models import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("vit_micro_patch16_dinov3", img_size=32)
    probes = ProbeSet(lesion_cohort, ["tumour_slice"], 32, pooling="cls+patch", slices_per_class=2)
    features = probes.features(backbone, "tumour_slice", batch=7)

    images = torch.from_numpy(probes.tasks["tumour_slice"][0][:, 0:1]).double()
    backbone = backbone.double().eval()
    with torch.no_grad():
        out = backbone.forward_features(images)
    cls = out["cls"] / out["cls"].norm(dim=-1, keepdim=True)
    patch = out["patches"].mean(1)
    patch = patch / patch.norm(dim=-1, keepdim=True)
    expected = torch.cat([cls, patch], dim=-1).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-4)
    with pytest.raises(ConfigError, match="pooling"):
        ProbeSet(lesion_cohort, ["tumour_slice"], 32, pooling="mean")


def test_probe_set_features_of_the_last_blocks_concatenate_each_blocks_tokens(lesion_cohort):
    from braindino.models import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("vit_micro_patch16_dinov3", img_size=32).eval()
    probes = ProbeSet(lesion_cohort, ["tumour_slice"], 32, pooling="cls+patch", blocks=2)
    features = probes.features(backbone, "tumour_slice")

    # the blocks' outputs as timm's forward computes them, caught by hooks
    caught = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: caught.append(out))
        for block in backbone.vit.blocks[-2:]
    ]
    images = torch.from_numpy(probes.tasks["tumour_slice"][0][:, 0:1])
    with torch.no_grad():
        backbone.forward_features(images)
    for hook in hooks:
        hook.remove()
    parts = []
    for tokens in caught:
        tokens = backbone.vit.norm(tokens)
        cls, patches = tokens[:, 0], tokens[:, backbone.num_prefix_tokens :].mean(1)
        parts += [
            cls / cls.norm(dim=-1, keepdim=True),
            patches / patches.norm(dim=-1, keepdim=True),
        ]
    np.testing.assert_allclose(features, torch.cat(parts, dim=-1).detach().numpy(), atol=1e-5)
    assert features.shape[1] == 4 * backbone.vit.embed_dim
    with pytest.raises(ConfigError, match="blocks"):
        ProbeSet(lesion_cohort, ["tumour_slice"], 32, blocks=0)
    with pytest.raises(ConfigError, match="unknown probe classifier 'svm'"):
        probes.evaluate(backbone, classifier="svm")


@pytest.mark.parametrize("score", [knn_balanced_accuracy, logreg_balanced_accuracy])
def test_grouped_cv_does_not_leak_subjects(score):
    # every subject's samples share one feature vector and one random label: a probe that
    # looked at other samples of the same subject would score 1.0; grouped CV sees chance
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(40), 5)
    subject_features = rng.normal(size=(40, 8))
    features = subject_features[subjects] + 1e-3 * rng.normal(size=(200, 8))
    labels = np.array(["a", "b"])[rng.integers(0, 2, 40)][subjects]
    assert score(features, labels, subjects.astype(str)) < 0.75

    # a label carried by the features (a +-3 shift along one axis) is found across subjects
    features[:, 0] += np.where(labels == "a", 3.0, -3.0)
    assert score(features, labels, subjects.astype(str)) > 0.9
