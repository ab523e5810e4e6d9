"""WeightedSliceSampler: determinism, disjoint shares, per-dataset frequencies, exact resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader, IterableDataset

from braindino.data.sampler import WeightedSliceSampler
from braindino.errors import DataError

SIZES = (1000, 50, 300, 20)
WEIGHTS = (1.0, 2.0, 7.0, 0.0)


def _ids() -> np.ndarray:
    ids = np.repeat(np.arange(len(SIZES)), SIZES)
    return np.random.default_rng(0).permutation(ids)  # datasets interleaved in the index


def _take(sampler, n: int) -> list[int]:
    return list(itertools.islice(iter(sampler), n))


def test_same_seed_same_stream_other_seed_differs():
    ids = _ids()
    a = _take(WeightedSliceSampler(ids, WEIGHTS, seed=3), 500)
    b = _take(WeightedSliceSampler(ids, WEIGHTS, seed=3), 500)
    c = _take(WeightedSliceSampler(ids, WEIGHTS, seed=4), 500)
    assert a == b and a != c
    assert all(0 <= i < len(ids) for i in a)


def test_dataset_frequencies_follow_weights_and_slices_are_uniform():
    ids = _ids()
    drawn = np.array(_take(WeightedSliceSampler(ids, WEIGHTS, seed=1), 60_000))
    per_dataset = np.bincount(ids[drawn], minlength=len(SIZES))
    assert per_dataset[3] == 0  # weight 0: never drawn
    w = np.array(WEIGHTS[:3])
    expected = w / w.sum() * len(drawn)
    assert stats.chisquare(per_dataset[:3], expected).pvalue > 1e-3
    # within the 50-slice dataset every slice is equally likely
    small = drawn[ids[drawn] == 1]
    counts = np.bincount(small, minlength=len(ids))[np.flatnonzero(ids == 1)]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_ranks_take_disjoint_interleaved_shares_of_one_stream():
    ids = _ids()
    whole = _take(WeightedSliceSampler(ids, WEIGHTS, seed=5), 3 * 400)
    shares = [
        _take(WeightedSliceSampler(ids, WEIGHTS, 5, rank=r, world_size=3), 400) for r in range(3)
    ]
    rebuilt = [shares[g % 3][g // 3] for g in range(3 * 400)]
    assert rebuilt == whole  # every position read by exactly one rank


class _Stream(IterableDataset):
    def __init__(self, sampler: WeightedSliceSampler) -> None:
        self.sampler = sampler

    def __iter__(self):
        return iter(self.sampler)


def test_dataloader_workers_split_the_rank_stream_and_keep_its_order():
    ids = _ids()
    rank1 = WeightedSliceSampler(ids, WEIGHTS, 7, rank=1, world_size=2, samples_per_epoch=96)
    expected = _take(rank1, 96)
    worker_share = WeightedSliceSampler(
        ids, WEIGHTS, 7, rank=1, world_size=2, samples_per_epoch=96, worker_chunk=8
    )
    loader = DataLoader(_Stream(worker_share), batch_size=8, num_workers=2)
    batches = [b.tolist() for b in loader]
    assert len(batches) == 12  # 96 items, no item read twice by the two workers
    assert list(itertools.chain(*batches)) == expected


def test_resume_continues_the_uninterrupted_stream():
    ids = _ids()
    uninterrupted = _take(WeightedSliceSampler(ids, WEIGHTS, seed=9), 70_000)
    first = WeightedSliceSampler(ids, WEIGHTS, seed=9)
    it = iter(first)
    consumed = [next(it) for _ in range(66_000)]  # crosses a generation block boundary
    state = first.state_dict()
    resumed = WeightedSliceSampler(ids, WEIGHTS, seed=123)  # seed comes from the state
    resumed.load_state_dict(state)
    assert consumed + _take(resumed, 4_000) == uninterrupted


def test_resume_with_a_different_world_size_and_prefetch_count():
    ids = _ids()
    whole = _take(WeightedSliceSampler(ids, WEIGHTS, seed=2), 400)
    # two ranks each used 100 items (the DataLoader may have prefetched more)
    rank0 = WeightedSliceSampler(ids, WEIGHTS, 2, rank=0, world_size=2)
    _take(rank0, 150)
    state = rank0.state_dict(consumed=100)
    single = WeightedSliceSampler(ids, WEIGHTS, seed=2)
    single.load_state_dict(state)
    assert _take(single, 200) == whole[200:400]


def test_epoch_sized_iterations_continue_the_stream():
    ids = _ids()
    whole = _take(WeightedSliceSampler(ids, WEIGHTS, seed=4), 30)
    sampler = WeightedSliceSampler(ids, WEIGHTS, seed=4, samples_per_epoch=10)
    assert len(sampler) == 10
    epochs = [list(sampler) for _ in range(3)]
    assert list(itertools.chain(*epochs)) == whole


def test_changed_data_refuses_strict_resume():
    ids = _ids()
    state = WeightedSliceSampler(ids, WEIGHTS, seed=1).state_dict()
    other = WeightedSliceSampler(ids, (1.0, 1.0, 1.0, 0.0), seed=1)
    with pytest.raises(DataError, match="same shards and weights"):
        other.load_state_dict(state)
    other.load_state_dict(state, strict=False)


@pytest.mark.parametrize(
    ("ids", "weights", "kw", "where"),
    [
        (np.array([0, 1, 2]), (1.0, 1.0), {}, "weights"),
        (np.array([0, 1]), (1.0, -1.0), {}, "weights"),
        (np.array([0, 0]), (1.0, 1.0), {}, "weights"),  # dataset 1 weighted but empty
        (np.array([0.5, 1.0]), (1.0, 1.0), {}, "dataset_ids"),
    ],
)
def test_bad_input_names_the_argument(ids, weights, kw, where):
    with pytest.raises(DataError, match=where):
        WeightedSliceSampler(ids, weights, **kw)


@pytest.mark.parametrize(
    ("kw", "where"),
    [
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"samples_per_epoch": 0}, "samples_per_epoch"),
        ({"worker_chunk": 0}, "worker_chunk"),
    ],
)
def test_a_bad_process_share_from_the_trainer_is_a_programming_error(kw, where):
    with pytest.raises(ValueError, match=where):
        WeightedSliceSampler(np.array([0, 1]), (1.0, 1.0), **kw)


def test_state_dict_is_plain_python_for_safe_loading(tmp_path):
    sampler = WeightedSliceSampler(_ids(), WEIGHTS, seed=1)
    _take(sampler, 10)
    torch.save(sampler.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state["global_position"] == 10
