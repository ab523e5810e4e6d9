"""A dataset's label convention: mask values <-> contiguous training classes, and the reported
regions (BraTS WT/TC/ET as unions of labels; ATLAS: the lesion)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from braindino.errors import DataError


@dataclass(frozen=True)
class LabelScheme:
    """``values``: the non-zero label values of the mask files (class ``i + 1`` is
    ``values[i]``; class 0 is background); ``names``: their structure names; ``regions``: region
    name -> the label values it unites."""

    values: tuple[int, ...]
    names: tuple[str, ...]
    regions: dict[str, tuple[int, ...]]

    @classmethod
    def from_task(cls, task: DictConfig) -> LabelScheme:
        """The scheme of a segmentation task config (``segmentation.labels`` / ``regions``)."""
        labels = sorted((int(k), str(v)) for k, v in task.segmentation.labels.items())
        regions = {
            str(name): tuple(int(v) for v in values)
            for name, values in task.segmentation.regions.items()
        }
        return cls(tuple(v for v, _ in labels), tuple(n for _, n in labels), regions)

    @property
    def num_classes(self) -> int:
        """Output channels: background plus one per label value."""
        return len(self.values) + 1

    def to_classes(self, labels: np.ndarray, path: str | None = None) -> np.ndarray:
        """Label values -> class indices (uint8); a value outside the scheme is a DataError."""
        values = np.rint(np.asarray(labels)).astype(np.int64)
        lookup = np.full(max(self.values) + 1, -1, np.int64)
        lookup[0] = 0
        lookup[list(self.values)] = np.arange(1, len(self.values) + 1)
        bad = (values < 0) | (values > max(self.values))
        classes = np.where(bad, -1, lookup[np.clip(values, 0, max(self.values))])
        if (classes < 0).any():
            found = sorted(int(v) for v in np.unique(values[classes < 0]))[:5]
            raise DataError(
                f"label map holds value(s) {found} outside this task's labels {[0, *self.values]}",
                path=path or "mask",
                fix="check the task (BraTS 2021 uses 4 for enhancing, 2023+ use 3) or the file",
            )
        return classes.astype(np.uint8)

    def to_labels(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> the dataset's label values (uint8, as the mask files store them)."""
        lookup = np.asarray([0, *self.values], np.uint8)
        return lookup[np.asarray(classes, np.int64)]

    def region_masks(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Region name -> boolean mask of a label-value map."""
        return {name: np.isin(labels, values) for name, values in self.regions.items()}

    def class_regions(self) -> dict[str, list[int]]:
        """Region name -> the class indices it unites (for scores on class maps)."""
        index = {v: i + 1 for i, v in enumerate(self.values)}
        return {name: [index[v] for v in values] for name, values in self.regions.items()}
