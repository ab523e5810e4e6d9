"""One config system: OmegaConf YAML defaults + small override files + command-line dotlists.

Every area (data, pretrain, tasks) has a defaults file under ``configs/``; a run merges
``defaults <- override files <- dotlist`` and any key not present in the defaults is an error
that names the key and the closest known one, so a typo fails at start with one clear line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from braindino.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data; ./configs links here


def config_path(name: str | Path, near: Path | None = None) -> Path:
    """Resolve a config name (``"data/default"``, ``"pretrain/tiny.yaml"``) or path to a file.

    ``near``: a folder also searched (the defaults' folder, so ``--config tiny`` finds
    ``configs/pretrain/tiny.yaml`` for pretraining).
    """
    path = Path(name)
    candidates = [path, CONFIG_DIR / path] + ([near / path] if near is not None else [])
    if path.suffix not in (".yaml", ".yml"):
        candidates += [p.with_name(p.name + ".yaml") for p in list(candidates)]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise ConfigError(
        "config file not found",
        path=name,
        fix=f"give a YAML path or a name under {CONFIG_DIR} (e.g. pretrain/tiny)",
    )


def _load_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax errors come in several types
        raise ConfigError(
            f"not valid YAML ({exc})", path=path, fix="correct the YAML syntax"
        ) from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError("top level must be a mapping", path=path, fix="write key: value pairs")
    return cfg


def _known_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(cfg, DictConfig):
        for key in cfg:
            full = f"{prefix}{key}"
            keys.append(full)
            keys += _known_keys(cfg._get_node(key), full + ".")
    return keys


def open_paths(cfg: DictConfig, prefix: str = "") -> frozenset[str]:
    """Dotted paths of the mappings a defaults file declares empty (``{}``): they take any key
    (their own code checks them, e.g. ``augment`` against ``configs/pretrain/augment.yaml``)."""
    found: set[str] = set()
    for key in cfg:
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_none():
            path = f"{prefix}{key}"
            found |= {path} if len(node) == 0 else open_paths(node, path + ".")
    return frozenset(found)


def check_keys(
    base: DictConfig,
    extra: Any,
    source: str,
    prefix: str = "",
    open_keys: frozenset[str] = frozenset(),
) -> None:
    """Raise ConfigError for the first key of ``extra`` that ``base`` does not have.

    ``source`` names where ``extra`` came from (a file, "command line"); ``prefix`` is the dotted
    path of ``base`` within a larger config, so messages name the full key; mappings at
    ``open_keys`` paths (see :func:`open_paths`) take any key.
    """
    if prefix.rstrip(".") in open_keys:
        return
    if isinstance(extra, Mapping) and not isinstance(extra, DictConfig):
        extra = OmegaConf.create(dict(extra))
    if not isinstance(extra, DictConfig) or not isinstance(base, DictConfig):
        return
    for key in extra:
        full = f"{prefix}{key}"
        if key not in base:
            # Mappings declared empty (``{}``) in the defaults are open: they take any key.
            if len(base) == 0:
                continue
            close = difflib.get_close_matches(full, _known_keys(base, prefix), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "remove it or check the defaults"
            raise ConfigError(f"unknown config key '{full}'", path=source, fix=hint)
        base_node = base._get_node(key)
        if isinstance(base_node, DictConfig) and not base_node._is_none():
            check_keys(base_node, extra._get_node(key), source, full + ".", open_keys)


def section_with_defaults(
    defaults: str | Path, section: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """``values`` merged over the ``section`` of the ``defaults`` config file, as a plain dict:
    the one place a settings dataclass takes its defaults from. An unknown key is one
    ConfigError naming the nearest known key."""
    base = load_config(defaults)[section]
    extra = values if isinstance(values, DictConfig) else OmegaConf.create(dict(values))
    check_keys(base, extra, f"{section} settings", prefix=f"{section}.")
    merged = OmegaConf.merge(base, extra)
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def load_config(
    defaults: str | Path,
    overrides: Iterable[str | Path] = (),
    dotlist: Sequence[str] = (),
) -> DictConfig:
    """Merge a defaults file, override files (in order) and ``key=value`` dotlist items.

    Override files may name ``defaults: <other config>`` at their top to start from another
    file instead (e.g. ``stage2_gram.yaml`` starts from ``vitb16.yaml``). Unknown keys raise
    ``ConfigError`` naming the key and the nearest known one.
    """
    defaults_path = config_path(defaults)
    cfg = _load_yaml(defaults_path)
    cfg.pop("defaults", None)
    free = open_paths(cfg)
    for item in overrides:
        path = config_path(item, near=defaults_path.parent)
        extra = _load_yaml(path)
        parent = extra.pop("defaults", None)
        if parent is not None:
            cfg = OmegaConf.merge(cfg, load_config(defaults, [parent]))
        check_keys(cfg, extra, str(path), open_keys=free)
        cfg = OmegaConf.merge(cfg, extra)
    if dotlist:
        try:
            extra = OmegaConf.from_dotlist(list(dotlist))
        except OmegaConfBaseException as exc:
            raise ConfigError(
                f"bad override ({exc})", path="command line", fix="write key.sub=value"
            ) from exc
        check_keys(cfg, extra, "command line", open_keys=free)
        cfg = OmegaConf.merge(cfg, extra)
    return cfg  # type: ignore[return-value]


def save_config(cfg: DictConfig | ListConfig, path: str | Path) -> None:
    """Write the merged config as YAML (atomically) so a run folder records what it ran."""
    from braindino.io.atomic import atomic_write

    text = OmegaConf.to_yaml(cfg, resolve=True)
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def config_regex(
    text: str, key: str, where: str, group: str | None = None, flags: int = 0
) -> re.Pattern:
    """``text`` (the value of config ``key``) compiled; ConfigError when it is not a valid
    regular expression, or lacks the named ``group`` (``(?P<subject>...)``)."""
    try:
        regex = re.compile(str(text), flags)
    except re.error as exc:
        raise ConfigError(
            f"{key} '{text}' is not a valid regular expression ({exc})",
            path=where,
            fix="correct the pattern",
        ) from exc
    if group is not None and group not in regex.groupindex:
        raise ConfigError(
            f"{key} has no (?P<{group}>...) group",
            path=where,
            fix=f"mark the part naming the {group} with (?P<{group}>...)",
        )
    return regex
