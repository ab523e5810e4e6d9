"""Benchmark the prepare path and the shard reader (not a test; see bench/RESULTS.md).

    .venv/bin/python bench/prepare_bench.py [--volumes 8] [--repeats 3] [--workers 1 2]

1. Builds a T1-sized volume (1 mm, 256 x 256 x 180, int16) from the MNI152 1 mm template and
   writes it as .nii.gz and .nii; copies it ``--volumes`` times (distinct files).
2. Prepare: ``prepare_shards`` over the copies (read -> preprocess -> work file -> shard ->
   index) with each ``--workers`` count, ``--repeats`` runs into fresh folders after one warm-up
   (which starts the pool's fork server: a one-off cost per prepare run, not per volume);
   reports volumes/s and volumes/s per worker (median run; worker start-up included) and the
   main process's CPU seconds per volume (with 1 worker: all the work, a load-independent
   per-core figure; with more: the coordinator's share, which bounds how far workers scale).
3. Stages: median seconds of read_volume and preprocess_volume on one volume, to show where the
   time goes.
4. Reads: random ``reader[i]`` and ``reader.zscore(i)`` calls per second in one process on the
   prepared shards (page cache warm), median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from braindino.data.inputs import VolumeInput
from braindino.data.prepare import load_prepare_config, prepare_shards
from braindino.data.shards import SliceShardReader

SHAPE = (256, 256, 180)


def make_t1(folder: Path) -> dict[str, Path]:
    """A 1 mm 256x256x180 int16 T1-like volume (MNI152 1 mm anatomy), as .nii.gz and .nii."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=1)
    anatomy = np.asarray(template.get_fdata(), np.float32)
    data = np.zeros(SHAPE, np.float32)
    x0, y0 = (SHAPE[0] - anatomy.shape[0]) // 2, (SHAPE[1] - anatomy.shape[1]) // 2
    z0 = (anatomy.shape[2] - SHAPE[2]) // 2
    data[x0 : x0 + anatomy.shape[0], y0 : y0 + anatomy.shape[1]] = anatomy[:, :, z0 : z0 + SHAPE[2]]
    rng = np.random.default_rng(0)
    data = data * 1000 + rng.normal(0, 5, SHAPE)  # a little scanner-like background noise
    affine = template.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array([x0, y0, -z0])
    image = nib.Nifti1Image(np.clip(data, 0, None).astype(np.int16), affine)
    image.set_data_dtype(np.int16)
    paths = {"nii.gz": folder / "t1.nii.gz", "nii": folder / "t1.nii"}
    for path in paths.values():
        nib.save(image, path)
    return paths


def copies(source: Path, folder: Path, n: int) -> list[VolumeInput]:
    """``n`` distinct files with the same content (each is a separate input)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "".join(source.suffixes)
    inputs = []
    for k in range(n):
        path = folder / f"sub{k:03d}_T1{suffix}"
        shutil.copyfile(source, path)
        inputs.append(VolumeInput(str(path), f"sub{k:03d}", "bench", "T1"))
    return inputs


def bench_prepare(inputs: list[VolumeInput], workers: int, repeats: int, tmp: Path) -> dict:
    """Median wall time of a full prepare over ``inputs`` (fresh output folder each run)."""
    cfg = load_prepare_config()
    # warm-up: imports in this process and (workers > 1) the pool's fork server, started once
    prepare_shards(inputs[:2], tmp / f"warmup-{workers}", cfg, workers=workers, progress_bar=False)
    times, cpu = [], []
    for r in range(repeats):
        out = tmp / f"out-w{workers}-{r}"
        start, start_cpu = time.perf_counter(), time.process_time()
        report = prepare_shards(inputs, out, cfg, workers=workers, progress_bar=False)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert report["volumes_ok"] == len(inputs), report["volumes_skipped"]
        if r < repeats - 1:
            shutil.rmtree(out)
    median = statistics.median(times)
    return {
        "workers": workers,
        "seconds": [round(t, 2) for t in times],
        "volumes_per_s": len(inputs) / median,
        "volumes_per_s_per_worker": len(inputs) / median / workers,
        "main_cpu_s_per_volume": statistics.median(cpu) / len(inputs),
        "out": tmp / f"out-w{workers}-{repeats - 1}",
    }


def bench_stages(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of read_volume and preprocess_volume on one volume (after a warm-up)."""
    from braindino.io import read_volume
    from braindino.preprocess import preprocess_config, preprocess_volume

    settings = preprocess_config({})
    preprocess_volume(read_volume(path), settings)
    reads, preps = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        volume = read_volume(path)
        middle = time.perf_counter()
        preprocess_volume(volume, settings)
        reads.append(middle - start)
        preps.append(time.perf_counter() - middle)
    return {"read": statistics.median(reads), "preprocess": statistics.median(preps)}


def bench_reads(root: Path, n_reads: int, repeats: int) -> dict[str, float]:
    """Random reader[i] / reader.zscore(i) calls per second in one process (median run)."""
    reader = SliceShardReader(root)
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(reader), 2000):  # touch the pages once
        reader[i]
    result = {"slices": len(reader)}
    for name, call in (("getitem", reader.__getitem__), ("zscore", reader.zscore)):
        rates = []
        for _ in range(repeats):
            order = rng.integers(0, len(reader), n_reads)
            start = time.perf_counter()
            for i in order:
                call(i)
            rates.append(n_reads / (time.perf_counter() - start))
        result[name] = statistics.median(rates)
    return result


def machine() -> str:
    """A one-line description of this machine."""
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, load average {load[0]:.1f} at start"
    )


def main() -> None:
    """Run the benchmark and print a Markdown section for bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=8, help="volumes per prepare run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reads", type=int, default=20000, help="random reads per run")
    parser.add_argument("--tmp", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        tmp = Path(scratch)
        sources = make_t1(tmp)
        lines = []
        last_out = None
        for kind, source in sources.items():
            stages = bench_stages(source, args.repeats)
            print(f"{kind}: read {stages['read']:.3f} s, preprocess {stages['preprocess']:.3f} s")
            inputs = copies(source, tmp / f"in-{kind.replace('.', '')}", args.volumes)
            for workers in args.workers:
                res = bench_prepare(inputs, workers, args.repeats, tmp / kind.replace(".", ""))
                last_out = res["out"]
                print(f"{kind} workers={workers}: {res['seconds']} s")
                lines.append(
                    f"| .{kind} | {workers} | {res['volumes_per_s']:.2f} | "
                    f"{res['volumes_per_s_per_worker']:.2f} | "
                    f"{res['main_cpu_s_per_volume']:.3f} | {stages['read']:.2f} | "
                    f"{stages['preprocess']:.2f} |"
                )
        reads = bench_reads(last_out, args.reads, args.repeats)
    print(
        "\n| input | workers | volumes/s | volumes/s per worker | main-process CPU s/volume "
        "| read s | preprocess s |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(
        f"\nrandom reads ({reads['slices']} slices of 224², one process): "
        f"reader[i] {reads['getitem']:,.0f}/s, reader.zscore(i) {reads['zscore']:,.0f}/s"
    )


if __name__ == "__main__":
    main()
