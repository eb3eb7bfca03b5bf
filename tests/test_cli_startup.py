"""`orchestrator --help` starts fast: no help text imports SQLAlchemy, numpy, rich or the ORM models.

Each case runs in a fresh interpreter (this test process has imported all of them already) and reads that process's
sys.modules; the figures themselves are a bench (bench/bench_startup.py), not a timed test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import orchestrator

ROOT = Path(__file__).resolve().parent.parent

# The web stack of `orchestrator ui` (the [ui] extra) too: only the ui command itself may load it.
HEAVY = ("sqlalchemy", "numpy", "rich", "orchestrator.tracking.models", "starlette", "jinja2", "uvicorn",
         "orchestrator.ui")

# Runs the console script's entry point with the given arguments, then prints what it imported.
ENTRY_POINT_RUNNER = """
import json, sys
from orchestrator.cli import main
sys.argv = ["orchestrator", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code
print("\\n@@modules@@ " + json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""

# `--help` of every command and group in one process, the way a user asks for each.
EVERY_HELP_RUNNER = """
import contextlib, io, json, sys
import click
from orchestrator.cli import cli

def paths(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from paths(command, prefix + (name,))

helped = []
for path in paths(cli):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*path, "--help"], prog_name="orchestrator", standalone_mode=False)
    assert code == 0 and out.getvalue().startswith("Usage: orchestrator " + " ".join(path)), (path, out.getvalue())
    helped.append(" ".join(path))
print("@@modules@@ " + json.dumps({"helped": helped, "modules": sorted(sys.modules)}))
"""


def _run(runner: str, *args: str) -> tuple[str, dict]:
    done = subprocess.run([sys.executable, "-c", runner, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    output, _, report = done.stdout.rpartition("@@modules@@ ")
    return output, json.loads(report)


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("args", [("--help",), ("plan", "--help"), ("runs", "--help"), ("launch", "--help"),
                                  ("ui", "--help")])
def test_help_imports_nothing_heavy(args):
    output, report = _run(ENTRY_POINT_RUNNER, *args)
    assert report["exit"] == 0
    assert output.startswith("Usage: orchestrator ")
    assert _heavy(report["modules"]) == []


def test_every_commands_help_imports_nothing_heavy():
    _, report = _run(EVERY_HELP_RUNNER)
    assert {"plan", "runs list", "runs watch", "dataset snapshot", "score", "eval", "db upgrade", "ui"} <= set(
        report["helped"])
    assert _heavy(report["modules"]) == []


def test_the_runner_sees_heavy_imports():
    """The check above can fail: a command that opens the store imports SQLAlchemy in the same kind of process."""
    _, report = _run(ENTRY_POINT_RUNNER, "--database", "sqlite:///:memory:", "db", "current")
    assert "sqlalchemy" in report["modules"]


def test_version_is_the_one_in_pyproject():
    """__version__ is a literal (no importlib.metadata at start-up); pyproject.toml's version is the one it copies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    if "version" in project["project"]:
        assert orchestrator.__version__ == project["project"]["version"]
    else:  # a dynamic version must be read from the same literal
        assert "version" in project["project"]["dynamic"]
        assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "orchestrator.__version__"}
