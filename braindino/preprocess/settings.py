"""Preprocessing settings: the YAML defaults, user overrides, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from braindino.config import check_keys, load_config
from braindino.errors import ConfigError

DEFAULTS = "data/preprocess"
STORAGE_DTYPES = ("uint8", "float16")


@dataclass(frozen=True)
class PreprocessSettings:
    """The validated, typed form of a preprocessing config (see configs/data/preprocess.yaml)."""

    spacing: tuple[float, float, float] | None
    spacing_tolerance: float
    antialias: bool
    lower_percentile: float
    upper_percentile: float
    max_samples: int
    foreground_threshold: float
    crop: bool
    margin_mm: float
    min_plane_fraction: float
    min_foreground: float
    size: int
    storage_dtype: str


def nested_overrides(overrides: Mapping | DictConfig) -> DictConfig:
    """``overrides`` as a nested DictConfig: dotted keys (``{"slices.size": 128}``) become
    nested ones; anything but a mapping is a ConfigError."""
    if isinstance(overrides, DictConfig):
        return overrides
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"overrides must be a mapping, got {type(overrides).__name__}",
            path="preprocess overrides",
            fix="pass a dict such as {'slices': {'size': 128}} or {'slices.size': 128}",
        )
    extra = OmegaConf.create({})
    try:
        for key, value in overrides.items():
            OmegaConf.update(extra, str(key), value, merge=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"bad override ({exc})", path="preprocess overrides", fix="use plain keys and values"
        ) from exc
    return extra


def preprocess_config(overrides: Mapping | DictConfig | None = None) -> DictConfig:
    """The defaults of ``configs/data/preprocess.yaml`` merged with ``overrides``.

    ``overrides`` may be nested (``{"slices": {"size": 128}}``) or dotted (``{"slices.size":
    128}``). An unknown key or an invalid value raises ``ConfigError`` naming the key.
    """
    cfg = _defaults_config()
    if overrides is not None:
        extra = nested_overrides(overrides)
        check_keys(cfg, extra, "preprocess config")
        cfg = OmegaConf.merge(cfg, extra)
    else:
        cfg = cfg.copy()
    settings_from_config(cfg)  # validate now so bad values fail at start
    return cfg  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _defaults_config() -> DictConfig:
    """The shipped defaults, read once per process (callers merge or copy, never mutate)."""
    return load_config(DEFAULTS)


def _number(cfg: DictConfig, key: str, low: float, high: float, integer: bool = False) -> Any:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(
            f"'{key}' must be {kind}, got {value!r}", path="preprocess config", fix=f"set {key}"
        )
    if not low <= value <= high:
        raise ConfigError(
            f"'{key}' = {value} is outside [{low}, {high}]",
            path="preprocess config",
            fix=f"set {key} within [{low}, {high}]",
        )
    return int(value) if integer else float(value)


def _spacing(cfg: DictConfig) -> tuple[float, float, float] | None:
    value = cfg.get("spacing")
    if value is None:
        return None
    items = [value] * 3 if isinstance(value, (int, float)) else list(value)
    ok = len(items) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in items
    )
    if not ok:
        raise ConfigError(
            f"'spacing' must be null, one positive number or three, got {value!r}",
            path="preprocess config",
            fix="write e.g. spacing: [1.0, 1.0, 1.0]",
        )
    return (float(items[0]), float(items[1]), float(items[2]))


def _flag(cfg: DictConfig, key: str) -> bool:
    value = OmegaConf.select(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(
            f"'{key}' must be true or false, got {value!r}",
            path="preprocess config",
            fix=f"set {key}: true",
        )
    return value


def settings_from_config(cfg: DictConfig) -> PreprocessSettings:
    """Check every value of a merged preprocessing config and return it typed."""
    lower = _number(cfg, "intensity.lower_percentile", 0.0, 100.0)
    upper = _number(cfg, "intensity.upper_percentile", 0.0, 100.0)
    if lower >= upper:
        raise ConfigError(
            f"intensity.lower_percentile ({lower}) must be below upper_percentile ({upper})",
            path="preprocess config",
            fix="use e.g. 1.0 and 99.0",
        )
    dtype = OmegaConf.select(cfg, "storage.dtype")
    if dtype not in STORAGE_DTYPES:
        raise ConfigError(
            f"'storage.dtype' must be one of {STORAGE_DTYPES}, got {dtype!r}",
            path="preprocess config",
            fix="set storage.dtype: uint8",
        )
    return PreprocessSettings(
        spacing=_spacing(cfg),
        spacing_tolerance=_number(cfg, "spacing_tolerance", 0.0, 0.5),
        antialias=_flag(cfg, "antialias"),
        lower_percentile=lower,
        upper_percentile=upper,
        max_samples=_number(cfg, "intensity.max_samples", 0, 2**62, integer=True),
        foreground_threshold=_number(cfg, "foreground.threshold", 0.0, 1.0),
        crop=_flag(cfg, "crop.enabled"),
        margin_mm=_number(cfg, "crop.margin_mm", 0.0, 1e4),
        min_plane_fraction=_number(cfg, "crop.min_plane_fraction", 0.0, 1.0),
        min_foreground=_number(cfg, "slices.min_foreground", 0.0, 1.0),
        size=_number(cfg, "slices.size", 8, 8192, integer=True),
        storage_dtype=str(dtype),
    )


@lru_cache(maxsize=1)
def default_settings() -> PreprocessSettings:
    """The settings of the shipped defaults (cached: read once per process)."""
    return settings_from_config(_defaults_config())


def resolve_settings(cfg: Mapping | DictConfig | PreprocessSettings | None) -> PreprocessSettings:
    """Settings from ``None`` (defaults), a (partial) config mapping, or settings as they are."""
    if cfg is None:
        return default_settings()
    if isinstance(cfg, PreprocessSettings):
        return cfg
    return settings_from_config(preprocess_config(cfg))
