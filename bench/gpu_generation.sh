#!/usr/bin/env bash
# GPU figures for evaluation throughput: bench/bench_generation.py (10 epochs x 8 prompts, 30 steps) with the merged
# LoRA loader (the default) and with diffusers' PEFT loader, on the random SD1.5-shaped test model.
# carry: .whl (with peft)
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
orch testmodel build /tmp/testmodel --device cuda --json > /dev/null || exit 1
for loader in ${LOADERS:-merge peft}; do
  python3 bench/bench_generation.py --base-model /tmp/testmodel --loader "$loader" ${BENCH_ARGS:-} 2>&1 | grep -v -i "warn\|Loading pipeline"
done
