#!/usr/bin/env bash
# One prepared GPU check for a borrowed device, set-up included (target: <= 6 minutes on a bare H200):
#   bash scripts/gpu_check.sh [OUT_DIR]
# Set-up: where jsonargparse is missing (a bare device image with torch, lightning and triton), the wheels in .whl/
# (jsonargparse, docstring-parser, typeshed-client; how to make them: benchmarks/README.md, "On CUDA") are installed into
# /tmp/site, the checkout goes on PYTHONPATH and a `wavezoo` shim on PATH: nothing is installed into the image.
# Then: the gpu test tier, the fused-scan check (scripts/triton_check.py), the CUDA benchmark rows (the wave_rnn
# group with the fused and reference scans, cuDNN nn.RNN/nn.LSTM, bf16 and tokens/s at B128/B2048; kernel launches
# and steps/s of every family's train_T1 step; lbc_ssm; generate) and a short bf16-mixed fit. Writes
# OUT_DIR/{gpu_tests.log, triton_check.log, benchmarks_cuda.{json,log,md}, fit_bf16.log, summary.txt}.
# Time budget: every stage runs under `timeout`, capped so that the whole script, set-up included, ends within
# LIMIT = 350 s. Each stage may use up to its cap (tests 100 s, triton_check 100 s, benchmarks 150 s, fit 60 s) but
# no more than leaves the later stages their share (230, 160 and 40 s: triton_check 70 s, benchmarks 120 s, fit
# 40 s), so time a stage does not use goes to the next. A stage cut by its cap keeps what it printed (the benchmark
# prints each row when measured, issue 27's groups first); its return code is then 124.
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT=350
cap() {  # cap WANT RESERVE: WANT seconds, or fewer (at least 1) so that RESERVE seconds remain for the later stages
  local left=$((LIMIT - SECONDS - $2))
  if [ "$left" -lt "$1" ]; then echo $((left > 1 ? left : 1)); else echo "$1"; fi
}
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! python3 -c "import jsonargparse" 2>/dev/null; then
  [ -d .whl ] || { echo "jsonargparse is missing and there is no .whl/ folder of wheels to install it from" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 2
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
if ! command -v wavezoo >/dev/null; then
  mkdir -p /tmp/wavezoo-bin && printf '#!/bin/sh\nexec python3 -m wavezoo.cli "$@"\n' > /tmp/wavezoo-bin/wavezoo
  chmod +x /tmp/wavezoo-bin/wavezoo && export PATH="/tmp/wavezoo-bin:$PATH"
fi
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')" || exit 2
device=$(python3 -c "import torch; print(torch.cuda.get_device_name(), 'torch', torch.__version__)")
start=$SECONDS

timeout "$(cap 100 230)" python3 -m pytest -q -p no:cacheprovider -m gpu tests > "$out/gpu_tests.log" 2>&1
tests=$?
timeout "$(cap 100 160)" python3 scripts/triton_check.py > "$out/triton_check.log" 2>&1
triton=$?
timeout "$(cap 150 40)" python3 -m benchmarks.run --device cuda --only wave_rnn,train_T1,lbc_ssm,generate \
  --out "$out/benchmarks_cuda.json" --markdown "$out/benchmarks_cuda.md" > "$out/benchmarks_cuda.log" 2>&1
bench=$?
timeout "$(cap 60 0)" wavezoo fit --config configs/copy/wave_rnn_keller.yaml --trainer.accelerator gpu \
  --trainer.devices 1 --trainer.precision bf16-mixed --trainer.max_steps 300 --trainer.logger false \
  --trainer.enable_progress_bar false --trainer.default_root_dir "$out/fit" --test_after_fit true \
  > "$out/fit_bf16.log" 2>&1
fit=$?

{
  echo "device: $device   date: $(date -u +%F)   checks: $((SECONDS - start)) s, set-up included: $SECONDS s"
  echo "gpu tests (rc $tests): $(tail -n 1 "$out/gpu_tests.log")"
  echo "fused scans (rc $triton):"; cat "$out/triton_check.log"
  echo "benchmarks (rc $bench):"
  grep -E '^(group|wave_rnn|lbc_ssm|generate|train_T1) ' "$out/benchmarks_cuda.log"
  echo "benchmark targets: $(grep -c '(met)$' "$out/benchmarks_cuda.log") met," \
    "$(grep -c '(NOT met)$' "$out/benchmarks_cuda.log") not met (rows ending in (met) / (NOT met))"
  echo "bf16 fit of copy/wave_rnn_keller, 300 steps (rc $fit):"
  grep -E 'test/(acc|loss)' "$out/fit_bf16.log" | head -2
} | tee "$out/summary.txt"
[ "$tests" -eq 0 ] && [ "$triton" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$fit" -eq 0 ]
