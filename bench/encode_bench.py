"""Feature-cache encoding speed: volumes/s of ``encode_volume`` (read NIfTI, preprocess, resample to
128 slices, encode) with a ViT, in fp32 and with bf16 weights, on the CPU or a GPU.

The volumes are written first: brain-like ellipsoids with texture, 1 mm, the size of a T1 as
downloaded (default 176 x 256 x 256), gzipped NIfTI — no data set needed. The time of one volume
is split into the CPU part (``encoder_slices``: read + preprocess + resample) and the encoder part
(``encode_slices``), so a slow figure says which side to speed up.

    python bench/encode_bench.py --device cuda --arch vit_base_patch16_dinov3 --volumes 8

Prints one JSON line per precision: medians over the volumes after one warm-up volume.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from braindino.features.encode import encode_slices, encoder_slices
from braindino.models import load_encoder


def write_volumes(folder: Path, count: int, shape: tuple[int, int, int]) -> list[Path]:
    """``count`` textured ellipsoid heads of ``shape`` voxels at 1 mm, as ``.nii.gz``."""
    rng = np.random.default_rng(0)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    inside = (x / 0.7) ** 2 + (y / 0.85) ** 2 + (z / 0.75) ** 2 < 1
    paths = []
    for i in range(count):
        data = inside * (300 + 100 * rng.random(shape, dtype=np.float32))
        path = folder / f"head_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), path)
        paths.append(path)
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    """Write the volumes, then time both precisions and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="vit_small_patch16_dinov3")
    parser.add_argument("--volumes", type=int, default=4, help="timed volumes (+1 warm-up)")
    parser.add_argument("--slices", type=int, default=128, help="slices per volume (BrainDINO)")
    parser.add_argument("--batch", type=int, default=128, help="slices per forward pass")
    parser.add_argument("--shape", default="176,256,256", help="voxels per volume, x,y,z")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = tuple(int(v) for v in args.shape.split(","))
    encoder = load_encoder(f"random:{args.arch}", map_location=device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_volumes(Path(tmp), args.volumes + 1, shape)
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            encoder.to(dtype)
            cpu_s, enc_s = [], []
            for i, path in enumerate(paths):
                start = time.perf_counter()
                images, _, _ = encoder_slices(encoder, path, slices=args.slices)
                mid = time.perf_counter()
                out = encode_slices(encoder, images, batch_size=args.batch)
                _sync(device)
                end = time.perf_counter()
                if i:  # the first volume warms up kernels and caches
                    cpu_s.append(mid - start)
                    enc_s.append(end - mid)
            cpu, enc = statistics.median(cpu_s), statistics.median(enc_s)
            figures = {
                "figure": "encode_volume",
                "device": str(device),
                "arch": args.arch,
                "precision": precision,
                "shape": list(shape),
                "slices": int(out["cls"].shape[0]),
                "volumes": args.volumes,
                "read_preprocess_s": round(cpu, 4),
                "encode_s": round(enc, 4),
                "volumes_per_s": round(1 / (cpu + enc), 2),
                "encoder_slices_per_s": round(args.slices / enc, 1),
            }
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
