"""Raw table values -> task targets: class names through a map/patterns/threshold, numbers, events.

Values are compared after ``normalise_value``: stripped, lower-cased, and numbers written in one
way (``1``, ``1.0`` and ``"1"`` are the same), so a config's ``map: {1: autism}`` matches a
table cell ``1.0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from braindino.config import config_regex
from braindino.errors import ConfigError, DataError
from braindino.tasks.registry import as_list


def normalise_value(value: Any) -> str:
    """One spelling per value: stripped, lower-case, integral numbers without a decimal part."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number) if math.isfinite(number) else text.lower()


def parse_number(value: str, column: str, table: str, subject: str) -> float:
    """``value`` as a finite float, or a DataError naming the column, table and subject."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(
            f"column '{column}' holds '{value}' for subject {subject}, not a number",
            path=table,
            fix="correct the value, or add it to labels.missing to drop such rows",
        )
    return number


@dataclass
class LabelRules:
    """A task's labelling rules (from its ``labels`` section)."""

    classes: list[str]
    mapping: dict[str, str]
    patterns: list[tuple[re.Pattern, str]]
    threshold: float | None
    transform: str | None
    missing: set[str] = field(default_factory=set)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> LabelRules:
        """Build the rules from a merged task config."""
        labels = cfg.labels
        classes = as_list(labels.classes)
        # a map value outside labels.classes is allowed: those rows are left out and reported
        # (class_not_in_task), so --set labels.classes=[CN,AD] makes ADNI a two-class task
        mapping = {normalise_value(k): str(v) for k, v in labels.map.items()}
        patterns = []
        for item in labels.patterns:
            items = list(item)
            if len(items) != 2:
                raise ConfigError(
                    f"labels.patterns entry {items} is not [regex, class]",
                    path=f"task {cfg.name}",
                    fix="write [['mutat', mutant]]",
                )
            where = f"task {cfg.name}"
            regex = config_regex(str(items[0]), "labels.patterns", where, flags=re.IGNORECASE)
            patterns.append((regex, str(items[1])))
        threshold = None if labels.threshold is None else float(labels.threshold)
        missing = {normalise_value(v) for v in labels.missing}
        return cls(classes, mapping, patterns, threshold, labels.transform, missing)

    def is_missing(self, value: str) -> bool:
        """Whether a raw cell means "no value"."""
        return normalise_value(value) in self.missing

    def class_of(self, value: str) -> str | None:
        """The class name of a raw value (None when no rule knows it; a name not in
        ``classes`` when the map sends it to a class the task leaves out)."""
        key = normalise_value(value)
        if key in self.mapping:
            return self.mapping[key]
        for pattern, name in self.patterns:
            if pattern.search(key):
                return name
        for name in self.classes:
            if normalise_value(name) == key:
                return name
        return None

    def class_by_threshold(self, value: float) -> str:
        """``classes[1]`` above the threshold, else ``classes[0]``."""
        assert self.threshold is not None
        return self.classes[1] if value > self.threshold else self.classes[0]

    def regression_target(self, value: float, column: str, table: str, subject: str) -> float:
        """The regression target of a raw number (after the configured transform)."""
        if self.transform == "log1p":
            if value <= -1:
                raise DataError(
                    f"column '{column}' holds {value} for subject {subject}; log1p needs > -1",
                    path=table,
                    fix="correct the value or set labels.transform=null",
                )
            return math.log1p(value)
        return value


def unknown_labels_error(
    values: Sequence[str], column: str, table: str, rules: LabelRules
) -> DataError:
    """One error listing the label values no rule maps (with the known classes)."""
    shown = ", ".join(f"'{v}'" for v in list(dict.fromkeys(values))[:6])
    known = ", ".join(rules.classes) or "(none)"
    return DataError(
        f"unknown label value(s) {shown} in column '{column}' (classes: {known})",
        path=table,
        fix=f"map them with labels.map (e.g. labels.map.{values[0]}=CLASS) or add them to "
        "labels.missing to drop those rows",
    )


def event_flag(value: str, event_values: Sequence[str]) -> int:
    """1 when ``value`` is one of ``event_values`` (normalised), else 0."""
    return int(normalise_value(value) in {normalise_value(v) for v in event_values})
