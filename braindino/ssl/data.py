"""The pretraining data stream: shard slices drawn by dataset weight, batched for augmentation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from braindino.data.multicrop import stack_slice_samples
from braindino.data.sampler import WeightedSliceSampler
from braindino.data.shards import SliceShardReader
from braindino.errors import ConfigError


class ShardSliceDataset(Dataset):
    """Map-style view of a shard folder: index → ``(uint8 slice, scale, offset)``.

    ``scale``/``offset`` turn the stored uint8 into robust z-scores; the augmentation applies them
    after cropping, so workers only copy bytes.
    """

    def __init__(self, reader: SliceShardReader):
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[np.ndarray, float, float]:
        return self.reader.sample(index)


def sampling_weights(reader: SliceShardReader, by_name: Mapping[str, float] | None) -> np.ndarray:
    """Per-dataset weights: those stored by prepare (0 for datasets left without slices), or
    ``by_name`` overrides (names checked)."""
    weights = np.asarray(reader.sampling_weights, dtype=np.float64).copy()
    for name, value in (by_name or {}).items():
        if name not in reader.dataset_names:
            raise ConfigError(
                f"data.weights names unknown dataset '{name}'",
                path="data.weights",
                fix=f"use one of {list(reader.dataset_names)}",
            )
        weights[reader.dataset_names.index(name)] = float(value)
    return weights


def build_loader(
    reader: SliceShardReader,
    batch_size: int,
    num_workers: int,
    seed: int,
    rank: int,
    world_size: int,
    weights: np.ndarray,
    sampler_state: dict | None = None,
    pin_memory: bool = False,
) -> tuple[DataLoader, WeightedSliceSampler]:
    """An endless loader of ``(uint8 [B, S, S], scale [B], offset [B])`` batches for this rank.

    Workers take whole batches in turn (``worker_chunk = batch_size``), so the rank sees its
    share of the global stream in order; ``sampler_state`` continues a saved stream exactly.
    """
    sampler = WeightedSliceSampler(
        reader.dataset_ids,
        weights,
        seed=seed,
        rank=rank,
        world_size=world_size,
        worker_chunk=batch_size,
    )
    if sampler_state is not None:
        sampler.load_state_dict(sampler_state)
    loader = DataLoader(
        ShardSliceDataset(reader),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=stack_slice_samples,
        drop_last=True,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    return loader, sampler


def to_device(batch: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Move a loader batch to the device (non-blocking from pinned memory)."""
    return tuple(t.to(device, non_blocking=True) for t in batch)
