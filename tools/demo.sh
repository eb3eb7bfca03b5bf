#!/usr/bin/env bash
# The main job on the embedded defaults: a SQLite tracking database and a local artifact store in
# $ORCHESTRATOR_HOME (the Makefile points it at .work/demo-home; unset, the per-user data directory is used).
# Idempotent: run it twice and nothing is recorded twice.
set -euo pipefail
orchestrator=${1:-orchestrator}
cd "$(dirname "$0")/.."
echo "== tracking database"
"$orchestrator" db upgrade
echo "== the users' documented history"
"$orchestrator" import-history datasets/users_history_2025.toml
"$orchestrator" views caption_version_effectiveness
echo "== snapshot the example dataset (two caption versions) and compare them"
"$orchestrator" dataset snapshot datasets/example/plain --label example-plain
"$orchestrator" dataset snapshot datasets/example/hex --label example-hex
"$orchestrator" captions diff example-plain example-hex | tail -n 3
"$orchestrator" captions lint datasets/example/plain | tail -n 1
echo "== plan a run of the users' CAPTION_FIX recipe on it"
"$orchestrator" plan kohya_configs/specs/example_plain.toml --out "${ORCHESTRATOR_HOME:-.work/demo-home}/plan" | tail -n 4
echo "== launch it"
if [ -n "${SD_SCRIPTS_DIR:-}" ] && [ -n "${ORCHESTRATOR_BASE_MODEL:-}" ]; then
  spec="${ORCHESTRATOR_HOME:-.work/demo-home}/example_run.toml"
  sed "s#^name = \"runwayml/stable-diffusion-v1-5\"#path = \"$ORCHESTRATOR_BASE_MODEL\"#" kohya_configs/specs/example_plain.toml \
    | sed "s#\.\./\.\./datasets#$PWD/datasets#" > "$spec"
  "$orchestrator" launch "$spec"
else
  echo "not launched: set SD_SCRIPTS_DIR=/path/to/sd-scripts (commit 48d368fa) and ORCHESTRATOR_BASE_MODEL=/path/to/model"
  echo "(a .safetensors file or diffusers folder; 'orchestrator testmodel build DIR' makes a random SD1.5-shaped one)"
  "$orchestrator" launch kohya_configs/specs/example_plain.toml 2>&1 | tail -n 1 || true
fi
"$orchestrator" views training_summary --limit 12
