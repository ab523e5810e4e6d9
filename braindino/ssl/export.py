"""Export a pretraining run's EMA-teacher backbone as a standalone encoder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from braindino.engine.checkpoint import load_checkpoint
from braindino.models import create_backbone, save_encoder
from braindino.ssl.build import resolve_checkpoint, teacher_backbone_weights


def export_run(run_or_checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the teacher backbone of a run (latest checkpoint) or of one checkpoint to ``out_dir``.

    The export holds ``model.safetensors`` (timm's keys) and ``config.json``; its ``extra`` records
    the run, the checkpoint step and the preprocessing of the shards it was trained on, so that
    ``braindino.load_encoder(out_dir)`` and downstream feature extraction use the same pipeline.
    """
    path = resolve_checkpoint(run_or_checkpoint, "RUN_DIR")
    state = load_checkpoint(path)
    cfg = OmegaConf.create(state["config"])
    kwargs = OmegaConf.to_container(cfg.model.get("kwargs") or OmegaConf.create({}))
    backbone = create_backbone(
        cfg.model.arch,
        img_size=int(cfg.model.img_size),
        in_chans=int(cfg.model.in_chans),
        **kwargs,
    )
    backbone.load_state_dict(teacher_backbone_weights(state))
    extra = {
        "run": str(Path(run_or_checkpoint).resolve()),
        "checkpoint": path.name,
        "step": int(state["step"]),
        "img_size": int(cfg.model.img_size),
        "preprocessing": _shard_preprocessing(cfg.data.shards),
    }
    return save_encoder(backbone, out_dir, extra=extra)


def _shard_preprocessing(shards: str | None) -> dict:
    """The preprocessing config saved by prepare beside the shards ({} when unavailable)."""
    if not shards or not (Path(shards) / "config.yaml").is_file():
        return {}
    section = OmegaConf.load(Path(shards) / "config.yaml").get("preprocess")
    return {} if section is None else OmegaConf.to_container(section, resolve=True)
