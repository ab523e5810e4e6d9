"""``DenseScorer``: the dense tissue probe as a frozen-encoder score for
``ssl.compare.pretrain_and_compare`` (pretrained teacher vs random twins), keeping every
encoder's :class:`DenseProbeResult` for the paired comparison."""

from __future__ import annotations

from typing import Any

from torch import nn

from braindino.analysis.cases import LabelledCase, labelled_case
from braindino.analysis.dense_probe import DenseProbeResult, dense_probe
from braindino.analysis.synthetic import PROBES, synthetic_volumes


def tissue_cases(
    encoder: nn.Module, subjects: int, seed: int, slices: int = 6, spacing: float = 2.0
) -> list[LabelledCase]:
    """``subjects`` synthetic IXI-like T1 heads (seeded ``seed``) with their tissue truth, as
    ``slices`` evenly spread axial slices each, preprocessed for ``encoder`` at ``spacing`` mm."""
    preprocess = {"spacing": [spacing] * 3}
    return [
        labelled_case(encoder, name, image, labels, preprocess, slices)
        for name, image, labels in synthetic_volumes("tissue", subjects, "T1", seed)
    ]


class DenseScorer:
    """Callable ``(backbone, name) -> {"dense": {"tissue": balanced accuracy}}`` that runs
    ``dense_probe(backbone, cases, tissue classes, **settings)`` and keeps the result in
    ``results[name]``."""

    def __init__(self, cases: list[LabelledCase], **settings: Any) -> None:
        self.cases = cases
        self.settings = settings
        self.results: dict[str, DenseProbeResult] = {}

    def __call__(self, backbone: nn.Module, name: str) -> dict[str, dict[str, float]]:
        """Probe ``backbone``; record and return its balanced accuracy."""
        result = dense_probe(backbone, self.cases, PROBES["tissue"][1], **self.settings)
        self.results[name] = result
        return {"dense": {"tissue": result.balanced_accuracy[0]}}

    def best_random(self) -> DenseProbeResult:
        """The random build's result with the highest balanced accuracy."""
        randoms = [r for name, r in self.results.items() if name.startswith("random")]
        return max(randoms, key=lambda r: r.balanced_accuracy[0])
