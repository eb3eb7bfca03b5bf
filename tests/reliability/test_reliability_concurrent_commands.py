"""Ten real CLI processes running the same command at the same moment, on SQLite and PostgreSQL: `db upgrade` of a
new database and `import-history` (documented as idempotent). Every process succeeds and each record exists once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.tracking import db
from orchestrator.tracking.store import TrackingStore

HISTORY = Path(__file__).resolve().parents[2] / "datasets" / "users_history_2025.toml"
PARALLEL = 10
HANG_GUARD_SECONDS = 300

# One CLI process that has loaded everything it needs, then waits for the start signal (a file appearing), so that
# the ten run their commands at the same moment rather than one after another as each finishes starting.
AT_THE_SIGNAL = """
import os, sys, time
import orchestrator.history, orchestrator.tracking.store, orchestrator.tracking.db, psycopg
from orchestrator.cli import cli
start_file, *args = sys.argv[1:]
print("ready", file=sys.stderr, flush=True)
while not os.path.exists(start_file):
    time.sleep(0.001)
cli(args, prog_name="orchestrator")
"""


def _parallel(tmp_path: Path, *args: str) -> list[tuple[int, str, str]]:
    start_file = tmp_path / "start"
    processes = [subprocess.Popen([sys.executable, "-c", AT_THE_SIGNAL, str(start_file), *args], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(PARALLEL)]
    for process in processes:
        assert process.stderr.readline() == "ready\n"
    start_file.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=HANG_GUARD_SECONDS)
        results.append((process.returncode, out, err))
    return results


@pytest.fixture
def fresh_db_url(backend: str, tmp_path: Path, pg_databases) -> str:
    """A database that does not exist yet (SQLite) or has no schema (PostgreSQL)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'tracking.db'}"
    return pg_databases.create()


def test_ten_parallel_migrations_of_a_new_database_all_succeed(fresh_db_url, tmp_path):
    results = _parallel(tmp_path, "--database", fresh_db_url, "db", "upgrade")
    assert [(code, err) for code, _, err in results] == [(0, "")] * PARALLEL
    head = db.head_revision()
    assert sum("empty -> " in out for _, out, _ in results) == 1  # one created the schema, nine found it there
    assert sum(f"already at {head}" in out for _, out, _ in results) == PARALLEL - 1
    engine = db.create_engine_for(db.resolve_url(fresh_db_url))
    assert db.current_revision(engine) == head
    engine.dispose()


def test_ten_parallel_history_imports_all_succeed_and_record_each_run_once(fresh_db_url, backend, tmp_path):
    if backend == "postgresql":  # SQLite's embedded default creates itself on first use; PostgreSQL is migrated
        assert CliRunner().invoke(cli, ["--database", fresh_db_url, "db", "upgrade"]).exit_code == 0
    results = _parallel(tmp_path, "--database", fresh_db_url, "import-history", str(HISTORY), "--json")
    assert [(code, err) for code, _, err in results] == [(0, "")] * PARALLEL
    reports = [json.loads(out) for _, out, _ in results]
    with TrackingStore(fresh_db_url) as store:
        names = sorted(r.name for r in store.list_runs())
        labels = sorted(v.label for v in store.list_caption_versions() if v.source == "history")
        with store.engine.connect() as connection:
            evaluations = connection.execute(
                sa.text("SELECT run_id, count(*) FROM evaluations GROUP BY run_id")).all()
    assert names and len(names) == len(set(names))  # every run once
    assert sorted(n for report in reports for n in report["runs_added"]) == names  # each added by one process
    for report in reports:
        assert sorted(report["runs_added"] + report["runs_unchanged"]) == names
    assert sorted(label for report in reports for label in report["caption_versions_added"]) == labels
    assert evaluations and all(count == 1 for _, count in evaluations)  # no run's scores recorded twice
