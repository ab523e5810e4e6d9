"""The task registry: one small YAML per task in ``configs/tasks/``, merged over its defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from braindino.config import CONFIG_DIR, check_keys, config_regex, load_config
from braindino.errors import ConfigError

TASK_DIR = CONFIG_DIR / "tasks"
DEFAULTS = TASK_DIR / "default.yaml"
TARGETS = ("class", "regression", "survival", "segmentation")
ADAPTERS = ("table", "folders", "csv", "union")
SCANS = ("first", "all")
DUPLICATES = ("exclude", "first")
TIMEPOINTS = ("baseline", "all")
TRANSFORMS = (None, "log1p")


def available_tasks() -> list[str]:
    """The names of the shipped tasks (the YAML files of ``configs/tasks/`` but the defaults)."""
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml") if p.stem != "default")


def as_list(value: Any) -> list[str]:
    """A config value that may be null, one string or a list, as a list of strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value]
    return [str(value)]


def _task_file(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = TASK_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError(
        f"unknown task '{name}'",
        path="task",
        fix=f"choose one of: {', '.join(available_tasks())}, or give a task YAML file",
    )


def _overrides_config(overrides: Mapping | Sequence[str] | None) -> DictConfig | None:
    """Overrides (a ``key=value`` list or a mapping with nested or dotted keys) as a config."""
    if overrides is None:
        return None
    try:
        if isinstance(overrides, (Mapping, DictConfig)):
            extra = OmegaConf.create({})
            for key, value in overrides.items():
                OmegaConf.update(extra, str(key), value, merge=True)
            return extra
        items = [overrides] if isinstance(overrides, str) else [str(o) for o in overrides]
        return OmegaConf.from_dotlist(items)
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"bad override ({exc})", path="task overrides", fix="write key.sub=value"
        ) from exc


def load_task(name: str | Path, overrides: Mapping | Sequence[str] | None = None) -> DictConfig:
    """The merged config of one task: defaults <- ``configs/tasks/<name>.yaml`` <- overrides.

    Args:
        name: a task name (``adni``, ``brain_age`` ...; see ``available_tasks()``) or a path to a
            task YAML file of one's own.
        overrides: ``key=value`` strings (``["data.root=/data/ADNI", "split.seed=1"]``) or a
            mapping (nested or dotted keys).

    Raises:
        ConfigError: an unknown task, an unknown key (naming the nearest known one) or an
        inconsistent value (e.g. a class task without classes).
    """
    path = _task_file(name)
    cfg = load_config(DEFAULTS, [path])
    extra = _overrides_config(overrides)
    if extra is not None:
        # checked against the defaults, where label maps, image patterns, filters and head
        # options are open mappings, so an override may add an entry a task file lacks
        check_keys(load_config(DEFAULTS), extra, "task overrides")
        cfg = OmegaConf.merge(cfg, extra)
    if not cfg.name:
        cfg.name = path.stem
    validate_task(cfg)
    return cfg  # type: ignore[return-value]


def _check_choice(key: str, value: Any, allowed: Sequence[str], where: str, fix: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{key} '{value}' is not one of {', '.join(allowed)}", path=where, fix=fix
        )


def validate_task(cfg: DictConfig) -> None:
    """Raise ConfigError for the first inconsistent value of a merged task config."""
    where = f"task {cfg.name}"
    fix = "set target: class, regression, survival or segmentation"
    _check_choice("target", cfg.target, TARGETS, where, fix)
    if cfg.target == "segmentation":
        validate_segmentation(cfg)
    data = cfg.data
    fix = "set data.adapter to table, folders, csv or union"
    _check_choice("data.adapter", data.adapter, ADAPTERS, where, fix)
    _check_choice("data.scans", data.scans, SCANS, where, "set data.scans: first")
    for key, allowed in (("duplicates", DUPLICATES), ("timepoint", TIMEPOINTS)):
        _check_choice(
            f"data.{key}", str(data[key]), allowed, where, f"set data.{key}: {allowed[0]}"
        )
    if data.event_if_no_column not in (None, 0, 1):
        raise ConfigError(
            f"data.event_if_no_column is {data.event_if_no_column!r}",
            path=where,
            fix="use 0 (censored), 1 (event) or null",
        )
    if cfg.labels.transform not in TRANSFORMS:
        raise ConfigError(
            f"labels.transform '{cfg.labels.transform}' is not supported",
            path=where,
            fix="use null or log1p",
        )
    if data.adapter == "union" and not as_list(data.sources):
        raise ConfigError(
            "the union adapter needs data.sources", path=where, fix="list task names to join"
        )
    if data.adapter in ("table", "folders"):
        missing = [role for role in as_list(data.inputs) if role not in data.images]
        if not as_list(data.inputs) or missing:
            raise ConfigError(
                f"data.inputs names roles without a data.images pattern: {missing or '(none)'}",
                path=where,
                fix="give every role in data.inputs a regular expression under data.images",
            )
    if data.patient:
        config_regex(str(data.patient), "data.patient", where, "patient")
    for role, text in data.images.items():
        config_regex(str(text), f"data.images.{role}", where, "subject")
    if cfg.target == "class" and data.adapter != "csv" and not as_list(cfg.labels.classes):
        raise ConfigError(
            "a class task needs labels.classes", path=where, fix="list the class names in order"
        )
    if cfg.labels.threshold is not None and len(as_list(cfg.labels.classes)) != 2:
        raise ConfigError(
            "labels.threshold needs exactly two classes",
            path=where,
            fix="set labels.classes: [below, above]",
        )
    fractions = [float(f) for f in cfg.split.fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"split.fractions {fractions} must be three non-negative numbers summing to 1",
            path=where,
            fix="use e.g. [0.6, 0.2, 0.2] (train, val, test)",
        )
    if fractions[0] <= 0 or fractions[2] <= 0:
        raise ConfigError(
            "split.fractions needs a train and a test share",
            path=where,
            fix="use e.g. [0.6, 0.2, 0.2]",
        )
    for frac in cfg.label_fractions:
        if not 0 < float(frac) <= 1:
            raise ConfigError(
                f"label fraction {frac} is not in (0, 1]",
                path=where,
                fix="use e.g. [0.01, 0.1, 1.0]",
            )


def validate_segmentation(cfg: DictConfig) -> None:
    """Raise ConfigError when a segmentation task's mask role, labels or regions do not fit."""
    where = f"task {cfg.name}"
    seg = cfg.segmentation
    inputs = as_list(cfg.data.inputs)
    if seg.mask_input is None or str(seg.mask_input) not in inputs[1:]:
        raise ConfigError(
            f"segmentation.mask_input {seg.mask_input!r} is not one of data.inputs after the "
            f"first image ({inputs})",
            path=where,
            fix="list the image roles, then the label map's role, in data.inputs",
        )
    try:
        values = {int(k) for k in seg.labels}
        regions = {str(name): [int(v) for v in as_list(vals)] for name, vals in seg.regions.items()}
    except ValueError as exc:
        raise ConfigError(
            f"segmentation label values must be integers ({exc})",
            path=where,
            fix="write labels as {1: necrotic_core, ...} and regions as {WT: [1, 2, 4]}",
        ) from exc
    if not values or 0 in values:
        raise ConfigError(
            "segmentation.labels needs the non-zero label values (0 is background)",
            path=where,
            fix="write e.g. labels: {1: lesion}",
        )
    for name, members in regions.items():
        if not members or not set(members) <= values:
            raise ConfigError(
                f"segmentation region {name} unites {members}, not a subset of the labels "
                f"{sorted(values)}",
                path=where,
                fix="list label values from segmentation.labels",
            )
    if not regions:
        raise ConfigError(
            "segmentation.regions is empty", path=where, fix="write e.g. regions: {lesion: [1]}"
        )
