#!/usr/bin/env bash
# The one prepared GPU check (one H200, about 8 minutes), in sections that each print JSON lines:
#   ceiling   a bf16 8192^3 matrix product and a device copy: the rates to judge the rest by
#   check     CUDA correctness: padded-query last block vs full block, fused vs plain losses and
#             gradients, bf16 vs fp32 losses over a few steps (bench/device_check.py; exit 1 = fail)
#   stage1    ViT-B/16 bf16 steps at batch 64, 2x224 + 8x96 crops, K = 65,536: images/s, peak
#             memory, MFU against PEAK, step / floor, plain vs fused path, and the stage-2 (Gram)
#             step at 1x and 2x resolution (bench/pretrain_bench.py)
#   augment   multi-crop + iBOT masking batched on the device, slices/s (bench/augment_bench.py)
#   encode    feature-cache encoding, volumes/s at 128 slices, fp32 and bf16 (bench/encode_bench.py)
#   fsdp      ViT-L/16 steps with the student sharded by FSDP2 on a one-process group
#   peer      the stage-1 figures with PEER_ARCH, a ViT with learned absolute positions (no RoPE)
#   profile   one stage-1 step under torch.profiler: the top kernels by device time
#   compile   the stage-1 step with run.compile (torch.compile per block), last: it may be slow
# SECTIONS (a space-separated list of the names above) runs only those. Each section runs under its own time limit, cut to what is left of BUDGET seconds; a failed or
# timed-out section says so and the next one runs. Run from anywhere, on a GPU machine:
#     bash bench/gpu_check.sh 2>&1 | tee gpu_check.log
# An offline machine without the project's packages: carry them as wheels in .whl/ (ignored by
# git; see bench/RESULTS.md, "GPU check"); they are installed with pip --no-index into a folder on
# PYTHONPATH, and the project is used from the checkout (no pip install of it).
# Environment overrides [defaults]: PY [python3], DEVICE [cuda], ARCH [vit_base_patch16_dinov3],
# LARGE_ARCH [vit_large_patch16_dinov3], BATCH [64], PROTOTYPES [65536], RUNS [10], WARMUP [3],
# PEAK [989, TFLOP/s], COMPILE [1], BUDGET [500, s], CHECK_BATCH [16], CHECK_SIZE [224],
# AUG_BATCH [64], ENCODE_VOLUMES [8], ENCODE_SHAPE [176,256,256], PEER_ARCH [vit_base_patch16_224],
# SECTIONS [all but profile]. The suite runs it on the CPU with
# a micro model (tests/test_gpu_check_script.py) so that it keeps working between GPU loans.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
ARCH=${ARCH:-vit_base_patch16_dinov3}
LARGE_ARCH=${LARGE_ARCH:-vit_large_patch16_dinov3}
BATCH=${BATCH:-64}
PROTOTYPES=${PROTOTYPES:-65536}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-3}
PEAK=${PEAK:-989}
COMPILE=${COMPILE:-1}
BUDGET=${BUDGET:-500}
CHECK_BATCH=${CHECK_BATCH:-16}
CHECK_SIZE=${CHECK_SIZE:-224}
AUG_BATCH=${AUG_BATCH:-64}
ENCODE_VOLUMES=${ENCODE_VOLUMES:-8}
ENCODE_SHAPE=${ENCODE_SHAPE:-176,256,256}
PEER_ARCH=${PEER_ARCH:-vit_base_patch16_224}
SECTIONS=${SECTIONS:-ceiling check stage1 augment encode fsdp peer compile}
START=$SECONDS
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

ready() {
  $PY -c "import braindino.ssl.build, nibabel, timm
from packaging.version import Version
assert Version(timm.__version__) >= Version('1.0.20'), 'timm ' + timm.__version__" 2>/dev/null
}
if ! ready; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "the project's packages are missing and no wheels are in .whl/ (see bench/RESULTS.md)"
    exit 1
  fi
  site=${TMPDIR:-/tmp}/braindino-site
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || { echo "installing the wheels in .whl/ failed"; exit 1; }
  export PYTHONPATH=$PWD:$site${PYTHONPATH#"$PWD"}
  ready || { $PY -c "import braindino.ssl.build"; echo "still missing packages"; exit 1; }
fi
$PY -c "import sys, torch, timm; print('python', sys.version.split()[0], 'torch', torch.__version__,
'timm', timm.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv,noheader || true
fi

section() {  # NAME LIMIT COMMAND...: run under min(LIMIT, what is left of BUDGET)
  local name=$1 limit=$2 left rc
  shift 2
  [[ " $SECTIONS " == *" $name "* ]] || return 0
  left=$((BUDGET - (SECONDS - START)))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "$name skipped: the time budget ($BUDGET s) is spent"
    return
  fi
  echo "== $name (limit ${limit} s, ${left} s left)"
  timeout "$limit" "$@"
  rc=$?
  ((rc == 0)) || echo "$name failed (rc $rc)"
}

if [ "$DEVICE" = cuda ]; then
  section ceiling 40 $PY -c "
import json, torch
a, b = (torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16) for _ in range(2))
x = torch.randn(2**30, device='cuda', dtype=torch.float32)
def time(fn, n):
    for _ in range(3): fn()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / 1e3 / n
mm = time(lambda: a @ b, 20)
cp = time(lambda: x.clone(), 20)
print(json.dumps({'figure': 'ceiling', 'bf16_matmul_tflops': round(2 * 8192**3 / mm / 1e12, 1),
                  'copy_tb_per_s': round(2 * x.numel() * 4 / cp / 1e12, 2)}))"
fi
section check 120 $PY bench/device_check.py --device "$DEVICE" --arch "$ARCH" \
  --prototypes "$PROTOTYPES" --batch "$CHECK_BATCH" --size "$CHECK_SIZE"
stage1=(bench/pretrain_bench.py --device "$DEVICE" --arch "$ARCH" --batch "$BATCH" --bf16
  --prototypes "$PROTOTYPES" --runs "$RUNS" --warmup "$WARMUP" --peak-tflops "$PEAK")
section stage1 180 $PY "${stage1[@]}" --gram-ratio 2
section augment 60 $PY bench/augment_bench.py --device "$DEVICE" --batch "$AUG_BATCH" --runs 5
section encode 90 $PY bench/encode_bench.py --device "$DEVICE" --arch "$ARCH" \
  --volumes "$ENCODE_VOLUMES" --shape "$ENCODE_SHAPE"
section fsdp 150 $PY bench/pretrain_bench.py --device "$DEVICE" --arch "$LARGE_ARCH" --fsdp \
  --batch "$BATCH" --bf16 --prototypes "$PROTOTYPES" --runs 5 --warmup 2 --peak-tflops "$PEAK"
section peer 120 $PY bench/pretrain_bench.py --device "$DEVICE" --arch "$PEER_ARCH" \
  --batch "$BATCH" --bf16 --prototypes "$PROTOTYPES" --runs "$RUNS" --warmup "$WARMUP" \
  --peak-tflops "$PEAK"
section profile 120 $PY "${stage1[@]}" --profile --runs 1 --warmup 1
if [ "$COMPILE" = 1 ]; then
  section compile 300 $PY "${stage1[@]}" --compile
else
  echo "compiled run skipped (COMPILE=$COMPILE)"
fi
echo "done in $((SECONDS - START)) s"
