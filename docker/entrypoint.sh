#!/bin/sh
# The worker image's entrypoint: claim the run the launcher named (ORCHESTRATOR_RUN_ID), else drain the queue.
# Exit codes are the worker's: 0 done (or nothing queued), 1 a run failed, 2 the named run is not queued.
# Database, store and their credentials come from the environment (ORCHESTRATOR_DATABASE_URL, ORCHESTRATOR_STORE,
# SUPABASE_*/AWS_*); extra arguments go to `orchestrator worker` (e.g. --queue h100).
# Inside a RunPod pod (RUNPOD_POD_ID is set) the worker terminates its own pod when it ends: RunPod restarts a
# container whose process exits, so a pod left alone would run the worker again and keep billing.
set -u
if [ -n "${RUNPOD_POD_ID:-}" ]; then
    set -- --terminate-pod "$@"
fi
if [ -n "${ORCHESTRATOR_RUN_ID:-}" ]; then
    orchestrator worker --run-id "$ORCHESTRATOR_RUN_ID" "$@"
else
    orchestrator worker --loop "$@"
fi
code=$?
if [ -n "${RUNPOD_POD_ID:-}" ] && command -v runpodctl > /dev/null 2>&1; then
    runpodctl remove pod "$RUNPOD_POD_ID"  # only reached if the worker could not terminate the pod itself
fi
exit "$code"
