#!/usr/bin/env bash
# caffe2lite's GPU check: the CUDA tests and the CUDA SparseNormalize benchmark.
#
# Run from the repository root on a machine with an NVIDIA GPU where CuPy
# (pip install 'caffe2lite[cuda]' or cupy-cuda12x) and, for the torch column,
# torch with CUDA are installed; caffe2lite itself need not be (PYTHONPATH=.).
# Takes under 10 minutes; prints the device, the date and every command.
# Needs numpy, protobuf (any of 4.25-7.x), pytest and hypothesis; nothing is
# installed, so it runs on a machine without network.
#   tools/gpu_check.sh            # tests + benchmark
#   PYTHON=python3.11 tools/gpu_check.sh --quick   # small benchmark shapes
#   GPU_CHECK_LOG=gpu.log tools/gpu_check.sh       # also keep a copy of the output
# Rehearse it without a GPU: pytest -m cuda --fake-cuda (tests/test_cuda_rehearsal.py).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# GPU_CHECK_LOG (or $OUT/gpu_check.log where a job runner provides OUT) keeps a copy
# of everything printed, for BENCHMARKS.md.
LOG="${GPU_CHECK_LOG:-${OUT:+$OUT/gpu_check.log}}"
if [ -n "$LOG" ]; then exec > >(tee "$LOG") 2>&1; fi
PY="${PYTHON:-python3}"
BENCH_ARGS=("$@")
status=0

run() {  # print the command, run it under a time limit, remember a failure
    local limit=$1; shift
    echo; echo "+ $*"
    timeout "$limit" "$@" || { echo "!! failed (exit $?): $*"; status=1; }
}

echo "== caffe2lite GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv || nvidia-smi || echo "!! nvidia-smi not found"
"$PY" - <<'PY'
import sys
print("python", sys.version.split()[0])
try:
    import cupy
    print("cupy", cupy.__version__, "GPUs:", cupy.cuda.runtime.getDeviceCount())
except Exception as e:
    print("!! CuPy unusable:", e)
try:
    import torch
    print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
except Exception as e:
    print("torch unavailable:", e)
PY

# Every CUDA test must run here: a skip would mean CuPy or the GPU is unusable.
run 30 "$PY" -c "from caffe2lite.runtime.devices.cuda import unavailable_reason as r; why = r(); print(why or 'caffe2lite: CUDA usable'); raise SystemExit(1 if why else 0)"
run 360 "$PY" -m pytest -q -m cuda -rs -p no:cacheprovider tests
run 200 "$PY" tools/bench_sparse_normalize.py --device cuda "${BENCH_ARGS[@]}"
echo; echo "== done $(date -u '+%H:%M:%S UTC'), status $status"
exit $status
