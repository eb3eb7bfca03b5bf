#!/bin/sh
# The worker image's entrypoint: claim the run the launcher named (ORCHESTRATOR_RUN_ID), else drain the queue.
# Exit codes are the worker's: 0 done (or nothing queued), 1 a run failed, 2 the named run is not queued.
# Database, store and their credentials come from the environment (ORCHESTRATOR_DATABASE_URL, ORCHESTRATOR_STORE,
# SUPABASE_*/AWS_*); extra arguments go to `orchestrator worker` (e.g. --queue h100).
set -eu
if [ -n "${ORCHESTRATOR_RUN_ID:-}" ]; then
    exec orchestrator worker --run-id "$ORCHESTRATOR_RUN_ID" "$@"
fi
exec orchestrator worker --loop "$@"
