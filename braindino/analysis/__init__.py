"""Representation analyses of a frozen encoder, each beside its random twin: dense linear
probes of patch tokens (tissue, tumour sub-region) with a position-only baseline, PCA maps of
patch tokens, last-block CLS attention maps, slice retrieval and per-volume embedding maps;
``downstream/analyze.py`` writes them into one report."""

from braindino.analysis.cases import LabelledCase, labelled_case
from braindino.analysis.dense_probe import DenseProbeResult, dense_probe, paired_probe_difference
from braindino.analysis.patches import patch_labels
from braindino.analysis.tokens import patch_tokens

__all__ = [
    "DenseProbeResult",
    "LabelledCase",
    "dense_probe",
    "labelled_case",
    "paired_probe_difference",
    "patch_labels",
    "patch_tokens",
]
