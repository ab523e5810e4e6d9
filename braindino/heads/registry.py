"""Heads by the names task configs use (``head:`` key, options from ``head_options``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from braindino.errors import ConfigError
from braindino.heads.attention import AttentionPoolingHead
from braindino.heads.cox import CoxHead
from braindino.heads.mean_pool import MeanPoolHead
from braindino.heads.regression import RegressionHead

HEAD_NAMES = ("mean_mlp", "attention", "regression", "cox")
_SUMMARIES = {
    "mean_mlp": "mean over slices → LayerNorm → Linear → GELU → Linear (BrainDINO's head)",
    "attention": "attention over slices → embedding MLP → classifier (DinoAtten3D)",
    "regression": "{pooling} pooling over slices → MLP → one value (standardised target)",
    "cox": "{pooling} pooling over slices → MLP → log-risk (Cox partial likelihood)",
    "knn": "cosine k-NN on the mean slice feature (no training)",
}


def describe_head(name: str, options: dict[str, Any] | None = None) -> str:
    """One line saying what head ``name`` (with its ``head_options``) computes, for reports."""
    pooling = (options or {}).get("pooling", "mean")
    return _SUMMARIES.get(name, name).format(pooling=pooling)


def build_head(name: str, in_dim: int, num_classes: int | None = None, **options: Any) -> nn.Module:
    """Build head ``name`` for ``in_dim``-wide slice features; ``options`` go to its constructor.

    ``mean_mlp`` (:class:`MeanPoolHead`) and ``attention`` (:class:`AttentionPoolingHead`) need
    ``num_classes``; ``regression`` and ``cox`` predict one value per volume.
    """
    if name not in HEAD_NAMES:
        raise ConfigError(
            f"unknown head {name!r}", path="head", fix=f"use one of {', '.join(HEAD_NAMES)}"
        )
    if name in ("mean_mlp", "attention") and not num_classes:
        raise ConfigError(
            f"head {name!r} needs the number of classes",
            path="labels.classes",
            fix="list the task's classes in its config",
        )
    try:
        if name == "mean_mlp":
            return MeanPoolHead(in_dim, int(num_classes), **options)  # type: ignore[arg-type]
        if name == "attention":
            return AttentionPoolingHead(in_dim, int(num_classes), **options)  # type: ignore[arg-type]
        if name == "regression":
            return RegressionHead(in_dim, **options)
        return CoxHead(in_dim, **options)
    except TypeError as error:  # an option the head does not take
        raise ConfigError(
            f"head {name!r} does not accept these options: {error}",
            path="head_options",
            fix="remove or rename the option (see the head's docstring)",
        ) from error
