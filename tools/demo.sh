#!/usr/bin/env bash
# The main job on the embedded defaults: a SQLite tracking database and a local artifact store in
# $ORCHESTRATOR_HOME (the Makefile points it at .work/demo-home; unset, the per-user data directory is used).
set -euo pipefail
orchestrator=${1:-orchestrator}
cd "$(dirname "$0")/.."
echo "== tracking database"
"$orchestrator" db upgrade
echo "== the users' documented history"
"$orchestrator" import-history datasets/users_history_2025.toml
echo "== caption_version_effectiveness"
"$orchestrator" views caption_version_effectiveness
echo "== training_summary"
"$orchestrator" views training_summary
