"""Shared argument checks and the fp32 guard used by every loss in this package.

A loss is called by code, not by a user's file or config, so a wrong argument is a programming
error: it raises ``ValueError`` (with a traceback in the CLIs), naming the function and argument.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch


def check(ok: bool, where: str, problem: str, fix: str) -> None:
    """Raise one ``ValueError`` ``"<where>: <problem> (<fix>)"`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{where}: {problem} ({fix})")


def check_positive(value: float, where: str) -> None:
    """Require a finite, strictly positive number (temperatures, epsilons)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and 0 < float(value) < float("inf")
    check(ok, where, f"must be a positive finite number, got {value!r}", "pass a value > 0")


def check_tensor(value: object, where: str, ndim: int | tuple[int, ...]) -> torch.Tensor:
    """Require a tensor with ``ndim`` dimensions (one count or a tuple of allowed counts)."""
    check(
        isinstance(value, torch.Tensor),
        where,
        f"expected a torch.Tensor, got {type(value).__name__}",
        "convert it with torch.as_tensor",
    )
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    shape = tuple(value.shape)
    names = " or ".join(str(n) for n in allowed)
    check(
        value.dim() in allowed,
        where,
        f"expected {names} dimensions, got shape {shape}",
        "reshape the tensor to the documented layout",
    )
    return value


@contextlib.contextmanager
def full_precision(tensor: torch.Tensor) -> Iterator[None]:
    """Switch autocast off on ``tensor``'s device so loss maths runs in the dtype it is given."""
    device_type = tensor.device.type
    if device_type not in ("cpu", "cuda", "xpu", "mps", "hpu"):
        yield
        return
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Compute dtype for a loss: float64 stays float64 (gradcheck), everything else → float32."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def check_labelled_embeddings(embeddings: object, labels: object, where: str) -> int:
    """Validate ``[N, D]`` embeddings with ``[N]`` labels for ``where``; return N."""
    check_tensor(embeddings, f"{where}(embeddings)", 2)
    check_tensor(labels, f"{where}(labels)", 1)
    n = embeddings.shape[0]  # type: ignore[union-attr]
    check(
        labels.shape[0] == n,  # type: ignore[union-attr]
        f"{where}(labels)",
        f"has {labels.shape[0]} entries for {n} embeddings",  # type: ignore[union-attr]
        "pass one label per embedding row",
    )
    return n
