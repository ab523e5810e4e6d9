"""``bench/gpu_check.sh`` is run rarely (only when a GPU machine is lent), so the suite runs it on
the CPU with a micro model: a broken argument or a renamed field would otherwise surface only
when the GPU time is already spent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_every_section_and_prints_the_figures_it_promises():
    env = dict(
        os.environ,
        PY=sys.executable,
        DEVICE="cpu",
        ARCH="vit_micro_patch16_dinov3",
        LARGE_ARCH="vit_micro_patch16_dinov3",
        PEER_ARCH="vit_tiny_patch16_224",
        BATCH="2",
        PROTOTYPES="512",
        RUNS="1",
        WARMUP="0",
        PEAK="1",
        COMPILE="0",
        CHECK_BATCH="4",
        CHECK_SIZE="64",
        AUG_BATCH="2",
        ENCODE_VOLUMES="1",
        ENCODE_SHAPE="48,56,40",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed" not in done.stdout and "skipped: the time budget" not in done.stdout, (
        done.stdout[-3000:] + done.stderr[-2000:]
    )
    assert "compiled run skipped (COMPILE=0)" in done.stdout
    assert "batched BrainDINO" in done.stdout  # the augmentation section
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    checks = [line for line in lines if "ok" in line]
    assert {(c["check"], c["precision"]) for c in checks} == {
        ("partial_block", "fp32"),
        ("partial_block", "bf16"),
        ("fused_vs_plain", "fp32"),
        ("fused_vs_plain", "bf16"),
        ("bf16_vs_fp32", "3 steps"),
    }
    assert all(c["ok"] for c in checks)
    steps = {(s["arch"], s["fsdp"]): s for s in lines if "step_s" in s}
    stage1 = steps[("vit_micro_patch16_dinov3", False)]
    assert stage1["device"] == "cpu" and stage1["bf16"] is True and stage1["batch"] == 2
    assert stage1["prototypes"] == 512
    for key in ("floor_s", "step_s", "floor_wanted_s", "step_tflop", "step_gram_2x_s"):
        assert stage1[key] > 0, key
    # MFU is the counted step FLOPs over the step time over the given peak (1 TFLOP/s here)
    expected_mfu = stage1["step_tflop"] / stage1["step_s"]
    assert abs(stage1["mfu"] - expected_mfu) <= 0.01 + 0.01 * expected_mfu
    assert stage1["ratio"] > 0 and stage1["ratio_to_floor_wanted"] > 0
    assert steps[("vit_micro_patch16_dinov3", True)]["step_s"] > 0  # FSDP2, one process
    assert steps[("vit_tiny_patch16_224", False)]["floor_s"] > 0  # learned positions, no RoPE
    encoded = {e["precision"]: e for e in lines if e.get("figure") == "encode_volume"}
    assert set(encoded) == {"fp32", "bf16"}
    assert all(e["slices"] == 128 and e["volumes_per_s"] > 0 for e in encoded.values())


def test_device_check_fails_when_the_paths_disagree(monkeypatch, capsys):
    """The correctness check can fail: a last block whose kept rows are off by 10 % noise is
    caught."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import device_check
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from braindino.models import partial_block

    real = partial_block.run_block_on_rows

    def wrong(*args, **kwargs):
        rows = real(*args, **kwargs)
        return rows + 0.1 * rows.detach().std() * torch.randn_like(rows)

    monkeypatch.setattr("braindino.models.backbone.run_block_on_rows", wrong)
    assert not device_check.check_partial_block(
        "vit_micro_patch16_dinov3", 3, 64, torch.device("cpu")
    )
    assert '"ok": false' in capsys.readouterr().out


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
