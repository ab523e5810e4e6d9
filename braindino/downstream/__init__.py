"""Frozen-encoder downstream protocol: features for a task's manifest (cached), fixed splits,
label fractions x seeds, head training with validation-only selection, one test evaluation per
trained head, optional baselines, and the run folder's report.

``run_downstream(RunOptions(...))`` is what ``downstream/classify.py``, ``regress.py``,
``survival.py`` and ``knn.py`` call.
"""

from braindino.downstream.options import FAMILIES, RunOptions, default_encoder
from braindino.downstream.runner import run_downstream

__all__ = ["FAMILIES", "RunOptions", "default_encoder", "run_downstream"]
