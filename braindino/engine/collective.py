"""Decisions taken once, on the main process, and shared with every process of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from braindino.errors import BrainDinoError

T = TypeVar("T")


def main_decides(decide: Callable[[], T], is_main: bool) -> T:
    """Run ``decide`` on the main process only and return its result on every process.

    A ``BrainDinoError`` it raises is raised on every process, so all stop with the same line
    (instead of the others waiting for a main process that has gone). Every process must call it
    at the same point; without an initialised ``torch.distributed`` group it just runs ``decide``.
    """
    outcome: tuple = ("ok", None)
    if is_main:
        try:
            outcome = ("ok", decide())
        except BrainDinoError as exc:
            outcome = ("error", (type(exc), exc.problem, exc.path, exc.fix))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [outcome]
        torch.distributed.broadcast_object_list(box, src=0)
        outcome = box[0]
    if outcome[0] == "error":
        kind, problem, path, fix = outcome[1]
        raise kind(problem, path=path, fix=fix)
    return outcome[1]


def close_process_group() -> None:
    """Tear the distributed process group down, if there is one.

    Call it before a training process exits: left to interpreter exit, a gloo process group's
    threads can abort the process ("terminate called without an active exception") after
    training has finished and checkpointed, which turns a finished job into a failed one.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
