#!/usr/bin/env bash
# GPU figures for on-train evaluation: sd15_fast for 3 epochs on the example dataset (random-weight test model) with
# [evaluation] suite = improved_3, on_train = true: sd-scripts renders the suite after each epoch and the executor
# scores it as it appears. Compared with the same run without evaluation. carry: .whl and .sd-scripts
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
orch testmodel build /tmp/testmodel --device cuda --json > /dev/null || exit 1
spec() {  # name, extra TOML
  printf 'spec_version = 1\nname = "%s"\npreset = "sd15_fast"\nseed = 2025\n[base_model]\nfamily = "sd15"\npath = "/tmp/testmodel"\n[dataset]\npath = "%s/datasets/example/plain"\n[config]\nmax_train_epochs = 3\n%b' "$1" "$PWD" "$2" > "/tmp/$1.toml"
}
spec plain ""
spec on_train '[evaluation]\nsuite = "improved_3"\non_train = true\n'
orch launch /tmp/plain.toml --json > /dev/null 2>&1  # warm-up: file cache, latents code paths
for name in plain on_train; do
  t=$(now); orch launch "/tmp/$name.toml" --json > "/tmp/$name.json" 2> "$OUT/$name.stderr"
  echo "$name: exit $? in $(since $t) s"
done
run=$(python3 -c "import json; print(json.load(open('/tmp/on_train.json'))['run']['id'])") || exit 1
orch views run_epoch_summary --where run_id="$run" --csv | cut -d, -f1-8
orch runs show "$run" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print('best epoch', d['best_epoch'], 'best score', d['best_score'])"
orch eval "$run" --on-train --json
orch eval "$run" --suite improved_3 --sheet-only --sheet "$OUT/on_train_sheet.png" > /dev/null 2>&1; ls -la "$OUT"
