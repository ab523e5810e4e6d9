"""Segmentation building blocks: label conventions, task configs, Dice/HD95 against SimpleITK on
one-voxel masks, case preparation (modalities and labels aligned on the slice grid), the 1x1
modality mixer, augmentation keeping image and label aligned, foreground oversampling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from braindino.downstream.segmentation import (
    LabelScheme,
    ModalityMixer,
    SegmentationModel,
    even_blocks,
)
from braindino.downstream.segmentation.augment import augment_batch
from braindino.downstream.segmentation.cases import CaseSlices, prepare_case
from braindino.downstream.segmentation.slice_batches import SliceSampler
from braindino.errors import ConfigError, DataError
from braindino.metrics import dice, hd95
from braindino.models import load_encoder
from braindino.tasks import load_task

PREPROCESS = {"spacing": 2.0, "slices": {"size": 32}}


# ----------------------------------------------------------------------- labels and task configs
@pytest.mark.parametrize(
    ("task", "et"),
    [
        ("brats2021", 4),
        ("brats2023_gli", 3),
        ("brats2023_men", 3),
        ("brats2023_met", 3),
        ("brats2024_goat", 3),
    ],
)
def test_brats_tasks_use_their_release_label_for_enhancing_tumour(task: str, et: int) -> None:
    scheme = LabelScheme.from_task(load_task(task))
    assert scheme.values == (1, 2, et)
    assert scheme.regions == {"WT": (1, 2, et), "TC": (1, et), "ET": (et,)}
    labels = np.array([0, 1, 2, et])
    masks = scheme.region_masks(labels)
    assert masks["WT"].tolist() == [False, True, True, True]
    assert masks["TC"].tolist() == [False, True, False, True]
    assert masks["ET"].tolist() == [False, False, False, True]
    assert scheme.to_labels(scheme.to_classes(labels)).tolist() == labels.tolist()


def test_atlas_lesion_is_one_region_and_wrong_label_values_are_named() -> None:
    scheme = LabelScheme.from_task(load_task("atlas_lesion"))
    assert scheme.regions == {"lesion": (1,)} and scheme.num_classes == 2
    brats21 = LabelScheme.from_task(load_task("brats2021"))
    with pytest.raises(DataError, match=r"seg.nii.gz: .*value\(s\) \[3\].*2023\+ use 3"):
        brats21.to_classes(np.array([0, 1, 3]), path="case/seg.nii.gz")


def test_segmentation_task_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="region WT unites \\[1, 2, 5\\]"):
        load_task("brats2021", ["segmentation.regions.WT=[1,2,5]"])
    with pytest.raises(ConfigError, match="mask_input 'nope'"):
        load_task("atlas_lesion", ["segmentation.mask_input=nope"])


# ----------------------------------------------------------------------- metrics vs SimpleITK
def _sitk(mask: np.ndarray, spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    return image


def test_one_voxel_masks_match_simpleitk_overlap_and_hausdorff() -> None:
    spacing = (1.5, 1.0, 2.5)
    shape = (12, 10, 9)
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[3, 4, 2], b[7, 2, 6] = True, True  # two single voxels apart
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_sitk(a, spacing), _sitk(b, spacing))
    assert hd95(a, b, spacing) == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-9)
    assert dice(a, b) == 0.0
    # one voxel inside a box: overlap from SimpleITK, and the Hausdorff distance between the
    # voxel and the box's surface (SimpleITK on the contours) equals hd95 at percentile 100
    box = np.zeros(shape, bool)
    box[2:9, 2:8, 1:7] = True
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_sitk(box, spacing), _sitk(a, spacing))
    assert dice(a, box) == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    contour = sitk.BinaryContourImageFilter()
    contour.SetFullyConnected(False)
    hausdorff.Execute(contour.Execute(_sitk(a, spacing)), contour.Execute(_sitk(box, spacing)))
    assert hd95(a, box, spacing, percentile=100) == pytest.approx(
        hausdorff.GetHausdorffDistance(), rel=1e-9
    )


# ----------------------------------------------------------------------- model
def test_mixer_starts_as_the_average_of_the_modalities() -> None:
    mixer = ModalityMixer(4, 1)
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(mixer(x), x.mean(dim=1, keepdim=True), atol=1e-6)
    assert even_blocks(12) == [2, 5, 8, 11] and even_blocks(4) == [0, 1, 2, 3]


def test_encoder_stays_frozen_and_only_head_and_mixer_learn() -> None:
    encoder = load_encoder("random:vit_micro_patch16_dinov3")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = SegmentationModel(encoder, modalities=2, num_classes=3, head="decoder")
    assert model.blocks == [0, 1, 2, 3]
    groups = model.trainable_groups(1e-2, 1e-5)
    optimiser = torch.optim.AdamW(groups)
    model.train()
    logits = model(torch.randn(2, 2, 32, 32))
    assert logits.shape == (2, 3, 32, 32) and not encoder.training
    logits.mean().backward()
    assert model.mixer.conv.weight.grad is not None  # gradient reaches the mixer through it
    optimiser.step()
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    linear = SegmentationModel(encoder, modalities=1, num_classes=2, head="linear")
    assert linear.blocks == [3] and not any(p.requires_grad for p in linear.mixer.parameters())
    with pytest.raises(ConfigError, match="decoder or linear"):
        SegmentationModel(encoder, 1, 2, head="unet")


def test_unfreezing_trains_the_encoder_at_its_own_small_rate() -> None:
    encoder = load_encoder("random:vit_micro_patch16_dinov3")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    model = SegmentationModel(encoder, 1, 2, head="linear", unfreeze_encoder=True)
    groups = model.trainable_groups(1e-2, 1e-5)
    assert [g["lr"] for g in groups] == [1e-2, 1e-5]
    assert len(groups[1]["params"]) == len(list(encoder.parameters()))
    optimiser = torch.optim.SGD(groups)
    model.train()
    model(torch.randn(2, 1, 32, 32)).square().mean().backward()
    optimiser.step()
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(before[k], v)]
    assert changed and not encoder.training


# ----------------------------------------------------------------------- case preparation
@pytest.fixture(scope="module")
def phantom(tmp_path_factory, mni_2mm):
    """MNI T1 stored LPS, a second modality (2 * T1 + 50) and a label cube (value 4)."""
    data, affine = mni_2mm
    folder = tmp_path_factory.mktemp("phantom")
    to_lps = affine @ np.array([[-1, 0, 0, data.shape[0] - 1], [0, -1, 0, data.shape[1] - 1],
                                [0, 0, 1, 0], [0, 0, 0, 1]], float)  # fmt: skip
    label = np.zeros(data.shape, np.uint8)
    label[40:52, 50:62, 40:48] = 4
    paths = {}
    for name, array in (("t1", data), ("t2", 2 * data + 50), ("seg", label)):
        paths[name] = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(array[::-1, ::-1, :]), to_lps), paths[name])
    assert nib.aff2axcodes(to_lps) == ("L", "P", "S")
    return paths, label


def test_modalities_and_labels_land_on_the_same_slice_pixels(phantom) -> None:
    paths, _ = phantom
    scheme = LabelScheme.from_task(load_task("brats2021"))
    case = prepare_case(
        "phantom", [str(paths["t1"]), str(paths["t2"])], str(paths["seg"]), scheme, PREPROCESS
    )
    assert case.images.shape[1:] == (2, 32, 32) and case.labels.shape == (len(case.z), 32, 32)
    # robust z-scores do not see a gain and offset: both channels agree up to uint8 storage
    # and the first channel's anti-aliasing
    first, second = case.images[:, 0].astype(float), case.images[:, 1].astype(float)
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] > 0.99
    assert set(np.unique(case.labels)) == {0, 3}  # label 4 is class 3
    # the cube covers 12 x 12 x 8 voxels of 2 mm: its slices hold a square of pixels
    assert case.foreground.sum() == pytest.approx(8, abs=1)
    with pytest.raises(DataError, match="not on the grid"):
        other = nib.load(paths["t1"])
        shifted = paths["t1"].with_name("shifted.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(other.dataobj)[:-2], other.affine), shifted)
        prepare_case("x", [str(paths["t1"]), str(shifted)], None, scheme, PREPROCESS)


# ----------------------------------------------------------------------- training data
def _case(labels: np.ndarray) -> CaseSlices:
    n = len(labels)
    images = np.random.default_rng(0).normal(size=(n, 1, 16, 16)).astype(np.float16)
    return CaseSlices("c", images, labels.astype(np.uint8), np.arange(n), None)  # type: ignore[arg-type]


def test_foreground_oversampling_draws_the_asked_share_of_labelled_slices() -> None:
    labels = np.zeros((50, 16, 16), np.uint8)
    labels[3, 5:8, 5:8] = 1  # 1 labelled slice of 50
    rng = np.random.default_rng(0)
    for fraction, expected in ((0.0, 1 / 50), (0.5, 0.5 + 0.5 / 50), (1.0, 1.0)):
        sampler = SliceSampler([_case(labels)], fraction)
        hits = sum(int(sampler.draw(64, rng)[1].amax(dim=(1, 2)).gt(0).sum()) for _ in range(40))
        assert hits / (64 * 40) == pytest.approx(expected, abs=0.03)
    with pytest.raises(ValueError, match="foreground_fraction"):
        SliceSampler([_case(labels)], 1.5)


def test_augmentation_moves_image_and_label_together() -> None:
    labels = torch.zeros(8, 32, 32, dtype=torch.long)
    labels[:, 8:20, 5:14] = 2  # an off-centre block, bright in the image
    images = (labels == 2).float()[:, None].repeat(1, 2, 1, 1) * 5.0
    gen = torch.Generator().manual_seed(0)
    moved_images, moved_labels = augment_batch(images, labels, gen)
    assert moved_labels.unique().tolist() == [0, 2]
    assert not torch.equal(moved_labels, labels)  # something moved
    inside = moved_images[:, 0][moved_labels == 2].mean()
    outside = moved_images[:, 0][moved_labels == 0].mean()
    assert inside > outside + 3.0


# ----------------------------------------------------------------------- manifests
@pytest.fixture(scope="module")
def lesion_cohort(make_cohort):
    """3 ATLAS-like and 2 BraTS 2023-like cases in their native layouts."""
    return make_cohort({"atlas": 3, "brats2023": 2}, seed=1)


@pytest.mark.parametrize(
    ("task", "folder", "images", "values"),
    [("atlas_lesion", "ATLAS_2", ("_T1w",), {0, 1}),
     ("brats2023_gli", "BraTS2023", ("-t1n", "-t1c", "-t2w", "-t2f"), {0, 1, 2, 3}),
     ("brats2024_goat", "BraTS2023", ("-t1n", "-t1c", "-t2w", "-t2f"), {0, 1, 2, 3})],
)  # fmt: skip
def test_native_layouts_pair_each_case_with_its_own_mask(
    lesion_cohort, task: str, folder: str, images: tuple[str, ...], values: set[int]
) -> None:
    from braindino.tasks import segmentation_manifest

    manifest = segmentation_manifest(task, lesion_cohort / folder)
    expected = 3 if task == "atlas_lesion" else 2
    assert len(manifest) == expected and manifest["subject"].is_unique
    columns = ["image", "image2", "image3", "image4"][: len(images)]
    assert [c for c in manifest.columns if c.startswith("image")] == columns
    for row in manifest.itertuples():
        paths = [getattr(row, c) for c in columns]
        assert all(row.subject in p and p.endswith(f"{s}.nii.gz") for p, s in zip(paths, images))
        assert row.subject in row.mask and ("seg" in row.mask or "lesion_mask" in row.mask)
        mask = np.asarray(nib.load(row.mask).dataobj)
        assert set(np.unique(mask)) <= values and mask.any()
