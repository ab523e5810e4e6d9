#!/usr/bin/env bash
# One prepared GPU check (under 8 minutes on an H200): bf16 ViT-B/16 pretraining steps at batch 64
# with 2x224 + 8x96 crops — images/s, peak memory, MFU against the H200's dense bf16 peak (989
# TFLOP/s), and the step/floor ratio. Run from the repository root on a GPU machine:
#     bash bench/gpu_check.sh            (prints JSON lines; copy them into bench/RESULTS.md)
# Environment overrides (defaults in brackets): PY [python3], DEVICE [cuda], ARCH
# [vit_base_patch16_dinov3], BATCH [64], PROTOTYPES [65536], RUNS [10], WARMUP [3], PEAK [989],
# COMPILE [1]; the test suite runs it on the CPU with a micro model to keep it working.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
ARCH=${ARCH:-vit_base_patch16_dinov3}
BATCH=${BATCH:-64}
PROTOTYPES=${PROTOTYPES:-65536}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-3}
PEAK=${PEAK:-989}
COMPILE=${COMPILE:-1}
if ! $PY -c "import braindino" 2>/dev/null; then
  $PY -m pip install -q -e . 2>&1 | tail -2
fi
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
export PYTHONUNBUFFERED=1
args=(bench/pretrain_bench.py --device "$DEVICE" --arch "$ARCH" --batch "$BATCH" --bf16
  --prototypes "$PROTOTYPES" --runs "$RUNS" --warmup "$WARMUP" --peak-tflops "$PEAK")
# eager, then compiled; 65,536 prototypes as in the recipe
timeout 200 $PY "${args[@]}" || echo "eager run failed"
if [ "$COMPILE" = 1 ]; then
  timeout 260 $PY "${args[@]}" --compile || echo "compiled run failed"
else
  echo "compiled run skipped (COMPILE=$COMPILE)"
fi
