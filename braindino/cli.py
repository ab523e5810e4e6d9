"""Shared command-line plumbing: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; a ``BrainDinoError`` prints ``error: <line>`` on stderr and exits 2."""
    from braindino.errors import BrainDinoError

    try:
        code = main()
    except BrainDinoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
