#!/usr/bin/env bash
# GPU figures for remote launch: a run queued on the laptop (tracking database and file store carried in
# .work/gpuq, made with `launch --on queue:h100`) is claimed and trained here by `orchestrator worker`; the database
# comes back under $OUT.   carry: .whl, .sd-scripts, .work/gpuq
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
orch testmodel build /tmp/testmodel --device cuda --json > /tmp/testmodel.json || exit 1
db="sqlite:///$PWD/.work/gpuq/q.db"; store="file://$PWD/.work/gpuq/store"
t=$(now); python3 -m orchestrator --database "$db" worker --queue h100 --store "$store" 2> "$OUT/worker.stderr"
echo "worker: exit $? wall $(since $t) s"
python3 -m orchestrator --database "$db" runs list --json | python3 -c "
import json, subprocess, sys
for run in json.load(sys.stdin):
    show = json.loads(subprocess.run(['python3', '-m', 'orchestrator', '--database', sys.argv[1], 'runs', 'show', run['id'], '--json'], capture_output=True, text=True).stdout)
    rates = [e['data']['it_per_s'] for e in show['events'] if e['kind'] == 'progress' and (e.get('data') or {}).get('it_per_s')]
    print(run['id'], run['name'], run['status'], 'worker', run['worker'], 'queue', run['queue'], 'final it/s', rates[-1] if rates else None,
          'checkpoints', [c['epoch'] for c in show['checkpoints']], 'started', run['started_at'], 'finished', run['finished_at'])
" "$db"
cp .work/gpuq/q.db "$OUT/q.db"
