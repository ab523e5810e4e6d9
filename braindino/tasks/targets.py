"""The target fields of each subject-table row: label/target for class and regression tasks,
time/event for survival, with rows that have no usable label dropped (and counted)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from braindino.tasks.droplog import DropLog
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
    """Row targets in table order: ``(subject id, fields, hints)``, plus why rows were dropped.

    ``hints`` are what a row says about its image (``image_id``, ``date``) for the adapter to
    pick the labelled scan; ``log`` records every row left out and why.
    """

    rows: list[tuple[str, dict, dict]] = field(default_factory=list)
    log: DropLog = field(default_factory=DropLog)


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


def optional_column(frame: pd.DataFrame, candidates: list[str]) -> str | None:
    """The first of ``candidates`` the table has (case-insensitive), or None."""
    lowered = {c.lower(): c for c in frame.columns}
    return next((lowered[c.lower()] for c in candidates if c.lower() in lowered), None)


@dataclass
class TargetColumns:
    """The columns one table's targets are read from (None: not used or not in the table)."""

    label: str | None = None
    time: str | None = None
    censor_time: str | None = None
    event: str | None = None
    image_id: str | None = None
    date: str | None = None
    censoring: bool = False  # rows may be censored (an event column, or event_if_no_column)


def _columns(task: DictConfig, frame: pd.DataFrame, table: Path) -> TargetColumns:
    data, kind = task.data, task.target
    cols = TargetColumns(
        image_id=optional_column(frame, as_list(data.image_id_column)),
        date=optional_column(frame, as_list(data.date_column)),
    )
    if kind in ("class", "regression"):
        cols.label = pick_column(frame, as_list(data.label_column), table, "data.label_column")
    if kind == "survival":
        cols.time = pick_column(frame, as_list(data.time_column), table, "data.time_column")
    cols.censor_time = optional_column(frame, as_list(data.censor_time_column))
    wants_event = kind == "survival" or (kind == "class" and as_list(data.event_column))
    if wants_event:
        cols.censoring = True
        cols.event = optional_column(frame, as_list(data.event_column))
        if cols.event is None and data.event_if_no_column is None:
            pick_column(frame, as_list(data.event_column), table, "data.event_column")  # raises
    return cols


class DropRowError(Exception):
    """A row without a usable target; ``args[0]`` is the reason."""


def _event(row: pd.Series, cols: TargetColumns, data: DictConfig) -> int:
    """The row's event flag; a status that is neither an event nor a censoring is dropped."""
    if cols.event is None:
        return int(data.event_if_no_column)
    status = row[cols.event]
    event = event_flag(status, data.event_values)
    censored = {normalise_value(v) for v in as_list(data.censor_values)}
    if not event and censored and normalise_value(status) not in censored:
        raise DropRowError("unusable_event_status")
    return event


def _time(
    row: pd.Series, column: str, cols: TargetColumns, event: int, rules: LabelRules, table: Path
) -> float:
    """The row's time: ``column``, or for a censored row the censoring-time column."""
    raw = row[column]
    if rules.is_missing(raw) and not event and cols.censor_time is not None:
        raw = row[cols.censor_time]
    if rules.is_missing(raw):
        raise DropRowError("no_label")
    return parse_number(raw, column, str(table), row.name)


def row_fields(
    row: pd.Series, task: DictConfig, rules: LabelRules, cols: TargetColumns, table: Path
) -> dict | str:
    """The target fields of one row named by its subject (a raw label no rule knows is returned
    as it is). Raises DropRowError with the reason when the row has no usable target."""
    kind, subject = task.target, row.name
    if kind == "survival":
        event = _event(row, cols, task.data)
        return _fields(None, math.nan, _time(row, cols.time, cols, event, rules, table), event)
    raw = row[cols.label]
    if kind == "class" and rules.threshold is not None:
        event = _event(row, cols, task.data) if cols.censoring else 1
        value = _time(row, cols.label, cols, event, rules, table)
        if not event and value <= rules.threshold:
            raise DropRowError("censored_before_threshold")
        label = rules.class_by_threshold(value)
        return _fields(label, float(rules.classes.index(label)))
    if rules.is_missing(raw):
        raise DropRowError("no_label")
    if kind == "regression":
        value = parse_number(raw, cols.label, str(table), subject)
        target = rules.regression_target(value, cols.label, str(table), subject)
        return _fields(None, target, value=value)
    label = rules.class_of(raw)
    if label is None:
        return raw
    if label not in rules.classes:
        raise DropRowError("class_not_in_task")
    return _fields(label, float(rules.classes.index(label)))


def table_targets(
    task: DictConfig, rules: LabelRules, frame: pd.DataFrame, table: Path, subject_column: str
) -> Targets:
    """The target fields of every row of a subject table, as the task's ``target`` says."""
    out = Targets()
    cols = _columns(task, frame, table)
    unknown: list[str] = []
    for _, row in frame.iterrows():
        subject = row[subject_column]
        if not subject:
            out.log.drop("no_subject_id")
            continue
        row = row.rename(subject)
        try:
            fields = row_fields(row, task, rules, cols, table)
        except DropRowError as why:
            out.log.drop(str(why.args[0]), subject)
            continue
        if not isinstance(fields, dict):
            unknown.append(fields)
            continue
        hints = {
            "image_id": row[cols.image_id] if cols.image_id else "",
            "date": row[cols.date] if cols.date else "",
        }
        out.rows.append((subject, fields, hints))
    if unknown:
        raise unknown_labels_error(unknown, str(cols.label), str(table), rules)
    return out
