"""Shared fixtures: every tracking test runs against SQLite and against the real PostgreSQL server.

PostgreSQL: $ORCHESTRATOR_TEST_PG_URL (default: the local server, trust auth). Each test session creates its own
fresh database and drops it at the end; tests that need an empty database create one of their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

def wait_for_port(port: int, process, what: str, seconds: float = 10.0) -> None:
    """Wait until a server the test started listens on 127.0.0.1:port; fail with its stderr if it does not."""
    import socket
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"{what} did not start: {process.stderr.read().decode(errors='replace')}")


#: The only skips CI accepts: what needs the GPU side (torch, diffusers: the `gpu` extra) or a GPU. Any other skip
#: under CI=true (a service that did not start, sd-scripts not set up, a missing tool) fails the run.
CI_ALLOWED_SKIPS = ("needs the gpu extra", "generation needs the gpu extra", "needs a GPU", "needs CUDA")
_skips: list[tuple[str, str]] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason.removeprefix("Skipped: ")))


def unexpected_skips(skips: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in skips if not any(a in reason for a in CI_ALLOWED_SKIPS)]


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("CI") != "true":
        return
    wrong = unexpected_skips(_skips)
    if wrong:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        write = reporter.write_line if reporter else print
        write(f"CI: {len(wrong)} test(s) skipped for a reason CI does not accept (allowed: GPU only):")
        for node, reason in wrong:
            write(f"  {node}: {reason}")
        session.exitstatus = 1


PG_SERVER_URL = os.environ.get("ORCHESTRATOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _admin_engine() -> sa.Engine:
    url = make_url(PG_SERVER_URL).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


class PgDatabases:
    """Creates throw-away databases on the test server and drops them afterwards."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"orch_test_{os.getpid()}_{secrets.token_hex(4)}"
        engine = _admin_engine()
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        engine = _admin_engine()
        with engine.connect() as connection:
            for name in self.created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    databases = PgDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_session_url(pg_databases: PgDatabases) -> str:
    """One migrated PostgreSQL database for the whole test session."""
    from orchestrator.tracking import db

    url = pg_databases.create()
    engine = db.create_engine_for(db.resolve_url(url))
    db.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, pg_databases: PgDatabases) -> str:
    """A brand-new, empty database (no schema) on the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_databases.create()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request) -> str:
    """A migrated database with no rows, on the backend under test."""
    from orchestrator.tracking import db

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tracking.db'}"
        engine = db.create_engine_for(db.resolve_url(url))
        db.upgrade(engine)
        engine.dispose()
        return url
    return request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session's migrated PostgreSQL database, emptied of rows."""
    from orchestrator.tracking import db
    from orchestrator.tracking.models import Base

    engine = db.create_engine_for(db.resolve_url(pg_session_url))
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_session_url


@pytest.fixture
def store(db_url: str):
    from orchestrator.tracking.store import TrackingStore

    with TrackingStore(db_url) as tracking_store:
        yield tracking_store


@pytest.fixture(scope="session")
def supabase_storage_server():
    """The real Supabase Storage server behind a /storage/v1 gateway, one per session (tests/services/)."""
    from services.supabase_storage import session_server

    yield from session_server(PG_SERVER_URL)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real per-user data directory or a database URL from the developer's environment."""
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "orchestrator-home"))
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_STORE", raising=False)
