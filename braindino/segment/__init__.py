"""Tumour and lesion segmentation over a frozen encoder (``downstream/segment.py``).

``SegmentationModel`` (modality mixer -> encoder blocks -> x16 decoder, or the linear probe),
``LabelScheme`` (a dataset's label values and regions), ``prepare_case`` (a case on the
encoder's slice grid), ``train_head`` (Dice + CE, selection on validation), ``predict_volume`` /
``evaluate_case`` (predictions in the original image space, Dice/HD95) and
``run_segmentation(SegmentOptions(...))``, the whole protocol.
"""

from braindino.segment.cases import CaseSlices, prepare_case
from braindino.segment.evaluate import evaluate_case, predict_volume
from braindino.segment.model import HEADS, ModalityMixer, SegmentationModel, even_blocks
from braindino.segment.options import SegmentOptions
from braindino.segment.regions import LabelScheme
from braindino.segment.runner import run_segmentation
from braindino.segment.train import TrainSettings, train_head

__all__ = [
    "HEADS",
    "CaseSlices",
    "LabelScheme",
    "ModalityMixer",
    "SegmentOptions",
    "SegmentationModel",
    "TrainSettings",
    "evaluate_case",
    "even_blocks",
    "predict_volume",
    "prepare_case",
    "run_segmentation",
    "train_head",
]
