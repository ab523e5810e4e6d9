"""``bench/gpu_check.sh`` is run rarely (only when a GPU machine is lent), so the suite runs it on
the CPU with a micro model: a broken argument or a renamed field would otherwise surface only
when the GPU time is already spent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_and_prints_the_figures_it_promises():
    env = dict(
        os.environ,
        PY=sys.executable,
        DEVICE="cpu",
        ARCH="vit_micro_patch16_dinov3",
        BATCH="2",
        PROTOTYPES="512",
        RUNS="1",
        WARMUP="0",
        PEAK="1",
        COMPILE="0",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "eager run failed" not in done.stdout, done.stderr[-2000:]
    assert "compiled run skipped (COMPILE=0)" in done.stdout
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    figures = lines[0]
    assert figures["device"] == "cpu" and figures["bf16"] is True and figures["batch"] == 2
    assert figures["prototypes"] == 512 and figures["arch"] == "vit_micro_patch16_dinov3"
    for key in ("floor_s", "step_s", "floor_wanted_s", "step_tflop"):
        assert figures[key] > 0, key
    # MFU is the counted step FLOPs over the step time over the given peak (1 TFLOP/s here)
    expected_mfu = figures["step_tflop"] / figures["step_s"]
    assert abs(figures["mfu"] - expected_mfu) <= 0.01 + 0.01 * expected_mfu
    assert figures["ratio"] > 0 and figures["ratio_to_floor_wanted"] > 0


def test_pretrain_bench_times_a_high_resolution_mixture_entry():
    """``--crops G,L,GRAM`` (a ``highres.crop_sizes`` entry) sets the crop sides it reports."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "pretrain_bench.py"),
            "--arch=vit_micro_patch16_dinov3",
            "--batch=1",
            "--runs=1",
            "--warmup=0",
            "--prototypes=256",
            "--crops=64,32,128",
            "--gram-ratio=2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["crops"] == [64, 32, 128]
    assert figures["step_gram_2x_s"] > 0 and figures["step_gram_1x_s"] > 0
