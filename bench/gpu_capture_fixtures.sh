#!/usr/bin/env bash
# Captures what a real sd-scripts run writes, for the launch-path tests' stand-in trainer (tests/fixtures/real_run/):
# a 2-epoch sd15_fast run through `orchestrator launch` on the example dataset with on-train evaluation, and the same
# run stopped by SIGTERM in the middle of epoch 2. Kept: the trainer's log, the TensorBoard event files, each
# checkpoint's safetensors header (not its weights), the sample images' names, and `runs show --json`.
#   carry: .whl (the pinned wheels) and .sd-scripts (an export of the pinned commit); results: $OUT/real_run.tar.gz
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
spec() {  # NAME
  cat > /tmp/$1.toml <<SPEC
spec_version = 1
name = "$1"
preset = "sd15_fast"
seed = 2025
[base_model]
family = "sd15"
path = "/tmp/testmodel"
[dataset]
path = "$PWD/datasets/example/plain"
[config]
max_train_epochs = 2
[evaluation]
suite = "improved_3"
seeds = [1]
on_train = true
SPEC
}
keep() {  # NAME: copy what the run left into the fixture folder
  local name=$1 dest=/tmp/real_run/$1
  mkdir -p "$dest/logs"
  local id work
  id=$(orch runs list --json | python3 -c "import json,sys; print([r['id'] for r in json.load(sys.stdin) if r['name']=='$name'][0])")
  orch runs show "$id" --json > "$dest/runs_show.json"
  work=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['run']['work_dir'])" "$dest/runs_show.json")
  cp "$work/train.log" "$dest/train.log"
  cp "$work/config.toml" "$work/dataset.toml" "$work/sample_prompts.txt" "$dest/" 2>/dev/null
  find "$work/logs" -name 'events.out.tfevents.*' -exec cp {} "$dest/logs/" \;
  ls "$work/output/sample" > "$dest/sample_names.txt" 2>/dev/null
  python3 - "$work/output" "$dest" <<'PY'
import json, pathlib, struct, sys
out, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(out.glob("*.safetensors")):
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
    (dest / (path.name + ".header.json")).write_text(json.dumps(
        {"file_size": path.stat().st_size, "header": header}, indent=1, sort_keys=True))
    print(path.name, path.stat().st_size, "bytes,", len(header) - 1, "tensors")
PY
}
spec real_ok
start=$(now)
orch launch /tmp/real_ok.toml --json > "$OUT/real_ok.json" 2> "$OUT/real_ok.stderr"
echo "real_ok: exit $? wall $(since $start) s"
keep real_ok
# the same run, SIGTERM once epoch 2 has started (the orchestrator stops the trainer's process group)
spec real_cancelled
orch launch /tmp/real_cancelled.toml --json > "$OUT/real_cancelled.json" 2> "$OUT/real_cancelled.stderr" &
pid=$!
for _ in $(seq 1 600); do
  log=$(ls -t /tmp/orch-home/runs/*/train.log 2>/dev/null | head -1)
  if [ -n "$log" ] && grep -q "epoch 2/2" "$log" && grep -q "steps:" <(tail -c 2000 "$log"); then break; fi
  sleep 0.5
done
sleep 5
kill -TERM $pid; wait $pid
echo "real_cancelled: exit $?"
keep real_cancelled
tar -czf "$OUT/real_run.tar.gz" -C /tmp real_run
ls -la /tmp/real_run/*
