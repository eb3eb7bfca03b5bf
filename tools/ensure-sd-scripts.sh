#!/usr/bin/env bash
# Make the pinned sd-scripts runnable for the tests on this CPU machine, once per pin set, outside the repository:
#   - the export of the pinned commit (../shared/vendor/sd-scripts-48d368fa.tar.gz, or $SD_SCRIPTS_TARBALL),
#     extracted with its .sd_scripts_commit;
#   - a venv with the CPU torch and sd-scripts' requirements at the versions known to work (tools/README-sd-scripts-cpu.md);
#   - the random SD1.5-shaped test model, built once with that venv.
# Prints the settings for the tests on stdout (SD_SCRIPTS_DIR=… SD_SCRIPTS_PYTHON=… ORCHESTRATOR_TEST_MODEL=…), what it
# does on stderr. Under CI (CI=true) a failure is an error; elsewhere it prints a note and prints no settings, and the
# sd-scripts tests skip saying why.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=48d368fa557731ad0488c07304dfeba8c07910eb
tarball=${SD_SCRIPTS_TARBALL:-$repo/../shared/vendor/sd-scripts-${commit:0:8}.tar.gz}
cache=${ORCHESTRATOR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lora-orchestrator}
pins=(torch==2.13.0 "accelerate==1.15.*" diffusers==0.32.1 transformers==4.54.1 tokenizers==0.21.4
      huggingface_hub==0.34.3 toml==0.10.2 voluptuous==0.15.2 imagesize==1.4.1 ftfy==6.3.1 safetensors einops
      opencv-python-headless pillow numpy tensorboard)
pin_hash=$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-12)
sd_dir=$cache/sd-scripts-${commit:0:12}
venv=$cache/sdvenv-$pin_hash
model=$cache/testmodel-sd15
log=$cache/ensure-sd-scripts.log

fail() {
  echo "sd-scripts for the tests: $1 (log: $log)" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "note: the sd-scripts tests will be skipped" >&2
  exit 0
}

mkdir -p "$cache" || fail "cannot create $cache"
exec 9> "$cache/ensure-sd-scripts.lock"
flock 9  # one set-up at a time (parallel test runs share the cache)

if [ ! -f "$sd_dir/.complete" ]; then
  [ -f "$tarball" ] || fail "no export of sd-scripts at $tarball (set SD_SCRIPTS_TARBALL)"
  echo "extracting $tarball to $sd_dir" >&2
  rm -rf "$sd_dir.tmp" && mkdir -p "$sd_dir.tmp" || fail "cannot write $sd_dir.tmp"
  tar -xzf "$tarball" -C "$sd_dir.tmp" --strip-components=1 >> "$log" 2>&1 || fail "cannot extract $tarball"
  [ -f "$sd_dir.tmp/train_network.py" ] || fail "$tarball holds no train_network.py"
  [ -f "$sd_dir.tmp/.sd_scripts_commit" ] || echo "$commit" > "$sd_dir.tmp/.sd_scripts_commit"
  [ "$(cat "$sd_dir.tmp/.sd_scripts_commit")" = "$commit" ] || fail "$tarball is not commit $commit"
  rm -rf "$sd_dir" && mv "$sd_dir.tmp" "$sd_dir" && touch "$sd_dir/.complete"
fi

if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv (CPU torch and sd-scripts' requirements; a few minutes once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >> "$log" 2>&1 || fail "cannot create a venv at $venv"
  # torch first and pinned in every call: nothing may pull a CUDA build
  "$venv/bin/pip" install -q torch==2.13.0 >> "$log" 2>&1 || fail "cannot install the CPU torch 2.13.0"
  "$venv/bin/pip" install -q "${pins[@]}" >> "$log" 2>&1 || fail "cannot install sd-scripts' requirements"
  touch "$venv/.complete"
fi

if [ ! -f "$model/.complete" ]; then
  echo "building the random SD1.5-shaped test model in $model (once)" >&2
  rm -rf "$model"
  PYTHONPATH=$repo "$venv/bin/python" -c "import sys; from orchestrator.testmodel import build_test_model; \
build_test_model(sys.argv[1])" "$model" >> "$log" 2>&1 || fail "cannot build the test model"
  touch "$model/.complete"
fi

echo "SD_SCRIPTS_DIR=$sd_dir SD_SCRIPTS_PYTHON=$venv/bin/python ORCHESTRATOR_TEST_MODEL=$model"
