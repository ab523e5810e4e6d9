"""The target fields of each subject-table row: label/target for class and regression tasks,
time/event for survival, with rows that have no usable label dropped (and counted)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from braindino.tasks.labels import (
    LabelRules,
    event_flag,
    normalise_value,
    parse_number,
    unknown_labels_error,
)
from braindino.tasks.registry import as_list
from braindino.tasks.tables import pick_column


@dataclass
class Targets:
    """Row targets in table order: ``(subject id, fields)``, plus why rows were dropped."""

    rows: list[tuple[str, dict]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        """Count one dropped row."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def apply_filter(frame: pd.DataFrame, filters: DictConfig) -> pd.DataFrame:
    """Keep the rows whose column has one of the listed values (columns absent are skipped)."""
    for column, values in filters.items():
        if column not in frame.columns:
            continue
        allowed = {normalise_value(v) for v in as_list(values)}
        frame = frame[frame[column].map(normalise_value).isin(allowed)]
    return frame


def _fields(label: str | None, target: float, time=None, event=None, value=None) -> dict:
    return {"label": label, "target": target, "time": time, "event": event, "value": value}


def table_targets(
    task: DictConfig, rules: LabelRules, frame: pd.DataFrame, table: Path, subject_column: str
) -> Targets:
    """The target fields of every row of a subject table, as the task's ``target`` says."""
    data = task.data
    out = Targets()
    kind = task.target
    label_col = time_col = event_col = None
    if kind in ("class", "regression"):
        label_col = pick_column(frame, as_list(data.label_column), table, "data.label_column")
    if kind == "survival":
        time_col = pick_column(frame, as_list(data.time_column), table, "data.time_column")
    if kind == "survival" or (kind == "class" and as_list(data.event_column)):
        event_col = pick_column(frame, as_list(data.event_column), table, "data.event_column")
    unknown: list[str] = []
    for _, row in frame.iterrows():
        subject = row[subject_column]
        if not subject:
            out.drop("no_subject_id")
            continue
        if kind == "survival":
            raw = row[time_col]
            if rules.is_missing(raw):
                out.drop("no_label")
                continue
            time = parse_number(raw, time_col, str(table), subject)
            event = event_flag(row[event_col], data.event_values)
            out.rows.append((subject, _fields(None, math.nan, time, event)))
            continue
        raw = row[label_col]
        if rules.is_missing(raw):
            out.drop("no_label")
            continue
        if kind == "regression":
            value = parse_number(raw, label_col, str(table), subject)
            target = rules.regression_target(value, label_col, str(table), subject)
            out.rows.append((subject, _fields(None, target, value=value)))
            continue
        if rules.threshold is not None:
            value = parse_number(raw, label_col, str(table), subject)
            if event_col is not None:
                event = event_flag(row[event_col], data.event_values)
                if not event and value <= rules.threshold:
                    out.drop("censored_before_threshold")
                    continue
            label = rules.class_by_threshold(value)
        else:
            label = rules.class_of(raw)
            if label is None:
                unknown.append(raw)
                continue
        out.rows.append((subject, _fields(label, float(rules.classes.index(label)))))
    if unknown:
        raise unknown_labels_error(unknown, str(label_col), str(table), rules)
    return out
