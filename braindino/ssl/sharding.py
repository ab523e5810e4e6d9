"""FSDP2 sharding of the student (ViT-L and larger): each transformer block, each head and the rest.

The student's parameters, gradients and AdamW state are split over the processes; the EMA and Gram
teachers stay whole on every process (no gradients, no optimiser state). Each step the student is
gathered once for the EMA update; checkpoints hold full (unsharded) tensors, so a sharded run
resumes on any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_student(student: nn.Module, device: torch.device) -> None:
    """Shard ``student`` (a ``StudentNetwork``) in place over all processes."""
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size() if dist.is_initialized() else 1
    mesh = init_device_mesh(device.type, (world,))
    for block in student.backbone.vit.blocks:
        fully_shard(block, mesh=mesh)
    # The heads stay gathered from forward to backward: each hands its prototype parameter
    # itself to its loss (FactoredLogits), outside the head's forward, so resharding
    # after the forward would free the storage the loss still reads.
    fully_shard(student.dino_head, mesh=mesh, reshard_after_forward=False)
    fully_shard(student.ibot_head, mesh=mesh, reshard_after_forward=False)
    fully_shard(student, mesh=mesh)


@contextmanager
def unsharded(student: nn.Module) -> Iterator[None]:
    """Gather every sharded part of ``student`` (all processes call it), reshard on exit."""
    parts = [m for m in student.modules() if isinstance(m, FSDPModule)]
    for part in parts:
        part.unshard()
    try:
        yield
    finally:
        for part in parts:
            part.reshard()


def full_model_state(student: nn.Module) -> dict[str, torch.Tensor]:
    """The student's full state dict on the CPU of process 0 (empty elsewhere; collective)."""
    return get_model_state_dict(student, options=FULL)


def full_optimizer_state(student: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's full state keyed by parameter name on process 0 (collective)."""
    return get_optimizer_state_dict(student, optimizer, options=FULL)


def load_full_optimizer_state(
    student: nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Load a full (name-keyed) optimiser state into the sharded optimiser (collective).

    Parameters without saved state (e.g. the prototype layers while they were frozen) start
    fresh, as they would have in an uninterrupted run."""
    saved = set(state["state"])
    if not saved:
        return  # nothing trained yet: every parameter starts fresh; schedules set lr and wd
    options = StateDictOptions(full_state_dict=True, strict=False)
    set_optimizer_state_dict(
        student, optimizer, _with_placeholders(student, state), options=options
    )
    # The placeholders (and, in newer torch, its own zero-gradient initialisation) gave every
    # parameter state; drop it where the checkpoint had none, or AdamW's step count would not
    # start at 0.
    names = {param: name for name, param in student.named_parameters()}
    for param in list(optimizer.state):
        if names.get(param) not in saved:
            del optimizer.state[param]


def _with_placeholders(student: nn.Module, state: dict) -> dict:
    """``state`` with zero state for every parameter that has none (torch 2.7 and 2.8 require an
    entry for each parameter of a group when loading), shaped like a saved entry."""
    template = next(iter(state["state"].values()))
    filled = dict(state["state"])
    for name, param in student.named_parameters():
        if name not in filled:
            filled[name] = {key: _placeholder(v, param.shape) for key, v in template.items()}
    return {**state, "state": filled}


def _placeholder(value, shape: torch.Size):
    """Zeros of the parameter's (full) shape for per-element state; scalars (the step) as saved."""
    if not torch.is_tensor(value):
        return value
    return torch.zeros(shape, dtype=value.dtype) if value.dim() else value.clone()
