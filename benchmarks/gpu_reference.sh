#!/usr/bin/env bash
# The GPU reference runs behind BENCHMARKS.md section 1, one stage per device call (each must end in 10 min).
# Run from the repo root on a 4-GPU machine that has torch but not diffusers: the diffusers wheel travels in
# .whl/ (see BENCHMARKS.md). Run folders go to results/reference/; a tarball of them and the log to $OUT.
#   stage a: processes, free-run + batch-sync, 270 images, 4 GPUs
#   stage b: processes, dynamic, 270 images, 4 GPUs; then 1 GPU, 30 images; then tracing on/off (smoke)
#   stage p: the threads probe (host vs GPU time per step, alone and in 4 threads) and tracing on/off, n=20
#   stages c, d, e: threads, 120 images, 4 GPUs, one mode each (a threads edit takes 8-9.5 s on 4 x H100, so
#   one mode is ~5 min)
#   stage f: processes, all modes, 120 images, 4 GPUs: the baseline for c-e on the same machine (~6 min)
# Session A (2026-11-27) ran a, b and a 60-image all-modes threads run; session B ran p, c, d, e, f.
set -uo pipefail
stage=$1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" results/reference
if ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 COLUMNS=100
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
common=(--model random:full --size 512 --steps 4 --out results/reference)
case $stage in
  a) timeout 560 python3 -m syncbench run --mode free-run,batch-sync --images 270 --gpus 4 "${common[@]}" ;;
  b) timeout 300 python3 -m syncbench run --mode dynamic --images 270 --gpus 4 "${common[@]}"
     timeout 150 python3 -m syncbench run --mode free-run --images 30 --gpus 1 "${common[@]}"
     timeout 120 python3 benchmarks/smoke.py --model random:full --size 512 --steps 4 --n 4 --device cuda:0 ;;
  p) timeout 200 python3 benchmarks/threads_probe.py --gpus 4 --json "$OUT/threads_probe.json"
     timeout 330 python3 benchmarks/smoke.py --model random:full --size 512 --steps 4 --n 20 --device cuda:0 \
       --json "$OUT/smoke_trace.json" ;;
  c) timeout 560 python3 -m syncbench run --mode free-run --images 120 --gpus 4 --backend threads "${common[@]}" ;;
  d) timeout 560 python3 -m syncbench run --mode batch-sync --images 120 --gpus 4 --backend threads "${common[@]}" ;;
  e) timeout 560 python3 -m syncbench run --mode dynamic --images 120 --gpus 4 --backend threads "${common[@]}" ;;
  f) timeout 420 python3 -m syncbench run --mode all --images 120 --gpus 4 "${common[@]}" ;;
esac
rc=$?
[ "$stage" = p ] || tar czf "$OUT/runs-$stage.tgz" results/reference
exit $rc
