"""A deterministic, resumable stream of slice indices drawn per dataset by weight.

The stream is one global sequence ``s[0], s[1], …`` that depends only on the seed, the per-slice
dataset ids and the weights. Item ``g`` is drawn in two steps: pick a dataset with probability
proportional to its weight, then pick one of that dataset's slices uniformly (with replacement, so
a small dataset with a large weight is revisited more often). Items are generated in blocks of
``BLOCK_SIZE`` positions, each block from its own generator seeded by ``(seed, block)``, so any
position can be produced without replaying the stream.

Sharing: the stream is cut into chunks of ``rank_chunk`` consecutive positions dealt to the ranks
in turn: rank ``r`` of ``W`` reads chunks ``r, r + W, r + 2W, …`` (with ``rank_chunk = 1``:
positions ``start + r + W*j``). With ``rank_chunk`` equal to the per-process batch, step ``t``'s
global batch is the contiguous range ``[t*W*b, (t+1)*W*b)`` and rank ``r`` holds its ``r``-th
slice, so ``W`` processes with batch ``b`` see the same samples, in the same order, as one
process with batch ``W*b``. Inside a rank, DataLoader worker ``w`` of ``K`` (when the sampler
is iterated inside workers, e.g. by an IterableDataset) reads the rank's positions in chunks of
``worker_chunk``, chunk ``c`` going to worker ``c % K``. Positions are therefore disjoint across
ranks and workers, and with ``worker_chunk`` equal to the per-worker batch size DataLoader's
round-robin over workers hands the trainer exactly the rank's stream in order.

Resume: ``state_dict()`` records the global position reached; ``load_state_dict`` continues from
it, even with a different number of ranks. With ``rank_chunk > 1`` the position is rounded up to
whole chunks (the trainer always consumes whole chunks, i.e. whole batches).

Memory: one int32/int64 array of slice indices sorted by dataset (4–8 bytes per slice), nothing
per slice in Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler, get_worker_info

from braindino.errors import DataError

BLOCK_SIZE = 1 << 16
_READ_CHUNK = 4096


class WeightedSliceSampler(Sampler[int]):
    """Yield slice indices: dataset chosen by weight, then a slice uniformly within it.

    Args:
        dataset_ids: dataset id (``0 … len(weights)-1``) of every slice, shape ``[num_slices]``.
        weights: sampling weight per dataset (any non-negative scale; normalised here).
        seed: the stream's seed; the same seed gives the same stream on every machine.
        rank, world_size: this process's share of the global stream.
        samples_per_epoch: items one iteration over the sampler yields on this rank; ``None``
            gives an endless stream. Successive iterations continue the stream.
        worker_chunk: consecutive rank positions handed to one DataLoader worker (see module doc).
        rank_chunk: consecutive global positions dealt to one rank at a time (see module doc).
    """

    def __init__(
        self,
        dataset_ids: np.ndarray,
        weights: Sequence[float] | np.ndarray,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        samples_per_epoch: int | None = None,
        worker_chunk: int = 1,
        rank_chunk: int = 1,
    ) -> None:
        ids = np.asarray(dataset_ids)
        probs = np.asarray(weights, dtype=np.float64).ravel()
        _check_inputs(ids, probs, rank, world_size, samples_per_epoch, worker_chunk)
        if not isinstance(rank_chunk, int) or rank_chunk < 1:
            raise DataError(
                f"rank_chunk must be an integer >= 1, got {rank_chunk!r}",
                path="rank_chunk",
                fix="use the per-process batch size",
            )
        counts = np.bincount(ids, minlength=len(probs))
        empty = np.flatnonzero((counts == 0) & (probs > 0))
        if len(empty):
            raise DataError(
                f"dataset id(s) {empty.tolist()} have a weight but no slices",
                path="weights",
                fix="give those datasets weight 0 or add their slices to the index",
            )
        index_dtype = np.int32 if len(ids) < 2**31 else np.int64
        self._by_dataset = np.argsort(ids, kind="stable").astype(index_dtype)
        self._counts = counts.astype(np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._cum_probs = np.cumsum(probs / probs.sum())
        self._cum_probs[-1] = 1.0
        self._weights = probs
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.samples_per_epoch = samples_per_epoch
        self.worker_chunk = worker_chunk
        self.rank_chunk = rank_chunk
        self._start = 0  # global position where this rank's stream begins
        self._yielded = 0  # rank positions handed out since _start
        self._block_cache: tuple[int, np.ndarray] | None = None

    @property
    def num_slices(self) -> int:
        """Number of slices the sampler draws from."""
        return len(self._by_dataset)

    def __len__(self) -> int:
        if self.samples_per_epoch is None:
            raise TypeError("an endless WeightedSliceSampler has no length")
        return self.samples_per_epoch

    def global_indices(self, positions: np.ndarray) -> np.ndarray:
        """Return the slice indices at these global stream positions (any order, repeats too)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty(positions.shape, dtype=np.int64)
        blocks = positions // BLOCK_SIZE
        for block in np.unique(blocks):
            where = blocks == block
            out[where] = self._block(int(block))[positions[where] - block * BLOCK_SIZE]
        return out

    def _block(self, block: int) -> np.ndarray:
        if self._block_cache is not None and self._block_cache[0] == block:
            return self._block_cache[1]
        rng = np.random.default_rng([self.seed, block])
        dataset = np.searchsorted(self._cum_probs, rng.random(BLOCK_SIZE), side="right")
        dataset = np.minimum(dataset, len(self._cum_probs) - 1)
        within = (rng.random(BLOCK_SIZE) * self._counts[dataset]).astype(np.int64)
        values = self._by_dataset[self._offsets[dataset] + within].astype(np.int64)
        self._block_cache = (block, values)
        return values

    def rank_indices(self, first: int, count: int) -> np.ndarray:
        """Return ``count`` items of this rank's stream starting at rank position ``first``."""
        rank_pos = np.arange(first, first + count, dtype=np.int64)
        chunk, within = np.divmod(rank_pos, self.rank_chunk)
        dealt = (chunk * self.world_size + self.rank) * self.rank_chunk + within
        return self.global_indices(self._start + dealt)

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        first = self._yielded
        end = None if self.samples_per_epoch is None else first + self.samples_per_epoch
        if info is None:  # main-process use: the position advances as items are handed out
            return self._iter_main(first, end)
        return self._iter_worker(first, end, info.id, info.num_workers)

    def _iter_main(self, first: int, end: int | None) -> Iterator[int]:
        pos = first
        while end is None or pos < end:
            count = _READ_CHUNK if end is None else min(_READ_CHUNK, end - pos)
            for value in self.rank_indices(pos, count).tolist():
                pos += 1
                self._yielded = pos
                yield value

    def _iter_worker(
        self, first: int, end: int | None, worker: int, num_workers: int
    ) -> Iterator[int]:
        chunk = self.worker_chunk
        # Chunks are counted from the rank's start so the split does not depend on resume points.
        c = first // chunk
        while True:
            if c % num_workers == worker:
                lo = max(c * chunk, first)
                hi = (c + 1) * chunk if end is None else min((c + 1) * chunk, end)
                if hi <= lo:
                    return
                yield from self.rank_indices(lo, hi - lo).tolist()
            elif end is not None and c * chunk >= end:
                return
            c += 1

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Return the stream position as plain Python values (safe for ``torch.save``).

        ``consumed`` is how many items this rank has used since the sampler started (its
        construction or the last ``load_state_dict``); by default, the items handed out. Pass it
        when a DataLoader prefetches ahead of the trainer (e.g. ``iterations_done * batch``).
        """
        used = self._yielded if consumed is None else int(consumed)
        whole_chunks = -(-used // self.rank_chunk)  # a partly used chunk counts as used
        return {
            "seed": self.seed,
            "global_position": self._start + self.world_size * self.rank_chunk * whole_chunks,
            "num_slices": self.num_slices,
            "weights": self._weights.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue the stream saved in ``state`` (any rank count); the seed is taken from it.

        With ``strict`` a changed slice count or weight list raises ``DataError``: the stream
        would no longer be the one that was interrupted.
        """
        try:
            seed, position = int(state["seed"]), int(state["global_position"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"sampler state is incomplete or malformed ({exc!r})",
                path="checkpoint['sampler']",
                fix="resume from a checkpoint written by BrainDINO's trainer",
            ) from exc
        if strict:
            same_weights = np.array_equal(np.asarray(state.get("weights", [])), self._weights)
            if state.get("num_slices") != self.num_slices or not same_weights:
                raise DataError(
                    f"the checkpoint's sampler saw {state.get('num_slices')} slices with weights "
                    f"{state.get('weights')}, this run has {self.num_slices} with "
                    f"{self._weights.tolist()}",
                    path="checkpoint['sampler']",
                    fix="resume with the same shards and weights, or load with strict=False",
                )
        self.seed = seed
        self._start = position
        self._yielded = 0
        self._block_cache = None


def _check_inputs(
    ids: np.ndarray,
    probs: np.ndarray,
    rank: int,
    world_size: int,
    samples_per_epoch: int | None,
    worker_chunk: int,
) -> None:
    if ids.ndim != 1 or len(ids) == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(
            f"dataset_ids must be a non-empty 1-D integer array, got {ids.dtype} {ids.shape}",
            path="dataset_ids",
            fix="pass the index's per-slice dataset id column",
        )
    if len(probs) == 0 or not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise DataError(
            f"weights must be finite, >= 0 and not all 0, got {probs.tolist()}",
            path="weights",
            fix="give every dataset a non-negative weight, at least one positive",
        )
    if ids.min() < 0 or ids.max() >= len(probs):
        raise DataError(
            f"dataset ids span {int(ids.min())}…{int(ids.max())} but {len(probs)} weights given",
            path="weights",
            fix="give one weight per dataset id",
        )
    # the process share and chunking come from the trainer, not from a user's config
    if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"rank {rank} / world_size {world_size} is not a valid process share")
    if samples_per_epoch is not None and samples_per_epoch < 1:
        raise ValueError(f"samples_per_epoch must be >= 1 or None, got {samples_per_epoch}")
    if worker_chunk < 1:
        raise ValueError(f"worker_chunk must be >= 1, got {worker_chunk}")
