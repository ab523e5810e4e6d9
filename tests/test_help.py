"""Every command a user runs answers ``--help`` with its usage and no formatting residue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from braindino.commands import COMMANDS as SUBCOMMANDS  # the braindino console command

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    str(path.relative_to(ROOT))
    for folder in ("pretrain", "downstream")
    for path in (ROOT / folder).glob("*.py")
)
MODULES = ["braindino.check", "braindino.synth", "braindino.demo"]


COMMANDS = (
    [[script] for script in SCRIPTS]
    + [["-m", module] for module in MODULES]
    + [["-m", "braindino.commands", name] for name in SUBCOMMANDS]
)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_prints_usage(command):
    done = subprocess.run(
        [sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:200]
    assert "%%" not in done.stdout and "%(" not in done.stdout  # argparse leaves these verbatim
    assert len(done.stdout.splitlines()) >= 5  # more than a bare usage line
