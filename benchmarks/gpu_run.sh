#!/usr/bin/env bash
# The prepared run for a lent GPU: one call of at most ~8 minutes that writes everything under one folder.
#
#   bash benchmarks/gpu_run.sh --prepare          # here, once: Fashion-MNIST + the commit into gpu-carry/
#   bash benchmarks/gpu_run.sh                    # on the GPU machine: results in $OUT (else runs/gpu-run)
#   bash benchmarks/gpu_run.sh --smoke --out /tmp/gpu-smoke   # every stage tiny, on the CPU (tests/cli/test_gpu_run.py)
#
# The device call (the working tree travels; gpu-carry/ is ignored by git, so it is carried by name):
#   run(command="bash benchmarks/gpu_run.sh", carry=["gpu-carry"], timeout_s=600)
# then commit $OUT's gpu_run.json / gpu_run.md (and the model, if it beats the shipped one).
#
# Stages (ddim_lesson/cli/gpu_run.py): env (device, versions; bf16 autocast, channels_last, torch.compile checked
# against fp32), cuda_tests (pytest -m cuda), throughput (DDIM images/s at 28x28, fp32 and bf16, batches up to
# the memory; sampler / bare model calls), train (the fashion-mnist recipe at batch 256, sized to the time left,
# stopping itself with a checkpoint), fid (the course's FID at DDIM 50 against the shipped CPU model). A global
# budget (--budget-s, default 480 s) bounds them all; a stage that fails is recorded and the next one runs.
# Any other flag goes to `ddim-lesson gpu-run` (see --help).
#
# Assumptions about the GPU machine, which starts bare and has no network: its python3 has torch, torchvision,
# numpy, safetensors, tqdm, pillow, matplotlib and pytest (the workplace's CUDA image lists them). The package is
# not installed there: it runs from this tree with PYTHONPATH set to it (nothing to build, no network needed).
# Without torch the script stops at once with exit status 3.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu_run.sh: $PY cannot import torch; use a Python that has it (PYTHON=...)" >&2
  exit 3
fi
if [ "${1:-}" = "--prepare" ]; then
  exec "$PY" -m ddim_lesson gpu-run --carry "${2:-gpu-carry}"
fi

CARRY="${GPU_CARRY:-$PWD/gpu-carry}"
if [ -z "${DDIM_LESSON_DATA:-}" ] && [ -d "$CARRY/fashion-mnist" ]; then
  export DDIM_LESSON_DATA="$CARRY/fashion-mnist"
fi
export DDIM_LESSON_CACHE="${DDIM_LESSON_CACHE:-${TMPDIR:-/tmp}/ddim-lesson-cache}"
PROV=()
[ -f "$CARRY/carry.json" ] && PROV=(--provenance "$CARRY/carry.json")

OUT_DIR="${OUT:-runs/gpu-run}"
for ((i = 1; i <= $#; i++)); do  # an --out among the flags wins over $OUT
  if [ "${!i}" = "--out" ]; then j=$((i + 1)); OUT_DIR="${!j}"; fi
done
mkdir -p "$OUT_DIR"
"$PY" -m ddim_lesson gpu-run --out "$OUT_DIR" "${PROV[@]}" "$@" 2>&1 | tee "$OUT_DIR/log.txt"
exit "${PIPESTATUS[0]}"
