#!/usr/bin/env bash
# One prepared GPU check for a borrowed device (about 8 minutes): the gpu test tier, the CUDA benchmark rows and a
# short bf16-mixed fit, then a summary. Run from the repository root with the environment installed:
#   bash scripts/gpu_check.sh [OUT_DIR]
# (activate the environment of README command (2) first). Writes OUT_DIR/{gpu_tests.log, benchmarks_cuda.json,
# benchmarks_cuda.log, fit_bf16.log, summary.txt}.
set -uo pipefail
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')" || exit 2
device=$(python -c "import torch; print(torch.cuda.get_device_name())")

timeout 180 python -m pytest -q -m gpu tests/test_gpu.py > "$out/gpu_tests.log" 2>&1
tests=$?
timeout 240 python -m benchmarks.run --device cuda --only wave_rnn,lbc_ssm,generate,train_T1 \
  --out "$out/benchmarks_cuda.json" > "$out/benchmarks_cuda.log" 2>&1
bench=$?
timeout 120 wavezoo fit --config configs/copy/wave_rnn_keller.yaml --trainer.accelerator gpu --trainer.devices 1 \
  --trainer.precision bf16-mixed --trainer.max_steps 300 --trainer.logger false --trainer.enable_progress_bar false \
  --trainer.default_root_dir "$out/fit" --test_after_fit true > "$out/fit_bf16.log" 2>&1
fit=$?

{
  echo "device: $device   date: $(date -u +%F)"
  echo "gpu tests (rc $tests): $(tail -n 1 "$out/gpu_tests.log")"
  echo "benchmarks (rc $bench):"
  grep -E '^(wave_rnn|lbc_ssm|generate|train_T1) ' "$out/benchmarks_cuda.log"
  echo "bf16 fit of copy/wave_rnn_keller, 300 steps (rc $fit):"
  grep -E 'test/(acc|loss)' "$out/fit_bf16.log" | head -2
} | tee "$out/summary.txt"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$fit" -eq 0 ]
