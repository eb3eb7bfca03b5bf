# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   - install into .venv and run the main job on the embedded defaults (SQLite + local artifact store)
#   make test   - install into .venv with the test extras, make sure PostgreSQL is up, set up the pinned sd-scripts
#                 (CPU venv, test model; cached outside the repo), run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test postgres bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'

postgres:
	@bash tools/ensure-test-services.sh

demo: install
	ORCHESTRATOR_HOME=$${ORCHESTRATOR_HOME:-$(CURDIR)/.work/demo-home} bash tools/demo.sh $(BIN)/orchestrator

# The pinned sd-scripts (from ../shared/vendor), a CPU venv for it and the test model, built once outside the repo;
# an explicit SD_SCRIPTS_DIR wins.
test: install-test postgres
	@sd_env=$$( [ -n "$${SD_SCRIPTS_DIR:-}" ] || bash tools/ensure-sd-scripts.sh ) || exit 1; \
	env $$sd_env $(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install-test postgres
	$(BIN)/python bench/bench_views.py

clean:
	rm -rf $(VENV) .work
