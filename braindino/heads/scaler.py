"""Standardisation of regression targets, fit on the training split only, with an inverse."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from braindino.heads._checks import require


class TargetScaler:
    """y → (f(y) − mean) / std with f = log1p (``log1p=True``, e.g. days) or the identity.

    ``fit`` learns mean and std from the **training** targets only; ``transform`` and
    ``inverse_transform`` map numpy arrays or tensors (the result has the input's type).
    ``to_dict``/``from_dict`` save and restore it next to a trained head.
    """

    def __init__(self, log1p: bool = False):
        self.log1p = bool(log1p)
        self.mean: float | None = None
        self.std: float | None = None

    def fit(self, targets: Any) -> TargetScaler:
        """Learn mean and std of the (log1p-)targets; returns self."""
        values = self._forward_map(self._as_array(targets, "fit"), "fit")
        require(
            values.size >= 2,
            "TargetScaler.fit(targets)",
            f"needs at least 2 training targets, got {values.size}",
            "fit the scaler on the whole training split",
        )
        std = float(values.std())
        require(
            std > 0,
            "TargetScaler.fit(targets)",
            f"all {values.size} training targets are equal ({values.flat[0]:g}); they cannot be "
            "standardised",
            "check the target column, or use a training split with varying targets",
        )
        self.mean, self.std = float(values.mean()), std
        return self

    def transform(self, targets: Any) -> Any:
        """Standardised targets, same type (numpy or tensor) as the input."""
        mean, std = self._fitted("transform")
        values = self._forward_map(self._as_array(targets, "transform"), "transform")
        return self._like(targets, (values - mean) / std)

    def inverse_transform(self, scaled: Any) -> Any:
        """Targets in original units from standardised predictions (inverse of ``transform``)."""
        mean, std = self._fitted("inverse_transform")
        values = self._as_array(scaled, "inverse_transform") * std + mean
        if self.log1p:
            values = np.expm1(values)
        return self._like(scaled, values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of the fitted state."""
        return {"log1p": self.log1p, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TargetScaler:
        """Rebuild a scaler saved with :meth:`to_dict`."""
        scaler = cls(log1p=bool(state["log1p"]))
        scaler.mean, scaler.std = state["mean"], state["std"]
        return scaler

    def _fitted(self, method: str) -> tuple[float, float]:
        require(
            self.mean is not None and self.std is not None,
            f"TargetScaler.{method}",
            "the scaler has not been fitted",
            "call scaler.fit(training_targets) first",
        )
        return float(self.mean), float(self.std)  # type: ignore[arg-type]

    def _forward_map(self, values: np.ndarray, method: str) -> np.ndarray:
        if not self.log1p:
            return values
        require(
            bool(np.all(values > -1)),
            f"TargetScaler.{method}(targets)",
            f"log1p needs targets > -1, got a minimum of {values.min():g}",
            "pass non-negative targets (e.g. days) or build the scaler with log1p=False",
        )
        return np.log1p(values)

    @staticmethod
    def _as_array(values: Any, method: str) -> np.ndarray:
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        array = np.asarray(values, dtype=np.float64)
        require(
            bool(np.all(np.isfinite(array))),
            f"TargetScaler.{method}(targets)",
            "contains NaN or infinite values",
            "drop subjects without a valid target before fitting or scaling",
        )
        return array

    @staticmethod
    def _like(original: Any, values: np.ndarray) -> Any:
        if isinstance(original, torch.Tensor):
            return torch.as_tensor(
                values,
                dtype=original.dtype if original.is_floating_point() else torch.float32,
                device=original.device,
            )
        return values
