"""Turn SIGTERM / SIGUSR1 (SLURM pre-emption, time limits) into a flag the training loop checks.

The handler only records the request; the loop finishes its step, writes a checkpoint and
returns normally, so nothing is interrupted half-way::

    with install_signal_handlers() as stop:
        for it in range(start, total):
            train_step(it)
            if stop.should_exit():
                save_checkpoint(...)
                break
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

import torch

from braindino.errors import BrainDinoError

DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name)
)


class GracefulExit:
    """Holds the exit request set by the installed signal handlers; restores the old handlers.

    Attributes:
        requested: True once one of the signals arrived.
        received: the signal numbers received, in order.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.requested = False
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.received.append(signum)

    def install(self) -> GracefulExit:
        """Install the handlers (main thread only) and return ``self``."""
        if threading.current_thread() is not threading.main_thread():
            raise BrainDinoError(
                "signal handlers can only be installed from the main thread",
                path="install_signal_handlers",
                fix="call it in the training script's main thread",
            )
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were active before :meth:`install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def should_exit(self, sync: bool = True) -> bool:
        """Return whether to checkpoint and stop now.

        With ``sync`` and an initialised ``torch.distributed`` group, the flag is OR-ed across all
        processes, so every rank stops at the same step even if only one received the signal.
        Call it at the same points on every rank (e.g. every step, or every N steps).
        """
        if not (sync and torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.requested
        device = torch.device("cpu")
        if torch.distributed.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        self.requested = bool(flag.item() > 0)
        return self.requested

    def __enter__(self) -> GracefulExit:
        return self.install() if not self._previous else self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def install_signal_handlers(signals: Iterable[int] = DEFAULT_SIGNALS) -> GracefulExit:
    """Install handlers that set a flag on the returned :class:`GracefulExit` (also a context)."""
    return GracefulExit(signals).install()
