#!/usr/bin/env bash
# GPU figures for evaluation: train sd15_fast for 2 epochs on the example dataset (random-weight test model), then
# `orchestrator eval` every checkpoint on the bespoke_punks_8 suite (8 prompts x 2 seeds, 30 steps, 512 px), timed,
# with a contact sheet. Results under $OUT.   carry: .whl (with peft) and .sd-scripts
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
printf 'spec_version = 1\nname = "eval_source"\npreset = "sd15_fast"\nseed = 2025\n[base_model]\nfamily = "sd15"\npath = "/tmp/testmodel"\n[dataset]\npath = "%s/datasets/example/plain"\n[config]\nmax_train_epochs = 2\n' "$PWD" > /tmp/eval_source.toml
t=$(now); orch launch /tmp/eval_source.toml --json > /tmp/train.json 2> "$OUT/train.stderr"; echo "training: exit $? in $(since $t) s"
run=$(python3 -c "import json; print(json.load(open('/tmp/train.json'))['run']['id'])") || exit 1
t=$(now); orch eval "$run" --suite bespoke_punks_8 --steps 30 --sheet "$OUT/sheet.png" --json > "$OUT/eval.json" 2> "$OUT/eval.stderr"
echo "eval (2 epochs x 16 images, 30 steps, LoRA load/unload included, pipeline load included): exit $? in $(since $t) s"
t=$(now); orch eval "$run" --suite bespoke_punks_8 --steps 30 --json > /tmp/eval2.json 2>&1; echo "eval again (all scored, resumes nothing): exit $? in $(since $t) s"
orch views run_epoch_summary --where run_id="$run" --csv | cut -d, -f1-8
orch runs show "$run" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print('best epoch', d['best_epoch'], 'best score', d['best_score'])"
tail -5 "$OUT/eval.stderr"
