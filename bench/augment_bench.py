"""Multi-crop + iBOT masking throughput: the batched pipeline vs per-sample torchvision v2.

Both pipelines turn uint8 slices (+ scale/offset) into 2 x 224 global + 8 x 96 local z-score crops
with the same geometry (random resized crop, flip) and comparable MRI intensity augmentations, plus
iBOT block masks for the global crops. The per-sample pipeline is the usual DINOv2-style loader:
torchvision.transforms.v2 per crop, a per-image Python block-mask generator, then stacking.
Runs alternate between the two so both see the same machine load; reports the median slices/s per
core (``torch.set_num_threads(1)``) and the ratio.

    .venv/bin/python bench/augment_bench.py [--batch 32] [--runs 7] [--size 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from braindino.data.multicrop import MultiCropAugmentation


class _BiasField(torch.nn.Module):
    """Multiplicative exp(cubic polynomial) field, one crop at a time."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        hgt, wid = img.shape[-2:]
        y = torch.linspace(-1, 1, hgt)[:, None]
        x = torch.linspace(-1, 1, wid)[None, :]
        log_field = torch.zeros(hgt, wid)
        for i in range(4):
            for j in range(4 - i):
                if i + j:
                    log_field += random.uniform(-0.3, 0.3) * x**i * y**j
        return img * log_field.exp()


class _Gamma(torch.nn.Module):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        lo, hi = img.min(), img.max()
        span = (hi - lo).clamp(min=1e-6)
        gamma = math.exp(random.uniform(math.log(0.7), math.log(1.5)))
        return ((img - lo) / span).clamp(min=0) ** gamma * span + lo


class _Noise(torch.nn.Module):
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img + random.uniform(0.0, 0.05) * torch.randn_like(img)


def _intensity(p_blur: float, p_noise: float) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomApply([_BiasField()], p=0.5),
            v2.RandomApply([_Gamma()], p=0.5),
            v2.RandomApply([v2.ColorJitter(brightness=0.1, contrast=0.25)], p=0.8),
            v2.RandomApply([v2.GaussianBlur(kernel_size=13, sigma=(0.1, 2.0))], p=p_blur),
            v2.RandomApply([_Noise()], p=p_noise),
        ]
    )


def _block_mask(rows: int, cols: int, target: int, rng: random.Random) -> np.ndarray:
    """A sequential per-image BEiT block mask with exactly ``target`` patches (random top-up)."""
    mask = np.zeros((rows, cols), dtype=bool)
    count = 0
    while count < target:
        added = 0
        for _ in range(10):
            area = rng.uniform(4, min(target - count, rows * cols // 2))
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
            h, w = round(math.sqrt(area / aspect)), round(math.sqrt(area * aspect))
            if 0 < h < rows and 0 < w < cols:
                top, left = rng.randint(0, rows - h), rng.randint(0, cols - w)
                block = mask[top : top + h, left : left + w]
                new = h * w - int(block.sum())
                if 0 < new <= target - count:
                    block[...] = True
                    added = new
                    break
        if added == 0:
            free = np.flatnonzero(~mask)
            mask.flat[rng.sample(list(free), target - count)] = True
            break
        count += added
    return mask


class PerSamplePipeline:
    """DINOv2-style loader: torchvision v2 transforms per crop, per-image masks, then stack."""

    def __init__(self, grid: int = 14):
        flip = v2.RandomHorizontalFlip()
        global_rrc = v2.RandomResizedCrop(224, scale=(0.32, 1.0), antialias=True)
        local_rrc = v2.RandomResizedCrop(96, scale=(0.05, 0.32), antialias=True)
        self.global_crop = v2.Compose([global_rrc, flip])
        self.local_crop = v2.Compose([local_rrc, flip])
        self.intensity = [_intensity(1.0, 0.2), _intensity(0.1, 0.5), _intensity(0.5, 0.3)]
        self.grid = grid
        self.rng = random.Random(0)

    def __call__(self, images: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> dict:
        """Process each slice on its own, then collate like DINOv2."""
        globals_, locals_ = [[], []], [[] for _ in range(8)]
        for img, s, o in zip(images, scale, offset):
            v = img[None].float() / 255.0
            for c in range(2):
                crop = self.intensity[c](self.global_crop(v))
                globals_[c].append(crop * (255 * s) + o)
            for c in range(8):
                crop = self.intensity[2](self.local_crop(v))
                locals_[c].append(crop * (255 * s) + o)
        n_img = 2 * len(images)
        n_masked = n_img // 2
        edges = np.linspace(0.1, 0.5, n_masked + 1)
        n_patches = self.grid * self.grid
        masks = [
            _block_mask(
                self.grid,
                self.grid,
                int(n_patches * self.rng.uniform(edges[i], edges[i + 1])),
                self.rng,
            )
            for i in range(n_masked)
        ] + [np.zeros((self.grid, self.grid), bool)] * (n_img - n_masked)
        self.rng.shuffle(masks)
        return {
            "global_crops": torch.stack([x for group in globals_ for x in group]),
            "local_crops": torch.stack([x for group in locals_ for x in group]),
            "masks": torch.from_numpy(np.stack(masks).reshape(n_img, -1)),
        }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    if args[0].device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    """Measure both pipelines, alternating runs, and print a Markdown-ready summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="slices per batch")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per pipeline")
    parser.add_argument("--size", type=int, default=256, help="source slice side (pixels)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = per core)")
    parser.add_argument("--device", default="cpu", help="device for the batched pipeline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)

    # A brain-like slice: an ellipse of tissue with texture on a zero background.
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, args.size), torch.linspace(-1, 1, args.size), indexing="ij"
    )
    inside = (xx / 0.75) ** 2 + (yy / 0.9) ** 2 < 1
    images = ((120 + 60 * torch.rand(args.batch, args.size, args.size)) * inside).to(torch.uint8)
    scale = torch.full((args.batch,), 0.02)
    offset = torch.full((args.batch,), -1.0)

    batched = MultiCropAugmentation(seed=0)
    per_sample = PerSamplePipeline()
    dev_images = images.to(args.device)
    batched(dev_images, scale, offset)  # warm-up
    per_sample(images, scale, offset)
    t_batched, t_sample = [], []
    for _ in range(args.runs):
        t_batched.append(_time(batched, dev_images, scale, offset))
        t_sample.append(_time(per_sample, images, scale, offset))
    rate_b = args.batch / statistics.median(t_batched)
    rate_s = args.batch / statistics.median(t_sample)
    print(
        f"machine: {_cpu_name()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, threads {args.threads}, "
        f"device {args.device}"
    )
    print(
        f"batch {args.batch} slices of {args.size}^2 -> 2x224 + 8x96 crops + iBOT masks, "
        f"median of {args.runs} runs"
    )
    print(
        f"batched BrainDINO : {rate_b:8.1f} slices/s  (runs: "
        + ", ".join(f"{args.batch / t:.0f}" for t in t_batched)
        + ")"
    )
    print(
        f"per-sample v2     : {rate_s:8.1f} slices/s  (runs: "
        + ", ".join(f"{args.batch / t:.0f}" for t in t_sample)
        + ")"
    )
    print(f"ratio             : {rate_b / rate_s:8.2f}x")


if __name__ == "__main__":
    main()
