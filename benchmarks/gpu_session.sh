#!/usr/bin/env bash
# A lent GPU's first minutes as one prepared script: smoke-test the CUDA paths CI never runs
# (a judged nb201/MNIST-1D search, a DARTS `small` search, a retrain, a table build), then
# train rows of the NAS-Bench-1D v2 build for ROW_SECONDS.
#
#   bash benchmarks/gpu_session.sh [ROW_SECONDS]     # on the device machine, in the repo root
#
# The device machine's image has PyTorch but neither gymnasium nor mnist1d: carry their wheels
# in .whl/ (installed first when present). Here, before the call:
#   grep -qx /.whl/ .git/info/exclude || echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl gymnasium==1.4.0 farama-notifications mnist1d==0.0.2.post1
# then run `PYTHON=python3 bash benchmarks/gpu_session.sh` with carry [".whl"] and OUT set. Everything lands in $OUT (default runs/gpu-session):
# smoke.log (each step's exit status and seconds), machine.log, one log per step, and
# v2-build/ (build.json + rows.jsonl of the v2 build as it left the machine). Back here,
# `nasgen bench merge OUT/v2-build benchmarks/results/nb1d-v2-build` appends its new rows.
# DEVICE=cpu runs the same steps on a CPU, to check the script itself.
set -u
OUT=${OUT:-runs/gpu-session}; DEVICE=${DEVICE:-cuda}; ROW_SECONDS=${1:-420}; PER_TASK=${PER_TASK:-256}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS ARGS...: `nasgen ARGS` with a time limit; logs it, records rc and seconds
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s%N)
    timeout "$limit" "$PY" -m nasgen "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    printf '%-14s rc=%-3s %7.1f s\n' "$name" "$rc" "$(( ($(date +%s%N) - t0) / 100000000 ))e-1" | tee -a "$OUT/smoke.log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/machine.log"
cat "$OUT/machine.log"
step search-nb201 240 search --device "$DEVICE" --space nb201 --dataset mnist1d --warmup-epochs 1 --steps 200 \
    --logdir "$WORK/runs" --no-progress
step search-small 240 search --device "$DEVICE" --space small --dataset digits --steps 100 \
    --logdir "$WORK/runs-small" --no-progress
run=$(ls -d "$WORK"/runs/*/ 2>/dev/null | head -1)
step retrain 240 retrain "${run:-missing-run}" --device "$DEVICE" --epochs 2 --channels 8 --cells 1 \
    --out "$WORK/retrain" --no-progress
step bench-build 240 bench build --space nb201 --dataset mnist1d --seeds 1 --limit-archs 64 \
    --recipe epochs=1 train_size=1000 --local --device "$DEVICE" --archs-per-task 64 \
    --out "$WORK/smoke-table" --no-progress
mkdir -p "$OUT/v2-build" "$WORK/v2"
cp benchmarks/results/nb1d-v2-build/build.json benchmarks/results/nb1d-v2-build/rows.jsonl "$WORK/v2/" 2>/dev/null
t0=$(date +%s%N)
PYTHON="$PY" timeout "$ROW_SECONDS" bash benchmarks/nb1d_v2.sh --local --device "$DEVICE" \
    --archs-per-task "$PER_TASK" --out "$WORK/v2" --no-progress > "$OUT/v2-rows.log" 2>&1
printf '%-14s rc=%-3s %7.1f s\n' v2-rows "$?" "$(( ($(date +%s%N) - t0) / 100000000 ))e-1" | tee -a "$OUT/smoke.log"
cp "$WORK/v2/build.json" "$WORK/v2/rows.jsonl" "$OUT/v2-build/"
echo "v2 rows now: $(wc -l < "$OUT/v2-build/rows.jsonl")" | tee -a "$OUT/smoke.log"
