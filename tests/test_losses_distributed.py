"""Sinkhorn–Knopp over two gloo CPU processes equals one process on the whole batch."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from braindino.losses import sinkhorn_knopp
from braindino.ssl.trainer import CPU_PROCESSES_TORCH

pytestmark = pytest.mark.skipif(
    torch.__version__ < CPU_PROCESSES_TORCH,
    reason=f"gloo's teardown can hang before torch {CPU_PROCESSES_TORCH}",
)

WORLD_SIZE = 2
TEMPERATURE = 0.05


def _global_batch() -> torch.Tensor:
    """A fixed [12, 6] logit batch whose prototypes are unevenly popular."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 6, generator=generator) * 0.3
    logits[:, 0] += 0.5
    return logits


def _rank_rows(rank: int, n_rows: int, uneven: bool) -> slice:
    split = 5 if uneven else n_rows // 2
    return slice(0, split) if rank == 0 else slice(split, n_rows)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        logits = _global_batch()
        for uneven in (False, True):
            local = logits[_rank_rows(rank, logits.shape[0], uneven)]
            probs = sinkhorn_knopp(local, TEMPERATURE, iterations=3)
            torch.save(probs, Path(out_dir) / f"rank{rank}_uneven{int(uneven)}.pt")
    finally:
        dist.destroy_process_group()


def test_sinkhorn_two_processes_equal_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    logits = _global_batch()
    whole = sinkhorn_knopp(logits, TEMPERATURE, iterations=3)
    for uneven in (False, True):
        parts = [torch.load(tmp_path / f"rank{r}_uneven{int(uneven)}.pt") for r in (0, 1)]
        torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-5, atol=1e-6)
    # Each half on its own would be balanced differently: the all-reduce is what makes them equal.
    halves = [sinkhorn_knopp(logits[_rank_rows(r, 12, False)], TEMPERATURE) for r in (0, 1)]
    assert not torch.allclose(torch.cat(halves), whole, atol=1e-3)
