"""Build the pretraining pieces from a merged config: accelerator, meta-architecture, optimiser,
schedules; and the start-up checks on them (distribution, what may change on resume, a GPU recipe
started on the CPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from braindino.data.shards import SliceShardReader
from braindino.engine.checkpoint import find_latest_checkpoint, load_checkpoint
from braindino.engine.schedules import TrainingSchedules
from braindino.errors import ConfigError, DataError
from braindino.models import DINOHead, create_backbone
from braindino.ssl.meta_arch import LossWeights, SelfDistillation, StudentNetwork
from braindino.ssl.param_groups import build_param_groups


def rope_jitter(m: DictConfig) -> dict[str, float]:
    """``{"rope_rescale_coords": R}`` when ``model.rope_rescale_coords`` is set (a train-only
    timm argument: the export leaves it out), else nothing."""
    if m.rope_rescale_coords is None:
        return {}
    value = float(m.rope_rescale_coords)
    if not value >= 1.0:
        raise ConfigError(
            f"must be >= 1 (a scale factor), got {m.rope_rescale_coords!r}",
            path="model.rope_rescale_coords",
            fix="use 2 (DINOv3) or null to switch it off",
        )
    return {"rope_rescale_coords": value}


def build_student(cfg: DictConfig) -> StudentNetwork:
    """The student network of a config: backbone (``model``) + DINO and iBOT heads (``heads``)."""
    m = cfg.model
    backbone = create_backbone(
        m.arch,
        img_size=int(m.img_size),
        in_chans=int(m.in_chans),
        drop_path_rate=float(m.drop_path_rate),
        pretrained=m.pretrained,
        **rope_jitter(m),
        **OmegaConf.to_container(m.kwargs),
    )
    dim = backbone.embed_dim
    heads = [DINOHead(dim, **OmegaConf.to_container(cfg.heads[name])) for name in ("dino", "ibot")]
    return StudentNetwork(backbone, *heads)


def fused_step(value: Any, device_type: str) -> bool:
    """``run.fused`` as a bool: ``true``/``false`` as given; ``auto`` = the fused step on the CPU
    and the plain one on a GPU, the faster path on each (on an H200 the plain step is 10-15 %
    faster at batch 64 and K = 65,536; on 2 CPU cores the fused one 10-34 %: bench/RESULTS.md)."""
    if isinstance(value, bool):
        return value
    if value == "auto":
        return device_type != "cuda"
    raise ConfigError(
        f"run.fused must be true, false or auto, got {value!r}",
        path="run.fused",
        fix="true (memory-lean), false (plain) or auto (the faster on the device)",
    )


def build_meta_arch(cfg: DictConfig, device_type: str = "cpu") -> SelfDistillation:
    """Student (backbone + DINO head + iBOT head), its EMA teacher, and the loss weights; with
    ``distill.enabled`` also the frozen distillation teacher that gives the targets.
    ``device_type`` (where it will train) resolves ``run.fused: auto``."""
    fused = fused_step(cfg.run.fused, device_type)  # a bad value fails before the build
    student = build_student(cfg)
    weights = LossWeights.from_mapping(cfg.loss)
    meta = SelfDistillation(student, weights, fused=fused)
    if cfg.model.init_from:
        state = load_checkpoint(resolve_checkpoint(cfg.model.init_from, "model.init_from"))
        meta.student.load_state_dict(state["student"])
        meta.teacher.load_state_dict(state["teacher"])
    if cfg.distill.enabled:
        from braindino.ssl.distill import load_distill_teacher  # it builds with build_student

        teacher = load_distill_teacher(cfg.distill.teacher, student)
        meta.set_distill_teacher(teacher, mask_student=bool(cfg.distill.mask_student))
    return meta


def resolve_checkpoint(path: str | Path, key: str) -> Path:
    """A checkpoint file, or the latest checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        found = find_latest_checkpoint(path)
        if found is None:
            raise ConfigError("run folder holds no checkpoint", path=path, fix=f"check {key}")
        return found
    if not path.is_file():
        raise ConfigError("checkpoint not found", path=path, fix=f"check {key}")
    return path


def teacher_backbone_weights(state: dict) -> dict:
    """The EMA teacher's backbone weights of a checkpoint ``state``, under the backbone's keys."""
    prefix = "backbone."
    return {k.removeprefix(prefix): v for k, v in state["teacher"].items() if k.startswith(prefix)}


def build_optimizer(cfg: DictConfig, meta: SelfDistillation) -> torch.optim.AdamW:
    """AdamW over the student's parameter groups (layer-wise lr decay, no decay on norms...)."""
    groups = build_param_groups(
        meta.student,
        base_lr=0.0,
        weight_decay=0.0,
        layer_decay=float(cfg.optim.layer_decay),
        patch_embed_lr_mult=float(cfg.optim.patch_embed_lr_mult),
    )
    betas = tuple(float(b) for b in cfg.optim.betas)
    # lr/wd are set per step from the schedules. The fused kernel (one pass per tensor) is ~4x
    # faster than the default on the CPU, where it matters for 65,536-prototype heads; sharded
    # (DTensor) parameters keep the default implementation.
    params = [p for g in groups for p in g["params"]]
    if all(type(p.data) is torch.Tensor and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.AdamW(groups, betas=betas, fused=True)
        except (RuntimeError, TypeError):  # a build without the fused kernel for this device
            pass
    return torch.optim.AdamW(groups, betas=betas)


def build_schedules(cfg: DictConfig, world_size: int) -> TrainingSchedules:
    """Per-iteration schedules for this run's global batch size."""
    batch = int(cfg.data.batch_size_per_device) * world_size
    return TrainingSchedules.from_config(OmegaConf.to_container(cfg.schedule), batch)


def build_accelerator(cfg: DictConfig):
    """An ``accelerate.Accelerator`` for ``run.device`` and ``run.precision``."""
    from accelerate import Accelerator

    want = cfg.run.device
    use_cpu = want == "cpu" or (want == "auto" and not torch.cuda.is_available())
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "run.device=cuda but no GPU is visible", path="run.device", fix="use auto"
        )
    precision = cfg.run.precision
    if precision == "auto":
        precision = "fp32" if use_cpu else "bf16"
    if precision not in ("bf16", "fp32"):
        raise ConfigError(
            f"unknown precision '{precision}'", path="run.precision", fix="auto|bf16|fp32"
        )
    return Accelerator(cpu=use_cpu, mixed_precision="bf16" if precision == "bf16" else "no")


def distribution_kind(acc) -> str:
    """The accelerator's distributed type as a string (``"FSDP"``, ``"MULTI_GPU"``, ...)."""
    return str(getattr(acc.distributed_type, "value", acc.distributed_type))


# Several CPU processes (gloo): in torch 2.6 and 2.7 destroying the process group hangs in about
# one run in four, and FSDP2's all-gather fails on the CPU in 2.6; 2.8 does neither.
CPU_PROCESSES_TORCH = "2.8"


def check_distribution(acc) -> None:
    """DDP or the trainer's own FSDP2 sharding; DeepSpeed is not supported; several CPU
    processes need torch >= ``CPU_PROCESSES_TORCH``."""
    if distribution_kind(acc) == "DEEPSPEED":
        raise ConfigError(
            "the pretrainer does not support DeepSpeed",
            path="accelerate config",
            fix="launch with configs/accelerate/ddp_bf16.yaml or fsdp.yaml",
        )
    if (
        acc.num_processes > 1
        and acc.device.type == "cpu"
        and torch.__version__ < CPU_PROCESSES_TORCH
    ):
        raise ConfigError(
            f"training with several CPU processes needs torch >= {CPU_PROCESSES_TORCH} "
            f"(this is {torch.__version__}: its gloo teardown can hang when training ends)",
            path="launch",
            fix=f"upgrade torch to >= {CPU_PROCESSES_TORCH}, or train in one process or on GPUs",
        )


# Keys a resumed run may change without --allow-config-change: they decide how the run is
# watched, saved and fed, not what it trains (the data stream does not depend on the worker
# count). Everything else (model, heads, losses, schedule length and values, data, optimiser,
# precision, device, compile, sharding) changes the training and needs the explicit flag.
RESUME_MAY_CHANGE = (
    "run.out",
    "run.resume",
    "run.progress",
    "run.log_every",
    "run.image_every",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.max_nonfinite_steps",
    "run.fused",
    "data.num_workers",
    "probe",
)

# A student this large (ViT-S/16 with its 65,536-prototype heads has 66 M) is a GPU recipe; the
# CPU recipe (configs/pretrain/tiny.yaml) has 3 M.
GPU_RECIPE_PARAMETERS = 30_000_000


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_recipe_warning(cfg: DictConfig, parameters: int, device: str, cores: int) -> str | None:
    """One warning line when a run sized for GPUs starts on the CPU (a large student, or more
    DataLoader workers than cores), else ``None``."""
    if device != "cpu":
        return None
    problems, fixes = [], []
    if parameters > GPU_RECIPE_PARAMETERS:
        problems.append(
            f"a {parameters / 1e6:.0f}M-parameter student ({cfg.model.arch} and its heads) "
            f"at batch {cfg.data.batch_size_per_device}"
        )
        fixes.append("--config tiny for a CPU run, or a GPU machine")
    workers = int(cfg.data.num_workers)
    if workers > cores:
        problems.append(f"data.num_workers={workers} on {cores} CPU core(s)")
        fixes.append(f"data.num_workers={max(cores - 1, 0)}")
    if not problems:
        return None
    return (
        f"warning: starting on the CPU with {' and '.join(problems)}: expect many GB of memory "
        f"and slow steps. Fix: {'; '.join(fixes)}"
    )


def augment_group_size(cfg: DictConfig, batch_size: int) -> int:
    """Slices augmented under one seed (``data.augment_group``; null = the per-process batch)."""
    group = cfg.data.augment_group
    group = batch_size if group is None else int(group)
    if group < 1 or batch_size % group:
        raise ConfigError(
            f"data.augment_group={group} does not divide data.batch_size_per_device={batch_size}",
            path="data.augment_group",
            fix="use a divisor of the per-process batch, or null (the whole batch)",
        )
    return group


def open_shards(cfg: DictConfig) -> SliceShardReader:
    """The reader of ``data.shards`` (one clear error when it is unset or missing)."""
    if not cfg.data.shards:
        raise ConfigError(
            "no slice shards given",
            path="data.shards",
            fix="prepare them with pretrain/prepare.py --out DIR, then pass data.shards=DIR",
        )
    if not Path(cfg.data.shards).is_dir():
        raise DataError(
            "slice shard folder not found",
            path=cfg.data.shards,
            fix="check data.shards or run pretrain/prepare.py --out that folder",
        )
    return SliceShardReader(cfg.data.shards)


def wants_sharding(cfg: DictConfig, acc) -> bool:
    """FSDP2 for the student: ``run.fsdp=true`` or an accelerate FSDP config, with >1 process."""
    asked = bool(cfg.run.fsdp) or distribution_kind(acc) == "FSDP"
    return asked and acc.num_processes > 1
