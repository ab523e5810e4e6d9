"""``with evaluating(module):`` — a module in eval mode for one block, its own mode restored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode (dropout off, norms frozen) for the ``with`` block; its
    train/eval mode is restored afterwards, also when the block raises."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
