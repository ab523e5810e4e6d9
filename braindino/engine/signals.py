"""Turn SIGTERM / SIGUSR1 / SIGINT (SLURM pre-emption, time limits, ``timeout``, Ctrl-C) into a
flag the training loop checks.

The handler only records the request; the loop finishes its step, writes a checkpoint and
returns normally, so nothing is interrupted half-way::

    with install_signal_handlers() as stop:
        for it in range(start, total):
            train_step(it)
            if stop.should_exit():
                save_checkpoint(...)
                break

A second SIGINT (Ctrl-C pressed again while a stop is pending) raises ``KeyboardInterrupt``.
Launchers, ``timeout`` and SLURM signal the whole process group, so DataLoader workers receive
the signal too: :func:`ignore_stop_signals` (their ``worker_init_fn``) makes them ignore it, and
:func:`signals_blocked` around starting them closes the window before it runs. A run stopped this
way exits with :data:`EXIT_INTERRUPTED`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

import torch

from braindino.errors import BrainDinoError

DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name)
)
# Exit status of a run that checkpointed on a signal before its schedule ended (sysexits.h
# EX_TEMPFAIL: "try again"): running the same command again continues it.
EXIT_INTERRUPTED = 75
_SIGINT_NOTE = b"interrupt: checkpointing after this step (Ctrl-C again stops without one)\n"


class GracefulExit:
    """Holds the exit request set by the installed signal handlers; restores the old handlers.

    Attributes:
        requested: True once one of the signals arrived.
        received: the signal numbers received, in order.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS, announce: bool = False) -> None:
        self.signals = tuple(signals)
        self.announce = announce
        self.requested = False
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt  # Ctrl-C again: stop now, without a checkpoint
        self.requested = True
        self.received.append(signum)
        if signum == signal.SIGINT and self.announce:
            os.write(2, _SIGINT_NOTE)  # not print(): it may interrupt a write to stderr

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


def install_signal_handlers(
    signals: Iterable[int] = DEFAULT_SIGNALS, announce: bool = False
) -> GracefulExit:
    """Install handlers that set a flag on the returned :class:`GracefulExit` (also a context).

    ``announce``: say on stderr, at the first SIGINT, that a checkpoint follows (main process).
    """
    return GracefulExit(signals, announce=announce).install()


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """``worker_init_fn`` of DataLoader workers: ignore the stop signals, then unblock them.

    The main process alone acts on a signal sent to the process group; a worker that died of it
    would crash the main process before it can checkpoint.
    """
    for signum in DEFAULT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFAULT_SIGNALS)


@contextlib.contextmanager
def signals_blocked(signals: Iterable[int] = DEFAULT_SIGNALS) -> Iterator[None]:
    """Block ``signals`` in this thread while the body runs (e.g. while it forks workers).

    A forked child starts with them blocked until its :func:`ignore_stop_signals`; here they are
    delivered when the block ends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, tuple(signals))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
