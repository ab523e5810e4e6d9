"""The pretraining data stream: shard slices drawn by dataset weight, batched for augmentation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from braindino.data.crop_sizes import CropSizeMixture
from braindino.data.multicrop import MultiCropAugmentation, stack_slice_samples
from braindino.data.sampler import WeightedSliceSampler
from braindino.data.shards import SliceShardReader
from braindino.engine.signals import ignore_stop_signals
from braindino.errors import ConfigError


class ShardSliceDataset(Dataset):
    """Map-style view of a shard folder: index → ``(stored slice, scale, offset)``.

    ``scale``/``offset`` turn the stored uint8 (or float16: 1 and 0) into robust z-scores; the
    augmentation applies them after cropping, so workers only copy bytes.
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
    """An endless loader of ``(slices [B, S, S], scale [B], offset [B])`` batches for this rank.

    Rank ``r`` gets the ``r``-th slice of each global batch (``rank_chunk = batch_size``) and
    workers take whole batches in turn (``worker_chunk = batch_size``), so the rank sees its
    share of the global stream in order; ``sampler_state`` continues a saved stream exactly.
    Workers ignore SIGTERM/SIGINT/SIGUSR1 (sent to the whole process group by launchers, SLURM
    and ``timeout``): the main process checkpoints and stops them (start them inside
    ``braindino.engine.signals.signals_blocked`` to leave no window before that).
    """
    sampler = WeightedSliceSampler(
        reader.dataset_ids,
        weights,
        seed=seed,
        rank=rank,
        world_size=world_size,
        worker_chunk=batch_size,
        rank_chunk=batch_size,
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
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
    )
    return loader, sampler


def crop_size_mixture(cfg: DictConfig) -> CropSizeMixture:
    """The run's augmentations by step: the ``augment`` sizes, or a ``highres.crop_sizes``
    mixture drawn per step from (``run.seed``, step); Gram crops when the Gram weight is on."""
    return CropSizeMixture(
        cfg.augment,
        cfg.highres.crop_sizes,
        seed=int(cfg.run.seed),
        gram_ratio=int(cfg.gram.resolution_ratio),
        gram=float(cfg.schedule.gram_weight) > 0,
    )


def augment_groups(
    augment: MultiCropAugmentation,
    images: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    seeds: Sequence[int],
) -> dict[str, torch.Tensor]:
    """Augment a batch as ``len(seeds)`` equal groups of consecutive slices, group ``k`` drawn
    from a generator seeded by ``seeds[k]``, joined into one batch in the augmentation's layout.

    The crops and masks of a slice then depend only on its group's seed, not on which process
    holds the group or how many groups a process holds (each group is one vectorised call, so the
    masked-crop count per group follows DINOv2's per-batch rule).
    """
    b, count = images.shape[0], len(seeds)
    if count < 1 or b % count:
        raise ConfigError(
            f"a batch of {b} slices does not split into {count} equal augmentation groups",
            path="data.augment_group",
            fix="use a group size that divides data.batch_size_per_device",
        )
    g = b // count
    parts = [
        augment(
            images[k * g : (k + 1) * g],
            scale[k * g : (k + 1) * g],
            offset[k * g : (k + 1) * g],
            generator=torch.Generator().manual_seed(int(seed)),
        )
        for k, seed in enumerate(seeds)
    ]
    if count == 1:
        return parts[0]

    def join(key: str) -> torch.Tensor:  # crop-major rows: crop c of slice i is row c*B + i
        chunks = [p[key] for p in parts]
        crops = chunks[0].shape[0] // g
        stacked = [c.reshape(crops, g, *c.shape[1:]) for c in chunks]
        return torch.cat(stacked, 1).reshape(crops * b, *chunks[0].shape[1:])

    keys = ["global_crops", "local_crops", "masks", "mask_counts"]
    keys += ["gram_crops"] if "gram_crops" in parts[0] else []
    out = {key: join(key) for key in keys}
    masks = out["masks"]
    out["mask_indices"] = masks.flatten().nonzero().squeeze(1)
    weights = 1.0 / out["mask_counts"].clamp(min=1).float()
    out["mask_weights"] = weights[out["mask_indices"] // masks.shape[1]]
    return out


def log_crop_images(log: Any, batch: dict, step: int) -> None:
    """TensorBoard images of a batch's first 8 global and local crops and their iBOT masks."""
    glob = batch["global_crops"][:8]
    log.images("crops/global", glob, step)
    log.images("crops/local", batch["local_crops"][:8], step)
    masks = batch["masks"][:8].float()
    side = math.isqrt(masks.shape[1])
    grid = masks.view(-1, 1, side, side)
    up = torch.nn.functional.interpolate(grid, size=glob.shape[-2:], mode="nearest")
    log.images("crops/masks", up, step)
