#!/usr/bin/env bash
# Orchestrator overhead on the GPU, order effects removed: a 1-epoch warm-up launch (page cache, hash cache), then
# the bare `accelerate launch` of the rendered files and the `orchestrator launch` of the same spec, 2 epochs each.
#   carry: .whl and .sd-scripts
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
spec() {  # NAME PRESET EPOCHS
  printf 'spec_version = 1\nname = "%s"\npreset = "%s"\nseed = 2025\n[base_model]\nfamily = "sd15"\npath = "/tmp/testmodel"\n[dataset]\npath = "%s/datasets/example/plain"\n[config]\nmax_train_epochs = %s\n' "$1" "$2" "$PWD" "$3" > /tmp/$1.toml
}
spec warmup sd15_fast 1
t=$(now); orch launch /tmp/warmup.toml --json > /tmp/warmup.json 2> "$OUT/warmup.stderr"; echo "warm-up launch (sd15_fast, 1 epoch): exit $? wall $(since $t) s"
spec timed sd15_fast 2
# The bare run needs the rendered files: plan them into a folder and materialize the same snapshot there.
orch plan /tmp/timed.toml --out /tmp/bare --tokenizer-cache-dir /tmp/orch-home/tokenizer_cache > /dev/null || exit 1
snapshot=$(python3 -c "import json; print(json.load(open('/tmp/warmup.json'))['run']['dataset_snapshot_id'])")
orch dataset materialize "$snapshot" /tmp/bare/dataset > /dev/null || exit 1
argv=$(python3 -c "import json,sys,shlex; a=json.load(open(sys.argv[1]))['argv']; print(shlex.join(a).replace('<sd-scripts>', sys.argv[2]))" /tmp/bare/command.json "$SD_SCRIPTS_DIR")
t=$(now); (cd /tmp/bare && eval "$argv" > "$OUT/bare.log" 2>&1); echo "bare accelerate launch (2 epochs): exit $? wall $(since $t) s"
t=$(now); orch launch /tmp/timed.toml --json > /tmp/timed.json 2> "$OUT/timed.stderr"; wall=$(since $t)
python3 - "$wall" <<'PY'
import json, subprocess, sys
data = json.load(open("/tmp/timed.json")); run = data["run"]
show = json.loads(subprocess.run(["python3", "-m", "orchestrator", "runs", "show", run["id"], "--json"], capture_output=True, text=True).stdout)
rates = [e["data"]["it_per_s"] for e in show["events"] if e["kind"] == "progress" and (e.get("data") or {}).get("it_per_s")]
print(f"orchestrator launch (2 epochs): {run['status']}, CLI wall {sys.argv[1]} s, trainer wall {data['wall_seconds']:.1f} s, "
      f"first step after {data['first_step_seconds']:.1f} s, final it/s {rates[-1] if rates else None}, "
      f"checkpoints {[c['epoch'] for c in data['checkpoints']]} ({[c['size_bytes'] for c in data['checkpoints']]} bytes), steps {data['training_steps']}")
PY
grep -o "[0-9.]*it/s" "$OUT/bare.log" | tail -1 | sed 's/^/bare final rate: /'
