"""A test case end to end: slice predictions -> the case's original image space -> per-region
Dice and HD95 against its own label file -> the prediction written as NIfTI beside the input.

Class probabilities are mapped back to the source grid (linear, ``slices_to_volume``) and the
most probable class taken per voxel; voxels outside the kept slices or the crop are background.
The canonical (RAS) result is then written in the input file's own axis order and affine
(``write_in_source_space``), so it overlays the input exactly in a viewer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from braindino.downstream.segmentation.cases import CaseSlices, read_mask
from braindino.downstream.segmentation.model import SegmentationModel
from braindino.downstream.segmentation.regions import LabelScheme
from braindino.downstream.segmentation.train import predict_proba
from braindino.io import read_volume, write_in_source_space
from braindino.metrics import dice, hd95
from braindino.preprocess import slices_to_volume


def predict_volume(model: SegmentationModel, case: CaseSlices, scheme: LabelScheme) -> np.ndarray:
    """The predicted label map (the dataset's label values, uint8) on the case's canonical RAS
    source grid."""
    proba = predict_proba(model, case.images)
    maps = [
        slices_to_volume(proba[:, k], case.z, case.geometry, order=1) for k in range(proba.shape[1])
    ]
    return scheme.to_labels(np.argmax(np.stack(maps), axis=0))


def score_case(
    predicted: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...], scheme: LabelScheme
) -> dict[str, dict[str, float]]:
    """Per region: ``dice``, ``hd95`` (mm), true and predicted volume (ml)."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    truth_masks, pred_masks = scheme.region_masks(truth), scheme.region_masks(predicted)
    out = {}
    for name in scheme.regions:
        p, t = pred_masks[name], truth_masks[name]
        out[name] = {
            "dice": dice(p, t),
            "hd95": hd95(p, t, spacing),
            "true_ml": float(t.sum()) * voxel_ml,
            "pred_ml": float(p.sum()) * voxel_ml,
        }
    return out


def evaluate_case(
    model: SegmentationModel,
    case: CaseSlices,
    image: str,
    mask: str,
    scheme: LabelScheme,
    out_path: Path | None,
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Scores of one case in its source space (and the prediction written to ``out_path``);
    returns the scores and the canonical predicted label map."""
    reference = read_volume(image)
    truth = np.rint(read_mask(mask, reference).data).astype(np.int64)
    predicted = predict_volume(model, case, scheme)
    if out_path is not None:
        write_in_source_space(predicted, reference, out_path, dtype=np.uint8)
    return score_case(predicted, truth, reference.spacing, scheme), predicted
