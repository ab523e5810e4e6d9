"""Rank shares of the slice stream when the global batch is dealt to processes in chunks."""

from __future__ import annotations

import numpy as np
import pytest

from braindino.data.sampler import WeightedSliceSampler
from braindino.errors import DataError

IDS = np.repeat(np.arange(3), [50, 30, 20])
WEIGHTS = [1.0, 2.0, 0.5]


def _sampler(rank: int = 0, world: int = 1, chunk: int = 1) -> WeightedSliceSampler:
    return WeightedSliceSampler(IDS, WEIGHTS, seed=7, rank=rank, world_size=world, rank_chunk=chunk)


def test_each_step_of_two_ranks_is_the_single_process_batch():
    b, steps = 4, 5
    whole = _sampler().rank_indices(0, 2 * b * steps).reshape(steps, 2 * b)
    parts = [_sampler(r, 2, b).rank_indices(0, b * steps).reshape(steps, b) for r in (0, 1)]
    # rank 0 holds the first half of each global batch, rank 1 the second, in order
    np.testing.assert_array_equal(np.concatenate(parts, 1), whole)


def test_chunk_one_keeps_the_interleaved_layout():
    whole = _sampler().rank_indices(0, 12)
    np.testing.assert_array_equal(_sampler(1, 3, 1).rank_indices(0, 4), whole[1::3])


def test_resume_rounds_a_partly_used_chunk_up():
    sampler = _sampler(1, 2, 4)
    assert sampler.state_dict(consumed=8)["global_position"] == 16
    assert sampler.state_dict(consumed=9)["global_position"] == 24
    resumed = _sampler(0, 1, 1)
    resumed.load_state_dict(sampler.state_dict(consumed=8))
    np.testing.assert_array_equal(resumed.rank_indices(0, 8), _sampler().rank_indices(16, 8))


def test_bad_rank_chunk_is_refused():
    with pytest.raises(DataError, match="rank_chunk"):
        _sampler(chunk=0)
