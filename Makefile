# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   - install into .venv and run the main job on the embedded defaults (SQLite + local artifact store)
#   make test   - install into .venv with the test extras, make sure PostgreSQL is up, run the whole test suite
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

test: install-test postgres
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install-test postgres
	$(BIN)/python bench/bench_views.py

clean:
	rm -rf $(VENV) .work
