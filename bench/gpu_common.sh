# Sourced by the bench/gpu_*.sh scripts: install the carried wheels, point the tool at the carried sd-scripts
# export, and define small helpers. Run from the repository root on the GPU machine.
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
# the compiled metric kernels, built in place for this machine's Python (without a compiler: the numpy versions)
python3 setup.py -q build_ext --inplace > "$OUT/build_ext.log" 2>&1
python3 -c "from orchestrator.evaluation.metrics import compiled_kernels_in_use as c; \
print('metric kernels:', 'compiled' if c() else 'numpy versions (see build_ext.log)')"
export ORCHESTRATOR_HOME=/tmp/orch-home SD_SCRIPTS_DIR=$PWD/.sd-scripts SD_SCRIPTS_PYTHON=$(command -v python3)
orch() { python3 -m orchestrator "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(now)"; }
