"""What differs between classification, regression and survival heads: targets, the head, the
validation score for model selection, test metrics (bootstrap 95 % CIs) and prediction columns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from braindino.errors import BrainDinoError
from braindino.heads import TargetScaler, survival_targets
from braindino.metrics import bootstrap_ci, get_metric, kaplan_meier_split

NO_CI = ("logrank_p",)  # reported as a point value: a p-value has no useful bootstrap interval


def softmax(logits: torch.Tensor) -> np.ndarray:
    """Class probabilities ``[N, C]`` (float64) from logits."""
    return torch.softmax(logits.double(), dim=1).numpy()


def metric_with_ci(name: str, args: tuple, n: int, seed: int) -> dict[str, float]:
    """``{"value", "low", "high"}`` of metric ``name`` on ``args``; NaN where undefined."""
    fn = get_metric(name)
    try:
        if name in NO_CI:
            value, low, high = float(fn(*args)), math.nan, math.nan
        else:
            value, low, high = bootstrap_ci(fn, *args, n=n, seed=seed)
    except BrainDinoError:  # undefined on this test split (e.g. one class, no event)
        value = low = high = math.nan
    return {"value": value, "low": low, "high": high}


@dataclass
class TargetKind:
    """Task-type behaviour; one instance per trained head (holds the fitted target scaler)."""

    task: DictConfig
    scaler: TargetScaler | None = None

    @property
    def target(self) -> str:
        """``class``, ``regression`` or ``survival``."""
        return str(self.task.target)

    @property
    def classes(self) -> list[str]:
        """Class names (class tasks)."""
        return [str(c) for c in self.task.labels.classes]

    def metric_names(self) -> list[str]:
        """Primary metric first, then the task's further metrics (no duplicates)."""
        names = [str(self.task.metric)] + [str(m) for m in self.task.metrics]
        return list(dict.fromkeys(names))

    def default_lr(self) -> float:
        """Protocol learning rate: 1e-3 (heads on cached features train in seconds)."""
        return 1e-3

    # ------------------------------------------------------------------ targets
    def fit_targets(self, frame: pd.DataFrame) -> None:
        """Fit what the targets need on the training rows (the regression scaler)."""
        if self.target == "regression":
            self.scaler = TargetScaler().fit(frame["target"].to_numpy(np.float64))

    def targets(self, frame: pd.DataFrame) -> torch.Tensor:
        """Training targets of ``frame``'s rows in the head's layout."""
        if self.target == "class":
            return torch.as_tensor(frame["target"].to_numpy(np.int64))
        if self.target == "regression":
            assert self.scaler is not None
            values = self.scaler.transform(frame["target"].to_numpy(np.float64))
            return torch.as_tensor(values, dtype=torch.float32)
        return survival_targets(frame["time"].to_numpy(), frame["event"].to_numpy())

    def num_classes(self) -> int | None:
        """Classes for the classifier heads (None otherwise)."""
        return len(self.classes) if self.target == "class" else None

    # ------------------------------------------------------------------ model selection
    def selection(self, val: pd.DataFrame) -> tuple[Any, bool]:
        """``(metric_fn, maximize)`` for ``fit_head`` on the validation split, or ``(None,
        False)`` (validation loss) when the primary metric is undefined there."""
        if len(val) == 0:
            return None, False
        if self.target == "class":
            n = len(self.classes)
            if not math.isfinite(
                get_metric("macro_auc")(val["target"], np.full((len(val), n), 1 / n))
            ):
                return None, False

            def val_macro_auc(outputs: dict, targets: torch.Tensor) -> float:
                return get_metric("macro_auc")(targets.numpy(), softmax(outputs["logits"]))

            return val_macro_auc, True
        if self.target == "survival":
            zero = np.zeros(len(val))
            c_index = get_metric("c_index")
            if not math.isfinite(c_index(val["time"], zero, val["event"])):
                return None, False

            def val_c_index(outputs: dict, targets: torch.Tensor) -> float:
                return c_index(
                    targets[:, 0].numpy(), outputs["risk"].numpy(), targets[:, 1].numpy()
                )

            return val_c_index, True
        return None, False  # regression: the validation loss (MSE on standardised targets)

    # ------------------------------------------------------------------ test evaluation
    def predictions(self, outputs: dict, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row prediction columns from the head's test outputs."""
        out = pd.DataFrame(index=frame.index)
        if self.target == "class":
            proba = softmax(outputs["logits"])
            for index, name in enumerate(self.classes):
                out[f"proba_{name}"] = proba[:, index]
            out["predicted"] = [self.classes[i] for i in proba.argmax(axis=1)]
        elif self.target == "regression":
            assert self.scaler is not None
            out["prediction"] = self.scaler.inverse_transform(
                outputs["prediction"].double().numpy()
            )
        else:
            risk = outputs["risk"].double().numpy()
            out["risk"] = risk
            out["risk_group"] = np.where(risk > np.median(risk), "high", "low")
        return out

    def metric_args(self, name: str, frame: pd.DataFrame, predicted: pd.DataFrame) -> tuple:
        """The arguments of metric ``name`` for the test rows."""
        if self.target == "class":
            proba = predicted[[f"proba_{c}" for c in self.classes]].to_numpy()
            return frame["target"].to_numpy(np.int64), proba
        if self.target == "regression":
            return frame["target"].to_numpy(np.float64), predicted["prediction"].to_numpy()
        return frame["time"].to_numpy(), predicted["risk"].to_numpy(), frame["event"].to_numpy()

    def test_metrics(
        self, frame: pd.DataFrame, predicted: pd.DataFrame, n: int, seed: int
    ) -> dict[str, dict[str, float]]:
        """Every metric of the task on the test rows, with bootstrap 95 % intervals."""
        return {
            name: metric_with_ci(name, self.metric_args(name, frame, predicted), n, seed)
            for name in self.metric_names()
        }

    def km_split(self, frame: pd.DataFrame, predicted: pd.DataFrame) -> Any:
        """Kaplan–Meier split at the median predicted risk (survival), or None."""
        if self.target != "survival":
            return None
        try:
            return kaplan_meier_split(frame["time"], predicted["risk"], frame["event"])
        except BrainDinoError:
            return None
