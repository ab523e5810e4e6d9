#!/usr/bin/env bash
# One prepared GPU check (under 8 minutes on an H200): bf16 ViT-B/16 pretraining steps at batch 64
# with 2x224 + 8x96 crops — images/s, peak memory, MFU against the H200's dense bf16 peak (989
# TFLOP/s), and the step/floor ratio. Run from the repository root on a GPU machine:
#     bash bench/gpu_check.sh            (prints JSON lines; copy them into bench/RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if ! $PY -c "import braindino" 2>/dev/null; then
  $PY -m pip install -q -e . 2>&1 | tail -2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONUNBUFFERED=1
# eager, then compiled; 65,536 prototypes as in the recipe
timeout 200 $PY bench/pretrain_bench.py --device cuda --arch vit_base_patch16_dinov3 --batch 64 \
  --bf16 --runs 10 --warmup 3 --peak-tflops 989 || echo "eager run failed"
timeout 260 $PY bench/pretrain_bench.py --device cuda --arch vit_base_patch16_dinov3 --batch 64 \
  --bf16 --runs 10 --warmup 3 --peak-tflops 989 --compile || echo "compiled run failed"
