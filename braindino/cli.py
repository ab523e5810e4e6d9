"""Shared command-line plumbing: one-line errors instead of tracebacks.

Every command runs its ``main`` through ``run_cli``. A problem the user can fix — a
``BrainDinoError``, or an ``OSError`` of a read-only folder, a missing permission or a full disk
(also when a library wrapped it, e.g. torch's "unexpected pos") — prints one line ``error: <path>:
<what happened>. Fix: <what to do>`` and exits 2. ``--debug`` on any command line (removed
before the command parses it) or ``BRAINDINO_DEBUG=1`` prints the full traceback first.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "BRAINDINO_DEBUG"


def prog_name(script: str) -> str:
    """How a usage line names the running command: ``braindino X`` under the ``braindino``
    console command (``braindino.commands``), else ``script``."""
    return sys.argv[0] if sys.argv and sys.argv[0].startswith("braindino ") else script


def debug_requested(argv: list[str]) -> bool:
    """Whether ``--debug`` is in ``argv`` (then removed) or ``BRAINDINO_DEBUG`` is set (not 0)."""
    flagged = DEBUG_FLAG in argv[1:]
    if flagged:
        argv[1:] = [arg for arg in argv[1:] if arg != DEBUG_FLAG]
    return flagged or os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; a user-fixable problem prints ``error: <line>`` on stderr and exits 2."""
    from braindino.errors import BrainDinoError, storage_problem

    debug = debug_requested(sys.argv)
    try:
        code = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        problem = exc if isinstance(exc, BrainDinoError) else storage_problem(exc)
        if problem is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
