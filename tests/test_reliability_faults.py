"""Faults the tool must survive, each against the real thing: a database server that accepts and never answers,
a lock another process holds, ten processes importing or migrating at once, an orchestrator killed with SIGKILL,
a full or read-only file system, a reader that closes the pipe early.

Each fault's outcome is asserted (what the user sees, what the database holds, which processes are left); wall-clock
limits appear only as hang guards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.tracking import db
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.store import TrackingStore

REPO = Path(__file__).resolve().parent.parent
HISTORY = REPO / "datasets" / "users_history_2025.toml"
STANDIN = Path(__file__).resolve().parent / "standins" / "fake_sd_scripts_trainer.py"
PARALLEL = 10
HANG_GUARD_SECONDS = 120


def _cli_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=HANG_GUARD_SECONDS)
    return process.returncode, out, err


# ---- a PostgreSQL "server" that accepts connections and never answers ---------------------------------------------


class SilentServer:
    """A TCP server on loopback that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_server_that_never_answers_fails_the_command_naming_the_host(silent_server):
    url = f"postgresql://me:hunter2@127.0.0.1:{silent_server.port}/tracking?connect_timeout=2"
    code, out, err = _finish(_cli_process("--database", url, "runs", "list"))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Error: no answer from the tracking database at 127.0.0.1:{silent_server.port} "
                               "within 2 s")
    assert "(hint: check that the server is up" in lines[0] and "connect_timeout" in lines[0]
    assert "hunter2" not in err and "me:***@" in err
    assert silent_server.accepted  # it did reach the silent server, not a refused port


def test_the_default_connect_timeout_applies_without_one_in_the_url(silent_server, monkeypatch):
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_SECONDS", 2)  # 15 s by default; lowered so that the test is quick
    url = f"postgresql://me:hunter2@127.0.0.1:{silent_server.port}/tracking"
    outcome: dict[str, object] = {}

    def invoke() -> None:
        outcome["result"] = CliRunner().invoke(cli, ["--database", url, "db", "current"])

    worker = threading.Thread(target=invoke, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_SECONDS)
    assert not worker.is_alive(), "the command hung on a server that never answers"
    result = outcome["result"]
    assert result.exit_code == 1
    assert f"Error: no answer from the tracking database at 127.0.0.1:{silent_server.port} within 2 s" in result.output
    assert "hunter2" not in result.output


def test_a_migration_behind_another_ones_lock_gives_up_with_a_hint(pg_databases, monkeypatch):
    url = pg_databases.create()
    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 1)
    holder = db.create_engine_for(db.resolve_url(url))
    with holder.connect() as connection, connection.begin():
        db.advisory_xact_lock(connection, "orchestrator:migrations")  # a `db upgrade` that is taking its time
        result = CliRunner().invoke(cli, ["--database", url, "db", "upgrade"])
    holder.dispose()
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("Error: the tracking database") and "locked by another process" in line
    assert "(hint: another command (a migration, an import) is holding it" in line
    assert len(line.splitlines()) == 1
    # and once the lock is free the same command goes through
    assert CliRunner().invoke(cli, ["--database", url, "db", "upgrade"]).exit_code == 0


# ---- ten processes at once -----------------------------------------------------------------------------------------


# One CLI process that has loaded everything it needs, then waits for the start signal (a file appearing), so that
# the ten processes run their commands at the same moment rather than one after another as they finish starting.
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
    return [_finish(p) for p in processes]


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
    created = [out for _, out, _ in results if "empty -> " in out]
    assert len(created) == 1  # one created the schema, the other nine found it there
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
        runs = store.list_runs()
        versions = [v for v in store.list_caption_versions() if v.source == "history"]
        with store.engine.connect() as connection:
            evaluations = connection.execute(
                sa.text("SELECT run_id, count(*) FROM evaluations GROUP BY run_id")).all()
    names = sorted(r.name for r in runs)
    assert len(names) == len(set(names)) and names  # every run once
    added = sorted(name for report in reports for name in report["runs_added"])
    assert added == names  # each run added by exactly one process; the others found it
    for report in reports:
        assert sorted(report["runs_added"] + report["runs_unchanged"]) == names
    assert sorted(label for report in reports for label in report["caption_versions_added"]) == sorted(
        v.label for v in versions)
    assert evaluations and all(count == 1 for _, count in evaluations)


# ---- an orchestrator killed with SIGKILL --------------------------------------------------------------------------

# A real orchestrator process: the local executor running the stand-in trainer, which hangs in its second epoch.
ORCHESTRATOR = """
import os, sys
from orchestrator.artifacts import open_store
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.tracking.store import TrackingStore
from pathlib import Path

db_url, artifacts_uri, run_id, work, standin, child_pid_file = sys.argv[1:]
work = Path(work)
command = TrainerCommand(
    argv=[sys.executable, standin, "--mode", "hang", "--spawn-child", child_pid_file],
    env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output", logging_dir=work / "logs",
    log_file=work / "train.log")
LocalTrainerRun(TrackingStore(db_url), open_store(artifacts_uri), run_id, command, heartbeat_seconds=0.5).run()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead for our purposes
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_trainer_dies_with_its_sigkilled_orchestrator_and_the_run_ends_lost(store, db_url, tmp_path):
    run = store.create_run(NewRun(name="killed-orchestrator", status="running", max_epochs=2))
    work = tmp_path / "work"
    work.mkdir()
    child_pid_file = tmp_path / "child.pid"
    orchestrator = subprocess.Popen(
        [sys.executable, "-c", ORCHESTRATOR, db_url, (tmp_path / "artifacts").as_uri(), run.id, str(work),
         str(STANDIN), str(child_pid_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(e.epoch == 2 for e in store.events(run.id, kind="epoch_start")), 60,
                  "the trainer's second epoch")
        trainers = [p for p in _children(orchestrator.pid) if "fake_sd_scripts_trainer" in _command_line(p)]
        assert len(trainers) == 1
        trainer, trainer_child = trainers[0], int(child_pid_file.read_text())
        assert _alive(trainer) and _alive(trainer_child)
        assert store.mark_lost(timedelta(seconds=5)) == []  # beating: not lost while its orchestrator lives

        orchestrator.send_signal(signal.SIGKILL)  # as the OOM killer does: no handler runs, nothing is cleaned up
        orchestrator.wait(30)
        killed_at = time.monotonic()
        # the watchdog stops the trainer's whole group: the trainer and the worker it forked
        _wait_for(lambda: not _alive(trainer) and not _alive(trainer_child), 30, "the orphaned trainer to stop")
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait()
    assert store.get_run(run.id).status == "running"  # nobody has looked yet
    time.sleep(max(0.0, killed_at + 2.5 - time.monotonic()))  # let its last heartbeat grow older than 2 s
    assert store.mark_lost(timedelta(seconds=2)) == [run.id]  # the staleness rule, with its threshold lowered
    assert store.get_run(run.id).status == "lost"


def test_a_trainer_that_ends_normally_leaves_no_watchdog_behind(store, tmp_path):
    from orchestrator.artifacts import open_store
    from orchestrator.executors.local import LocalTrainerRun, TrainerCommand

    run = store.create_run(NewRun(name="normal", status="running", max_epochs=1))
    work = tmp_path / "w"
    work.mkdir()
    command = TrainerCommand(
        argv=[sys.executable, str(STANDIN), "--epochs", "1", "--steps", "2"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output",
        logging_dir=work / "logs", log_file=work / "train.log")
    outcome = LocalTrainerRun(store, open_store((tmp_path / "a").as_uri()), run.id, command).run()
    assert outcome.status == "succeeded"
    watchdogs = [p for p in _children(os.getpid()) if "trainer_watchdog" in _command_line(p) and _alive(p)]
    assert watchdogs == []


# ---- a full, read-only file system ---------------------------------------------------------------------------------


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[callable]:
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        _mount_tmpfs(where, options)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output
    return lines[0]


def test_a_full_disk_is_one_line_with_a_hint(mounts):
    full = mounts("full", "size=64k")
    line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(full / "example")]))
    assert "no space left on the device" in line.lower()
    assert "(hint: " in line and "is safe" in line


def test_a_disk_out_of_inodes_names_the_path(mounts):
    full = mounts("inodes", "size=1m,nr_inodes=16")
    filler = full / "filler"
    filler.mkdir()
    with pytest.raises(OSError):  # take every inode there is
        for n in range(100):
            (filler / str(n)).touch()
    target = full / "example"
    line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(target)]))
    assert f"Error: {target}" in line and "no space left on the device" in line
    assert "(hint: free space there or choose another location; what was recorded before this is safe" in line


def test_a_read_only_file_system_names_the_path(mounts):
    read_only = mounts("ro", "ro,size=64k")
    target = read_only / "example"
    line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(target)]))
    assert line.startswith(f"Error: {target}") and "read-only" in line and "(hint: choose a writable location" in line


# ---- a reader that closes the pipe early ---------------------------------------------------------------------------


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    with TrackingStore(url) as store:  # enough output that it cannot all sit in the pipe's buffer
        run = store.create_run(NewRun(name="chatty", notes="a long note\n" * 200_000))
    writer = subprocess.Popen([sys.executable, "-m", "orchestrator", "--database", url, "runs", "show", run.id],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = subprocess.Popen(["head", "-c", "100"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # the reader holds the only read end: when it exits, the pipe is broken
    head, _ = reader.communicate(timeout=HANG_GUARD_SECONDS)
    _, err = writer.communicate(timeout=HANG_GUARD_SECONDS)
    assert head.startswith(b"id") and len(head) == 100
    assert err.decode() == ""  # no "Error: unexpected BrokenPipeError", no "Exception ignored" at exit
    assert writer.returncode == 141  # 128 + SIGPIPE, as a tool stopped by the closed pipe reports
