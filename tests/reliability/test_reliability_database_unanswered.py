"""A PostgreSQL server that accepts connections and never answers, and a lock another process holds: the command
fails within its timeout with one line naming the host (password masked) and a hint, instead of hanging.

Timeouts are lowered for the tests; what is asserted is the outcome, wall-clock limits are only hang guards.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.tracking import db

HANG_GUARD_SECONDS = 120


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
    done = subprocess.run([sys.executable, "-m", "orchestrator", "--database", url, "runs", "list"],
                          capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: no answer from the tracking database at 127.0.0.1:{silent_server.port} "
                               "within 2 s")
    assert "(hint: check that the server is up" in lines[0] and "connect_timeout" in lines[0]
    assert "hunter2" not in done.stderr and "me:***@" in done.stderr
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
    assert "hunter2" not in result.output and len(result.output.strip().splitlines()) == 1


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
