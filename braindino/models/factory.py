"""One door to a backbone: ``create_backbone(arch, ...)``, optionally from natural-image weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from braindino.errors import BrainDinoError, ConfigError
from braindino.models.archs import RESERVED_KWARGS, TRAIN_ONLY_KWARGS, resolve_arch
from braindino.models.backbone import MaskableViT

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")

_OFFLINE_FIX = (
    "connect to the network once (timm caches the download), or download the checkpoint "
    "yourself and pass its local file (.safetensors/.pth) as pretrained=/path/to/file"
)


def create_backbone(
    arch: str,
    img_size: int | tuple[int, int] = 224,
    in_chans: int = 1,
    drop_path_rate: float = 0.0,
    pretrained: str | Path | bool | None = None,
    **kw: Any,
) -> MaskableViT:
    """Build a maskable DINOv3/DINOv2 ViT.

    Args:
        arch: a BrainDINO name (``vit_tiny_patch16_dinov3``, ``vit_micro_patch16_dinov3``) or a timm
            DINOv3/DINOv2 ViT name (``vit_base_patch16_dinov3`` ...), without a weight tag.
        img_size: nominal input size (any multiple of the patch size runs; it only sets timm's
            default input size).
        in_chans: input channels; 1 for grey MRI slices.
        drop_path_rate: stochastic-depth rate (training only).
        pretrained: ``None``/``False`` for random init; ``True`` for timm's default weights of
            ``arch`` (Hugging Face hub); a timm name with tag
            (``vit_base_patch16_dinov3.lvd1689m``); or a local ``.safetensors``/``.pth`` file
            (timm's or Meta's key names). RGB patch filters are summed to fit ``in_chans=1``.
            Hub weights need the network or timm's cache.
        **kw: further timm model arguments (e.g. ``depth``, ``rope_rescale_coords``).

    Raises:
        ConfigError: unknown arch or argument; BrainDinoError: weights that cannot be obtained.
    """
    spec = resolve_arch(arch)
    if spec.timm_kwargs and _weight_source(spec.timm_name, pretrained)[2]:
        raise ConfigError(
            f"{arch} is a BrainDINO architecture; no natural-image weights exist for it",
            path="pretrained",
            fix="use pretrained=None, a local weights file for it, or a timm DINOv3 arch",
        )
    reserved = sorted(set(kw) & RESERVED_KWARGS)
    if reserved:
        raise ConfigError(
            f"backbone argument(s) {', '.join(reserved)} are set by BrainDINO itself",
            path="model",
            fix="remove them; the backbone always has no classifier, a CLS token and dynamic size",
        )
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ConfigError(
            f"in_chans must be a positive int, got {in_chans!r}", path="in_chans", fix="use 1"
        )
    train_kwargs = {k: kw.pop(k) for k in list(kw) if k in TRAIN_ONLY_KWARGS}
    if drop_path_rate:
        train_kwargs["drop_path_rate"] = float(drop_path_rate)
    timm_kwargs = {
        **spec.timm_kwargs,
        **kw,
        "img_size": img_size,
        "in_chans": in_chans,
        "num_classes": 0,
        "global_pool": "token",
        "dynamic_img_size": True,
    }
    vit = build_timm_model(spec.timm_name, timm_kwargs, train_kwargs, pretrained)
    return MaskableViT(
        vit,
        arch=spec.name,
        timm_name=spec.timm_name,
        timm_kwargs=timm_kwargs,
        train_kwargs=train_kwargs,
    )


def build_timm_model(
    timm_name: str,
    timm_kwargs: dict[str, Any],
    train_kwargs: dict[str, Any] | None = None,
    pretrained: str | Path | bool | None = None,
) -> nn.Module:
    """``timm.create_model`` with BrainDINO's errors: bad arguments, missing files, offline hub."""
    import timm

    model_name, overlay, hub = _weight_source(timm_name, pretrained)
    problem = _hub_problem(model_name) if hub else None
    if problem:
        raise BrainDinoError(
            f"cannot fetch pretrained weights {model_name!r} from the Hugging Face hub: {problem}",
            path="pretrained",
            fix=_OFFLINE_FIX,
        )
    kwargs = {**timm_kwargs, **(train_kwargs or {})}
    if overlay is not None:
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        return timm.create_model(model_name, pretrained=pretrained not in (None, False), **kwargs)
    except TypeError as err:
        raise ConfigError(
            f"timm model {timm_name} rejected its arguments ({err})",
            path="model",
            fix="remove or rename the unknown model argument",
        ) from err
    except Exception as err:
        first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        if hub:
            raise BrainDinoError(
                f"cannot fetch pretrained weights {model_name!r} from the Hugging Face hub "
                f"(needs network access or timm's cache; {type(err).__name__}: {first_line})",
                path="pretrained",
                fix=_OFFLINE_FIX,
            ) from err
        keys = ("embed_dim", "depth", "num_heads", "in_chans")  # what usually decides the fit
        summary = ", ".join(f"{k}={kwargs[k]}" for k in keys if k in kwargs) or "its defaults"
        raise BrainDinoError(
            f"weights do not fit {timm_name} with {summary} ({type(err).__name__}: {first_line})",
            path=overlay["file"] if overlay else "pretrained",
            fix="pass the architecture these weights were trained with as arch",
        ) from err


def _hub_problem(model_name: str) -> str | None:
    """Why timm cannot fetch ``model_name``'s hub weights now (None: it may). Fails fast offline
    instead of waiting through the hub client's retries."""
    import socket
    from urllib.parse import urlparse

    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None or not cfg.hf_hub_id:
        return None  # not a hub checkpoint: timm reports what is wrong
    try:
        import huggingface_hub.constants as hub_constants
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return "the huggingface_hub package is not installed"
    repo_id = cfg.hf_hub_id.split("@")[0]
    names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
    for name in [*names, "model.safetensors", "pytorch_model.bin"]:
        if isinstance(try_to_load_from_cache(repo_id, name), str):
            return None
    if hub_constants.HF_HUB_OFFLINE:
        return "offline mode (HF_HUB_OFFLINE) is set and the weights are not in the local cache"
    endpoint = urlparse(hub_constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as err:
        return f"no network access to {host} ({err})"
    return None


def _weight_source(
    timm_name: str, pretrained: str | Path | bool | None
) -> tuple[str, dict[str, str] | None, bool]:
    """(timm model name to create, pretrained-cfg overlay for a local file, whether it is hub)."""
    if pretrained is None or pretrained is False:
        return timm_name, None, False
    if pretrained is True or pretrained == "hub":
        return timm_name, None, True
    path = Path(pretrained)
    if path.is_file():
        return timm_name, {"file": str(path)}, False
    text = str(pretrained)
    if text.startswith("hf-hub:"):
        raise ConfigError(
            f"pretrained={text!r}: hf-hub: names carry their own architecture",
            path="pretrained",
            fix="download the checkpoint and pass its file with the matching arch",
        )
    if text.endswith(WEIGHT_SUFFIXES) or "/" in text:
        raise BrainDinoError(
            "pretrained weights file not found",
            path=text,
            fix="check the path, or pass a timm name such as 'vit_base_patch16_dinov3.lvd1689m'",
        )
    base, _, tag = text.partition(".")
    if base != timm_name:
        raise ConfigError(
            f"pretrained weights {text!r} are for {base}, not for {timm_name}",
            path="pretrained",
            fix=f"use arch='{base}' or weights named '{timm_name}.<tag>'",
        )
    return (f"{timm_name}.{tag}" if tag else timm_name), None, True
