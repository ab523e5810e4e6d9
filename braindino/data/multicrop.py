"""Batched MRI multi-crop augmentation: 2 global + n local crops per slice, with iBOT masks.

Input is a batch as the slice shards store it: uint8 slices ``[B, H, W]`` plus per-slice ``scale``
and ``offset`` (``z-score = u8 * scale + offset``); float16/float32 slices are taken as they are,
each min-max rescaled to play the role of ``u8 / 255``. Everything runs on the input's device with
per-sample random parameters and no per-sample Python loop:

* Geometry: random resized crop (torchvision's box sampling: area fraction in ``scale``,
  log-uniform aspect in ``aspect_ratio``, 10 tries then a centre crop), horizontal flip and an
  optional small rotation, all as per-crop affine maps resolved by one sampling grid (the values
  of ``F.affine_grid``, built by broadcasting: 10x faster on the CPU) and one bilinear
  ``F.grid_sample`` call per crop size. Outside the slice reads as u8 0 (background). No
  antialiasing: fine while the slice side is near the global crop size. On the CPU the batch
  goes through in chunks of ``cpu_chunk_slices`` slices (one call per size and chunk) so every
  pass stays in cache; on a GPU the whole batch is one pass.
* Intensity (instead of colour jitter), on ``v = u8 / 255`` in this order: smooth multiplicative
  bias field (``exp`` of a random low-order polynomial), gamma on the crop's min-max rescaled
  intensity, contrast/brightness around the crop mean, Gaussian blur (separable, per-crop
  sigma), additive Gaussian noise. Each has a probability per crop type
  ``[first global, second global, local]`` (DINOv2's asymmetric split). Output is ``v * 255 *
  scale + offset``, i.e. z-scores again.

Crop order, in ``global_crops`` ``[2B, 1, G, G]`` and ``local_crops`` ``[nB, 1, L, L]``: grouped by
crop index — row ``c * B + b`` is crop ``c`` of slice ``b`` (all slices' crop 0, then crop 1, ...).
``masks`` ``[2B, (G/p)^2]`` follows the ``global_crops`` rows. Same seed -> same output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from braindino.config import check_keys, load_config
from braindino.data.crop_geometry import crop_thetas, resized_crops, sample_crop_boxes
from braindino.data.intensity_augment import INTENSITY_ORDER, IntensityAugmentation, min_and_span
from braindino.data.masking import BlockMaskGenerator, ibot_masks
from braindino.errors import BrainDinoError, ConfigError, DataError

GLOBAL1, GLOBAL2, LOCAL = 0, 1, 2  # crop types, the index into each ``probability`` list


# ----------------------------------------------------------------------------- config
def augment_config(
    cfg: Mapping[str, Any] | DictConfig | None = None, where: str = "augment"
) -> DictConfig:
    """Defaults of ``configs/pretrain/augment.yaml`` with ``cfg`` merged on top (strict keys)."""
    base = load_config("pretrain/augment")
    if cfg is None:
        return base
    extra = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    check_keys(base, extra, where)
    return OmegaConf.merge(base, extra)  # type: ignore[return-value]


def _range(
    cfg: DictConfig, key: str, lo: float, hi: float, positive: bool = False
) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in cfg[key])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"'{key}' must be a pair [min, max]", path="augment", fix="e.g. [0.32, 1.0]"
        ) from exc
    if not (lo <= a <= b <= hi) or (positive and a <= 0):
        raise ConfigError(
            f"'{key}' = [{a}, {b}] is not a valid range within [{lo}, {hi}]",
            path="augment",
            fix="give min <= max inside that interval",
        )
    return a, b


def _validate(cfg: DictConfig) -> list[tuple[float, float]]:
    """Check the merged section; return its global and local crop scales and aspect range."""
    ranges = []
    for group in ("global_crops", "local_crops"):
        ranges.append(_range(cfg[group], "scale", 0.0, 1.0, positive=True))
        if int(cfg[group]["size"]) < 1:
            raise ConfigError(f"{group}.size must be >= 1", path="augment", fix="e.g. 224 / 96")
    ranges.append(_range(cfg, "aspect_ratio", 0.0, math.inf, positive=True))
    if int(cfg.global_crops.size) % int(cfg.masking.patch_size):
        raise ConfigError(
            f"global_crops.size {cfg.global_crops.size} is not a multiple of "
            f"masking.patch_size {cfg.masking.patch_size}",
            path="augment",
            fix="make the global crop size a multiple of the patch size",
        )
    for name in INTENSITY_ORDER:
        probs = list(cfg.intensity[name].probability)
        if len(probs) != 3 or not all(0.0 <= float(p) <= 1.0 for p in probs):
            raise ConfigError(
                f"intensity.{name}.probability must be 3 values in [0, 1]",
                path="augment",
                fix="[first global, second global, local]",
            )
    _range(cfg.intensity.gamma, "range", 0.0, math.inf, positive=True)
    _range(cfg.intensity.blur, "sigma", 0.0, math.inf, positive=True)
    _range(cfg.intensity.noise, "std", 0.0, math.inf)
    return ranges


def _gram_side(gram_size: int | None, gram_ratio: int, global_size: int, patch: int) -> int | None:
    """The side of the Gram teacher's crops: ``gram_size``, else ``gram_ratio`` x the global
    size when the ratio is > 1, else None (no ``gram_crops``)."""
    if gram_size is None:
        return global_size * gram_ratio if gram_ratio > 1 else None
    if isinstance(gram_size, bool) or int(gram_size) < patch or int(gram_size) % patch:
        raise ConfigError(
            f"Gram crop size {gram_size!r} is not a positive multiple of the patch size {patch}",
            path="highres.crop_sizes",
            fix=f"give gram sizes that are multiples of {patch} (e.g. 1.5 x the global size)",
        )
    return int(gram_size)


# ----------------------------------------------------------------------------- module
def _check_batch(
    images: Any, scale: Any, offset: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ok_dtype = isinstance(images, torch.Tensor) and (
        images.dtype == torch.uint8 or images.dtype.is_floating_point
    )
    if not ok_dtype or images.dim() != 3:
        shape = tuple(getattr(images, "shape", ()))
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {shape}"
        raise DataError(
            f"images must be a uint8 (or float) tensor [B, H, W], got {got}",
            path="images",
            fix="pass slices as the shards store them (uint8) with per-slice scale/offset",
        )
    b = images.shape[0]
    out = []
    for name, value in (("scale", scale), ("offset", offset)):
        t = torch.as_tensor(value, dtype=torch.float32, device=images.device).reshape(-1)
        if t.numel() != b or not bool(torch.isfinite(t).all()):
            raise DataError(
                f"{name} must hold {b} finite values (one per slice), got {t.numel()}",
                path=name,
                fix="give the slice's z = u8 * scale + offset parameters",
            )
        out.append(t)
    return images, out[0], out[1]


class MultiCropAugmentation:
    """Batch of stored slices -> global/local z-score crops + iBOT masks (see the module doc).

    Build it from the ``augment`` section (defaults: ``configs/pretrain/augment.yaml``). Calls
    are deterministic given the ``generator`` argument; without one a private generator seeded
    by ``seed`` is used (seeded from torch's global RNG when ``seed`` is None, and offset per
    DataLoader worker).

    With ``gram_ratio`` r > 1 the batch also holds ``gram_crops`` ``[2B, 1, rG, rG]``: the global
    crops' very boxes, flips and rotations at r times their size and without intensity
    augmentation (what DINOv3's Gram teacher sees); they draw nothing from the generator, so the
    other outputs are the same whatever r is. ``gram_size`` S sets their side directly
    (``[2B, 1, S, S]``, e.g. 1.5 G in the high-resolution stage) and takes precedence over r.
    """

    def __init__(
        self,
        cfg: Mapping[str, Any] | DictConfig | None = None,
        seed: int | None = None,
        gram_ratio: int = 1,
        gram_size: int | None = None,
    ):
        if isinstance(gram_ratio, bool) or not isinstance(gram_ratio, int) or gram_ratio < 1:
            raise ConfigError(
                f"must be a whole number >= 1, got {gram_ratio!r}",
                path="gram.resolution_ratio",
                fix="use 1 (the student's crops) or 2 (DINOv3)",
            )
        self.gram_ratio = gram_ratio
        self.cfg = c = augment_config(cfg)
        self.global_scale, self.local_scale, self.aspect_ratio = _validate(c)
        self.global_size, self.local_size = int(c.global_crops.size), int(c.local_crops.size)
        self.n_local = int(c.local_crops.number)
        self.flip_probability = float(c.flip_probability)
        self.rotation_degrees = float(c.rotation_degrees)
        self.cpu_chunk_slices = int(c.cpu_chunk_slices)
        self.intensity = IntensityAugmentation(c.intensity)
        m = c.masking
        self.gram_side = _gram_side(gram_size, gram_ratio, self.global_size, int(m.patch_size))
        grid = self.global_size // int(m.patch_size)
        self.mask_generator = BlockMaskGenerator(
            (grid, grid),
            int(m.min_patches_per_block),
            None if m.max_patches_per_block is None else int(m.max_patches_per_block),
            float(m.block_aspect[0]),
            float(m.block_aspect[1]),
            int(m.tries_per_block),
        )
        self.mask_probability = float(m.mask_probability)
        self.mask_ratio = _range(m, "ratio", 0.0, 1.0)
        self.seed = seed
        self._gen: torch.Generator | None = None
        self._gen_key: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_gen"], state["_gen_key"] = None, None  # re-seeded in each worker
        return state

    def _default_generator(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        key = None if info is None else (info.id, info.seed)
        if self._gen is None or key != self._gen_key:
            base = self.seed if self.seed is not None else int(torch.randint(2**62, (1,)))
            seed = base if info is None else (base * 1_000_003 + info.seed) % 2**63
            self._gen, self._gen_key = torch.Generator().manual_seed(seed), key
        return self._gen

    def __call__(
        self,
        images: torch.Tensor,
        scale: Any,
        offset: Any,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Augment a batch; returns ``global_crops``, ``local_crops``, ``masks``, ``mask_counts``,
        ``mask_indices``, ``mask_weights`` (the latter three as in ``masking.ibot_masks``)."""
        images, scale, offset = _check_batch(images, scale, offset)
        gen = generator if generator is not None else self._default_generator()
        if gen.device.type != "cpu":
            raise BrainDinoError(
                "the generator must be a CPU torch.Generator",
                path="generator",
                fix="pass torch.Generator() (noise on the GPU is seeded from it)",
            )
        device, (b, hgt, wid) = images.device, images.shape
        noise_gen = gen
        if device.type != "cpu":
            seed = int(torch.randint(2**62, (1,), generator=gen))
            noise_gen = torch.Generator(device).manual_seed(seed)
        groups = []  # (crops per slice, size, thetas, crop types or None: no intensity, output)
        if images.dtype == torch.uint8:  # v = (stored - lo) / span lies in [0, 1]
            lo, span = torch.zeros_like(scale), torch.full_like(scale, 255.0)
        else:
            lo, span = min_and_span(images.to(torch.float32))
        z_scale, z_offset = span * scale, lo * scale + offset  # z = v * z_scale + z_offset
        for n, size, crop_scale, types in (
            (2, self.global_size, self.global_scale, [GLOBAL1, GLOBAL2]),
            (self.n_local, self.local_size, self.local_scale, [LOCAL] * self.n_local),
        ):  # random box + flip + rotation of n * b crops (crop-major)
            boxes = sample_crop_boxes(n * b, hgt, wid, crop_scale, self.aspect_ratio, gen)
            flips = torch.rand(n * b, generator=gen) < self.flip_probability
            u = torch.rand(n * b, generator=gen, dtype=torch.float64)
            thetas = crop_thetas(boxes, flips, (2 * u - 1) * self.rotation_degrees, hgt, wid)
            type_rows = torch.tensor(types, dtype=torch.long).repeat_interleave(b)
            out = torch.empty(n * b, 1, size, size, device=device)
            groups.append((n, size, thetas, type_rows, out))
        if self.gram_side is not None:  # the global boxes at the Gram side, no intensity augment
            gram = torch.empty(2 * b, 1, self.gram_side, self.gram_side, device=device)
            groups.append((2, self.gram_side, groups[0][2], None, gram))
        chunk = b if device.type != "cpu" or self.cpu_chunk_slices <= 0 else self.cpu_chunk_slices
        for s0 in range(0, b, chunk):
            s1 = min(b, s0 + chunk)
            v = images[s0:s1].unsqueeze(1).to(torch.float32)
            v = v.sub_(lo[s0:s1].view(-1, 1, 1, 1)).div_(span[s0:s1].view(-1, 1, 1, 1))
            chunk_scale = z_scale[s0:s1].view(1, -1, 1, 1, 1)
            chunk_offset = z_offset[s0:s1].view(1, -1, 1, 1, 1)
            for n, size, thetas, type_rows, out in groups:
                if n == 0:
                    continue
                rows = (torch.arange(n)[:, None] * b + torch.arange(s0, s1)).flatten()
                crops = resized_crops(v, thetas[rows], size, n)
                if type_rows is not None:
                    crops = self.intensity(crops, type_rows[rows], gen, noise_gen)
                crops = crops.view(n, s1 - s0, 1, size, size).mul_(chunk_scale).add_(chunk_offset)
                out.view(n, b, 1, size, size)[:, s0:s1] = crops
        masks = ibot_masks(2 * b, self.mask_generator, self.mask_probability, self.mask_ratio, gen)
        result = {"global_crops": groups[0][4], "local_crops": groups[1][4]}
        if self.gram_side is not None:
            result["gram_crops"] = groups[2][4]
        result.update({k: t.to(device) for k, t in masks.items()})
        return result


# ----------------------------------------------------------------------------- collate
def stack_slice_samples(samples: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[(slice [H, W], scale, offset), ...]`` -> ``(slices [B, H, W], scale [B], offset [B])``.

    Slices are uint8 (the default storage) or float16 (``preprocess.storage.dtype: float16``,
    z-scores with scale 1 and offset 0), one dtype and size per batch."""
    if len(samples) == 0:
        raise DataError(
            "empty batch", path="samples", fix="give at least one (slice, scale, offset)"
        )
    slices, scales, offsets = [], [], []
    for i, sample in enumerate(samples):
        if not isinstance(sample, Sequence) or len(sample) != 3:
            raise DataError(
                f"sample {i} is not a (slice, scale, offset) triple",
                path="samples",
                fix="return (slice, scale, offset) from the dataset",
            )
        img = torch.as_tensor(
            np.asarray(sample[0]) if not isinstance(sample[0], torch.Tensor) else sample[0]
        )
        first = slices[0] if slices else img
        if (
            img.dtype not in (torch.uint8, torch.float16)
            or img.dim() != 2
            or (img.shape, img.dtype) != (first.shape, first.dtype)
        ):
            raise DataError(
                f"sample {i} slice is {img.dtype} {tuple(img.shape)}; need uint8 or float16 "
                "[H, W] of one size and dtype per batch",
                path="samples",
                fix="read slices from one shard set (same size and storage dtype)",
            )
        slices.append(img)
        scales.append(float(sample[1]))
        offsets.append(float(sample[2]))
    return torch.stack(slices), torch.tensor(scales), torch.tensor(offsets)


class MultiCropCollate:
    """``collate_fn`` for a DataLoader over (uint8 or float16 slice, scale, offset) samples."""

    def __init__(self, augmentation: MultiCropAugmentation):
        self.augmentation = augmentation

    def __call__(self, samples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Stack the samples and return the augmentation's batch dict."""
        return self.augmentation(*stack_slice_samples(samples))
