"""Tumour and lesion segmentation over a frozen encoder, the segmentation kind of the protocol.

``SegmentationModel`` (modality mixer -> encoder blocks -> x16 decoder, or the linear probe),
``LabelScheme`` (a dataset's label values and regions), ``prepare_case`` (a case on the
encoder's slice grid), ``train_head`` (Dice + CE, selection on validation), ``predict_volume`` /
``evaluate_case`` (predictions in the original image space, Dice/HD95). The run itself is
``braindino.downstream.run_segmentation(SegmentOptions(...))``.
"""

from braindino.downstream.segmentation.cases import CaseSlices, prepare_case
from braindino.downstream.segmentation.evaluate import evaluate_case, predict_volume
from braindino.downstream.segmentation.model import (
    HEADS,
    ModalityMixer,
    SegmentationModel,
    even_blocks,
)
from braindino.downstream.segmentation.regions import LabelScheme
from braindino.downstream.segmentation.train import TrainSettings, train_head

__all__ = [
    "HEADS",
    "CaseSlices",
    "LabelScheme",
    "ModalityMixer",
    "SegmentationModel",
    "TrainSettings",
    "evaluate_case",
    "even_blocks",
    "predict_volume",
    "prepare_case",
    "train_head",
]
