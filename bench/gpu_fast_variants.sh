#!/usr/bin/env bash
# GPU figures, second pass: orchestrator overhead with a warm base-model hash cache (launch vs bare accelerate on
# the same rendered files, 2 epochs), then speed variants of the same recipe (1 epoch each) to choose sd15_fast.
#   carry: .whl and .sd-scripts
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
t=$(now); python3 -c "from orchestrator.base_model import fingerprint; print(fingerprint('/tmp/testmodel'))" >/dev/null
echo "hashing the 2.1 GB test model (cold cache): $(since $t) s"
spec() {  # NAME PRESET EPOCHS EXTRA...
  local name=$1 preset=$2 epochs=$3; shift 3
  { printf 'spec_version = 1\nname = "%s"\npreset = "%s"\nseed = 2025\n[base_model]\nfamily = "sd15"\npath = "/tmp/testmodel"\n' "$name" "$preset"
    printf '[dataset]\npath = "%s/datasets/example/plain"\n[config]\nmax_train_epochs = %s\n' "$PWD" "$epochs"
    for line in "$@"; do printf '%s\n' "$line"; done; } > /tmp/$name.toml
}
report() {  # NAME WALL
  python3 - "$1" "$2" <<'PY'
import json, statistics, subprocess, sys
name, wall = sys.argv[1], sys.argv[2]
data = json.load(open(f"/tmp/{name}.json"))
run = data["run"]
show = json.loads(subprocess.run(["python3", "-m", "orchestrator", "runs", "show", run["id"], "--json"],
                                 capture_output=True, text=True).stdout)
rates = [e["data"]["it_per_s"] for e in show["events"] if e["kind"] == "progress" and (e.get("data") or {}).get("it_per_s")]
print(f"{name}: {run['status']}, CLI wall {wall} s, trainer wall {data['wall_seconds']:.1f} s, first step after "
      f"{(data['first_step_seconds'] or 0):.1f} s, final it/s {rates[-1] if rates else None}, "
      f"checkpoints {[c['epoch'] for c in data['checkpoints']]}, steps {data['training_steps']}"
      + ("" if run["status"] == "succeeded" else f"\n  {run['error_summary'][-600:]}"))
PY
}
launch() {  # NAME
  local t; t=$(now)
  orch launch /tmp/$1.toml --json > /tmp/$1.json 2> "$OUT/$1.stderr"
  report $1 "$(since $t)"
}
spec overhead sd15_caption_fix 2
launch overhead
work=$(python3 -c "import json; print(json.load(open('/tmp/overhead.json'))['run']['work_dir'])")
rm -rf /tmp/bare; mkdir -p /tmp/bare; cp -r "$work/dataset" "$work/config.toml" "$work/dataset.toml" /tmp/bare/
argv=$(python3 -c "import json,sys,shlex; print(shlex.join(json.load(open(sys.argv[1]))['argv']))" "$work/command.json")
t=$(now); (cd /tmp/bare && eval "$argv" > "$OUT/bare.log" 2>&1); echo "bare accelerate launch (same files): exit $? wall $(since $t) s"
spec perfect_adamw sd15_perfect 1 'optimizer_type = "AdamW"'
spec fast_adamw sd15_fast 1 'optimizer_type = "AdamW"'
spec fast_fused sd15_fast 1 'optimizer_type = "AdamW"' 'optimizer_args = ["fused=True"]'
spec fast_ckpt sd15_fast 1 'optimizer_type = "AdamW"' 'gradient_checkpointing = true'
for name in perfect_adamw fast_adamw fast_fused fast_ckpt; do launch $name; done
