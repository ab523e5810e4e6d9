"""Frozen-encoder downstream protocol, one loop for every kind of model: a task's manifest,
fixed subject-level splits, the data prepared once per encoder (cached slice features, or
cases on the encoder's slice grid), label fractions x seeds, training with validation-only
selection, one test evaluation per trained model, optional baselines, and the run folder's
report.

``run_downstream(RunOptions(...))`` (volume heads: ``downstream/classify.py``, ``regress.py``,
``survival.py``, ``knn.py``) and ``run_segmentation(SegmentOptions(...))``
(``downstream/segment.py``) are the two kinds plugged into ``run_protocol``.
"""

from braindino.downstream.options import (
    SCRIPTS,
    RunOptions,
    SegmentOptions,
    default_encoder,
)
from braindino.downstream.protocol import run_protocol
from braindino.downstream.segmentation.kind import run_segmentation
from braindino.downstream.volume import run_downstream

__all__ = [
    "SCRIPTS",
    "RunOptions",
    "SegmentOptions",
    "default_encoder",
    "run_downstream",
    "run_protocol",
    "run_segmentation",
]
