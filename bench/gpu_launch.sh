#!/usr/bin/env bash
# GPU figures for the launch issue, run on a lent H100/H200 (see README "GPU runs"): the users' CAPTION_FIX recipe
# at 512 px through `orchestrator launch` on the example dataset, the same rendered files through a bare
# `accelerate launch` (orchestrator overhead), and the sd15_fast preset. Prints figures; results under $OUT.
#   carry: .whl (the pinned wheels) and .sd-scripts (an export of the pinned commit)
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
EPOCHS=${EPOCHS:-2}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 
t0=$(now)
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
echo "test model built in $(since $t0) s"
spec() {  # NAME PRESET EXTRA
  cat > /tmp/$1.toml <<SPEC
spec_version = 1
name = "$1"
preset = "$2"
seed = 2025
[base_model]
family = "sd15"
path = "/tmp/testmodel"
[dataset]
path = "$PWD/datasets/example/plain"
[config]
max_train_epochs = $EPOCHS
$3
SPEC
}
spec gpu_caption_fix sd15_caption_fix ""
spec gpu_fast sd15_fast ""
for name in gpu_caption_fix gpu_fast; do
  start=$(now)
  orch launch /tmp/$name.toml --json > "$OUT/$name.json" 2> "$OUT/$name.stderr"
  echo "$name: exit $? wall $(since $start) s (whole CLI: snapshot, hashing, materialize, train, register)"
  if [ "$name" = gpu_caption_fix ]; then
    # The same rendered files through a bare accelerate launch, for the overhead figure.
    work=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['run']['work_dir'])" "$OUT/$name.json")
    bare=/tmp/bare; rm -rf $bare; mkdir -p $bare
    cp -r "$work/dataset" "$work/config.toml" "$work/dataset.toml" "$work/sample_prompts.txt" $bare/
    argv=$(python3 -c "import json,sys,shlex; print(shlex.join(json.load(open(sys.argv[1]))['argv']))" "$work/command.json")
    start=$(now)
    (cd $bare && eval "$argv" > "$OUT/bare.log" 2>&1)
    echo "bare accelerate launch: exit $? wall $(since $start) s"
  fi
done
orch runs list --json > /tmp/runs.json
for name in gpu_caption_fix gpu_fast; do
  id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['run']['id'])" "$OUT/$name.json" 2>/dev/null) || continue
  orch runs show "$id" --json > "$OUT/$name.show.json"
done
python3 - "$OUT" <<'PY'
import json, re, sys, pathlib
out = pathlib.Path(sys.argv[1])
for name in ("gpu_caption_fix", "gpu_fast"):
    try:
        data = json.loads((out / f"{name}.json").read_text())
    except Exception as error:
        print(name, "no result:", error); continue
    run = data["run"]
    show = json.loads((out / f"{name}.show.json").read_text()) if (out / f"{name}.show.json").exists() else {}
    rates = [e["data"]["it_per_s"] for e in show.get("events", []) if e["kind"] == "progress" and e.get("data")]
    print(f"{name}: status {run['status']}, checkpoints {[c['epoch'] for c in data['checkpoints']]}, "
          f"wall {data['wall_seconds']:.1f} s (trainer), first step after {data['first_step_seconds']} s, "
          f"steps logged {data['training_steps']}, it/s (progress events) {rates}")
bare = (out / "bare.log").read_text(errors="replace") if (out / "bare.log").exists() else ""
print("bare last rate:", (re.findall(r"([\d.]+)it/s", bare) or ["?"])[-1])
PY
