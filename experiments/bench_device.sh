#!/usr/bin/env bash
# COMMAND: bash experiments/bench_device.sh [extra experiments.bench flags]
# The whole benchmark harness in one call on an accelerator machine (GPU/TPU): every
# section of experiments/bench except the CPU-only peers comparison (at most 7.5
# minutes), then the seed-axis section (experiments/bench/seeds.py: S run seeds in one
# program vs S sequential runs; at most 5 minutes more). Installs nothing: it uses
# $PYTHON, else .venv/bin/python, else python3, which must already have the project's
# requirements (jax with the accelerator's plugin). Writes bench.json, bench.md (the
# table), bench.log, bench_seeds.json, bench_seeds.md, bench_seeds.log and devices.txt to
# $OUT when set, else to runs/bench-device/.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
dest="${OUT:-runs/bench-device}"
mkdir -p "$dest"

"$py" -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())' \
  | tee "$dest/devices.txt"
# 7.5 minutes at most; the JSON is rewritten after every section, so a cut run keeps its parts.
timeout 450 "$py" -m experiments.bench --peers off --out "$dest/bench.json" \
  --sections machine matmul online_adaptation meta_update embedding_extraction compile \
  cost_growth memory "$@" 2>&1 | tee "$dest/bench.log"
echo "table: $dest/bench.md"
# The seed axis: vmapped vs sequential runs at S = 1, 2, 5, 10, 20 (target: 10 seeds in at
# most the time of 2 runs).
timeout 300 "$py" -m experiments.bench --sections machine seeds --out "$dest/bench_seeds.json" \
  "$@" 2>&1 | tee "$dest/bench_seeds.log"
echo "table: $dest/bench_seeds.md"
