"""keep_freed_host_memory: a freed big tensor's memory is reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate, touch and free a 256 MB tensor twice; print the page faults of the second round.
PROBE = """
import resource, sys, torch
from braindino.engine.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for round in range(2):
    before = faults()
    x = torch.ones(64 * 1024 * 1024)  # 256 MB, every page written
    del x
print(applied, faults() - before)
"""


def _second_round_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_big_tensors_are_reused_without_page_faults():
    pages = 256 * 1024 * 1024 // 4096
    applied, kept = _second_round_faults("keep")
    _, default = _second_round_faults("default")
    assert applied == "True"
    assert default > pages // 2  # glibc unmaps it on free: every page faults in again
    assert kept < pages // 20  # kept in the heap: the second tensor reuses the same pages
