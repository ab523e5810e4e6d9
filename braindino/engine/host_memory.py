"""Keep freed host memory in the process for reuse (glibc ``mallopt``), for CPU training.

PyTorch's CPU allocator hands every tensor to ``malloc``. glibc serves blocks above its mmap
threshold (at most 32 MB) with a fresh ``mmap`` and returns them with ``munmap`` when freed, so a
training step that builds the same large tensors every iteration (``[rows, 65,536]`` prototype
logits are 123 MB at batch 8) pays the kernel's page faults and zero-filling again each step:
about 150 ms per such tensor on this project's 2-core test machine. With mmap off for large
blocks and trimming off, freed memory stays in the heap and the next step reuses it, as a GPU
caching allocator does: after a few steps (glibc does not always refit a freed block at once)
the same pages serve every step and no fault remains. The process keeps its peak heap size.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_MAX = -4


def keep_freed_host_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    Returns True when applied; False where the C library has no ``mallopt`` (macOS, musl), in
    which case nothing changes. Affects the whole process from this call on.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # keep up to 2 GiB of free heap top
    no_mmap = mallopt(M_MMAP_MAX, 0)
    return bool(trim and no_mmap)
