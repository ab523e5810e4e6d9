"""Encoder export and loading: a folder with ``model.safetensors`` + ``config.json``.

``model.safetensors`` holds the backbone under exactly timm's state-dict keys (no mask token, no
heads), so plain timm loads it::

    cfg = json.load(open(out / "config.json"))
    model = timm.create_model(cfg["timm_name"], pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")),
                              **cfg["timm_kwargs"])

``config.json`` records the architecture (``arch``, ``timm_name``, ``timm_kwargs`` = what a user
passes to timm, ``img_size``, ``in_chans``, ``embed_dim``, ``depth``, ``num_heads``,
``patch_size``, ``num_register_tokens``), train-only options, a SHA-256 of the weights and
whatever the caller passes in ``extra`` (e.g. the preprocessing) under the key ``extra``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from braindino.errors import BrainDinoError, ConfigError
from braindino.io.atomic import AtomicFile
from braindino.models.archs import RESERVED_KWARGS
from braindino.models.backbone import MaskableViT
from braindino.models.factory import build_timm_model, create_backbone

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
EXPORT_FORMAT = "braindino-encoder"
EXPORT_VERSION = 1
RANDOM_PREFIX = "random:"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_config(backbone: MaskableViT) -> dict[str, Any]:
    """The architecture part of an export's ``config.json`` for ``backbone``."""
    timm_kwargs = _jsonable(backbone.timm_kwargs)
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "arch": backbone.arch,
        "timm_name": backbone.timm_name,
        "timm_kwargs": timm_kwargs,
        "train_kwargs": _jsonable(backbone.train_kwargs),
        "img_size": timm_kwargs.get("img_size"),
        "in_chans": backbone.in_chans,
        "embed_dim": backbone.embed_dim,
        "depth": backbone.depth,
        "num_heads": backbone.num_heads,
        "patch_size": backbone.patch_size[0],
        "num_register_tokens": backbone.num_register_tokens,
        "timm_usage": (
            f"timm.create_model({backbone.timm_name!r}, pretrained=True, "
            "pretrained_cfg_overlay=dict(file='<this folder>/model.safetensors'), **timm_kwargs)"
        ),
    }


def save_encoder(
    backbone: MaskableViT,
    out_dir: str | Path,
    arch: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``backbone`` as ``out_dir/model.safetensors`` + ``out_dir/config.json``.

    Args:
        backbone: the (teacher) backbone to export.
        out_dir: folder to create or overwrite the two files in.
        arch: optional check that the backbone is this architecture.
        extra: JSON-serialisable information stored under ``extra`` (e.g. preprocessing).

    Returns:
        ``out_dir`` as a Path. Files are written to temporary names and moved into place, with
        the usual (umask) modes; a full disk raises ``OSError(ENOSPC)`` naming the file and
        leaves the previous export as it was.
    """
    from safetensors.torch import save_file

    if not isinstance(backbone, MaskableViT):
        raise BrainDinoError(
            f"save_encoder needs a MaskableViT, got {type(backbone).__name__}",
            path="backbone",
            fix="export the backbone built by braindino.models.create_backbone",
        )
    if arch is not None and arch != backbone.arch:
        raise ConfigError(
            f"backbone is a {backbone.arch}, not a {arch}",
            path="arch",
            fix="pass the backbone's own architecture (or leave arch out)",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = encoder_config(backbone)
    try:
        config["extra"] = json.loads(json.dumps(_jsonable(extra or {})))
    except (TypeError, ValueError) as err:
        raise BrainDinoError(
            f"extra export information is not JSON-serialisable ({err})",
            path="extra",
            fix="pass plain dicts, lists, strings and numbers",
        ) from err
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in backbone.timm_state_dict().items()}
    # both files are complete before either replaces its old copy; the weights move first
    with AtomicFile(out / CONFIG_FILE) as config_file, AtomicFile(out / WEIGHTS_FILE) as weights:
        save_file(tensors, str(weights.tmp), metadata={"format": "pt", "arch": backbone.arch})
        config["weights_sha256"] = _sha256(weights.tmp)
        config_file.tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def load_encoder(
    path_or_name: str | Path,
    seed: int = 0,
    map_location: str | torch.device = "cpu",
) -> MaskableViT:
    """Load an encoder for frozen use (returned in eval mode).

    Args:
        path_or_name: an export folder (or its ``model.safetensors`` / ``config.json``);
            ``random:<arch>`` for a random-init baseline (``seed`` fixes it); or a timm name with
            natural-image weights (``vit_base_patch16_dinov3.lvd1689m``), which needs network
            access or timm's cache and gets its RGB filters summed to one channel.
        seed: initialisation seed for ``random:<arch>``.
        map_location: device to place the weights on.

    Returns:
        A ``MaskableViT``; ``.source`` names where it came from (a cache key) and ``.extra`` holds
        the export's ``extra`` information ({} otherwise).
    """
    text = str(path_or_name)
    if text.startswith(RANDOM_PREFIX):
        model = _random_backbone(text[len(RANDOM_PREFIX) :], seed)
    elif Path(text).exists():
        model = _load_export(Path(text), map_location)
    elif "/" in text or text.endswith((".safetensors", ".json", ".pth")):
        raise BrainDinoError(
            "encoder not found",
            path=text,
            fix="pass an export folder (python pretrain/export.py RUN_DIR OUT), "
            "'random:<arch>', or a timm model name",
        )
    else:
        base = text.partition(".")[0]
        model = create_backbone(base, pretrained=text)
        cfg = getattr(model.vit, "pretrained_cfg", {}) or {}
        model.source = f"timm:{text}"
        model.extra = {"pretrained_cfg": {k: cfg.get(k) for k in ("mean", "std", "input_size")}}
    return model.to(map_location).eval()


def random_like(encoder: MaskableViT, seed: int = 0) -> MaskableViT:
    """A random-init copy of ``encoder``'s architecture, built with the same timm arguments
    (LayerScale ``init_values`` included), in eval mode: the fair random baseline for it.

    ``random:<arch>`` uses timm's defaults instead (for the DINOv3 ViTs LayerScale 1e-5, which makes
    every CLS token nearly identical), so comparing a pretrained encoder built with other init
    arguments against it would measure the initialisation, not the pretraining.
    """
    kwargs = {k: v for k, v in encoder.timm_kwargs.items() if k not in RESERVED_KWARGS}
    kwargs.setdefault("img_size", 224)
    model = _random_backbone(encoder.arch, seed, **{**kwargs, "in_chans": encoder.in_chans})
    return model.to(next(encoder.parameters()).device).eval()


def _random_backbone(arch: str, seed: int, **kwargs: Any) -> MaskableViT:
    """``create_backbone(arch, **kwargs)`` initialised under ``seed`` (the global RNG untouched),
    its ``source`` ``random:<arch>:seed=<seed>`` (caches add the weights' digest)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_backbone(arch, **kwargs)
    model.source, model.extra = f"{RANDOM_PREFIX}{arch}:seed={seed}", {}
    return model


def read_encoder_config(folder: Path) -> dict[str, Any]:
    """Read and check an export's ``config.json``."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise BrainDinoError(
            f"no {CONFIG_FILE} in the encoder folder",
            path=folder,
            fix="pass a folder written by save_encoder / pretrain/export.py",
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrainDinoError(
            f"not valid JSON ({err})", path=path, fix="re-export the encoder"
        ) from err
    missing = [k for k in ("format", "arch", "timm_name", "timm_kwargs") if k not in config]
    if missing or config.get("format") != EXPORT_FORMAT:
        raise BrainDinoError(
            f"not a BrainDINO encoder config (missing {', '.join(missing) or 'format'})",
            path=path,
            fix="re-export the encoder with save_encoder / pretrain/export.py",
        )
    if config.get("format_version", 0) > EXPORT_VERSION:
        raise BrainDinoError(
            f"encoder format version {config['format_version']} is newer than this BrainDINO",
            path=path,
            fix="upgrade braindino",
        )
    return config


def _load_export(path: Path, map_location: str | torch.device) -> MaskableViT:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = path if path.is_dir() else path.parent
    config = read_encoder_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise BrainDinoError(
            f"no {WEIGHTS_FILE} next to {CONFIG_FILE}", path=folder, fix="re-export the encoder"
        )
    vit = build_timm_model(config["timm_name"], config["timm_kwargs"])
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise BrainDinoError(
            f"cannot read the weights ({err})", path=weights, fix="re-export the encoder"
        ) from err
    try:
        vit.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise BrainDinoError(
            f"weights do not match {config['arch']} ({detail})",
            path=weights,
            fix="keep model.safetensors and config.json from the same export",
        ) from err
    sha = _sha256(weights)
    if config.get("weights_sha256", sha) != sha:
        raise BrainDinoError(
            "weights differ from the ones this config.json was exported with (SHA-256 mismatch)",
            path=weights,
            fix="keep model.safetensors and config.json from the same export, or re-export",
        )
    model = MaskableViT(
        vit,
        arch=config["arch"],
        timm_name=config["timm_name"],
        timm_kwargs=config["timm_kwargs"],
        train_kwargs=config.get("train_kwargs", {}),
    )
    model.source, model.extra = f"export:{sha}", dict(config.get("extra", {}))
    return model
