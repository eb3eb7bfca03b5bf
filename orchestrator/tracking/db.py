"""Engines and migrations for the tracking database: SQLite (embedded default) or PostgreSQL/Supabase.

SQLite: WAL journal, a busy timeout and ``BEGIN IMMEDIATE`` transactions, so several local processes (a launch, a
worker, an eval) can record at once without "database is locked" errors.
PostgreSQL: psycopg 3 with prepared statements off, which the Supabase transaction pooler (port 6543) requires;
``sslmode`` and other libpq parameters in the URL are passed through unchanged; ``connect_timeout`` defaults to
:data:`CONNECT_TIMEOUT_SECONDS`, so a server that accepts connections but never answers fails a command instead of
hanging it. Migrations on PostgreSQL hold an advisory lock, so that parallel ``db upgrade`` runs one after another.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError

from orchestrator.config import Settings, mask_url
from orchestrator.errors import ConfigError, DatabaseError, SchemaOutOfDateError
from orchestrator.resources import MIGRATIONS_DIR

VERSION_TABLE = "alembic_version"
VERSION_TABLE_SCHEMA = "orchestrator_meta"  # PostgreSQL only: keeps Alembic's table out of `public`
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 15  # libpq's connect_timeout, unless the URL sets its own
LOCK_WAIT_SECONDS = 120  # how long a migration or an import waits for another process's, before it gives up
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires


def resolve_url(url: str | None) -> URL:
    """Parse a database URL, choosing psycopg 3 for PostgreSQL and creating the SQLite file's directory."""
    text = url or Settings.resolve().database_url
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigError(
            f"database URL {mask_url(text)!r} is not a URL",
            "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB (ORCHESTRATOR_DATABASE_URL or --database)",
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(drivername="sqlite")
    raise ConfigError(
        f"database URL {mask_url(text)!r} has an unsupported scheme {parsed.drivername!r}",
        "supported: sqlite:///PATH, postgresql://… (Supabase: use its pooler or direct connection string)",
    )


def create_engine_for(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _make_sqlite_concurrent(engine)
        return engine
    # prepare_threshold=None: the Supabase transaction pooler cannot keep prepared statements across transactions.
    connect_args: dict[str, object] = {"prepare_threshold": None}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def advisory_xact_lock(connection: sa.Connection, name: str, *, wait_seconds: float | None = None) -> None:
    """PostgreSQL: wait (at most ``wait_seconds``) for the transaction-scoped advisory lock ``name``; it is released
    when the connection's transaction ends. A transaction lock, not a session one, so that it also holds through the
    Supabase transaction pooler. The lock_timeout set here also bounds every other lock the transaction waits for."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    wait = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'")
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _switch_to_wal(cursor, attempts: int = 50) -> None:
    """``PRAGMA journal_mode=WAL``, retried: on a brand-new database file several processes switch it at once, and
    SQLite answers the losers "database is locked" at once instead of calling the busy handler (the mode is kept in
    the file, so this is only ever contended on first use)."""
    import sqlite3
    import time

    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05 + 0.01 * attempt)


def _make_sqlite_concurrent(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (so that they can begin IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: the WAL switch below may wait
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # Take the write lock up front: a deferred transaction that later upgrades to a writer fails with
        # SQLITE_BUSY at once when another process wrote in between, and the busy timeout cannot help it.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: sa.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _script_directory():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    return _script_directory().get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision_of(connection)


def _revision_of(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    schema = VERSION_TABLE_SCHEMA if connection.dialect.name == "postgresql" else None
    if not sa.inspect(connection).has_table(VERSION_TABLE, schema=schema):
        return None
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
    )
    return context.get_current_revision()


def is_empty(engine: Engine) -> bool:
    """True for a database with no tables at all (a new SQLite file, say)."""
    with engine.connect() as connection:
        return not sa.inspect(connection).get_table_names()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate up to ``revision``; returns the revisions before and after (read while no other migration runs)."""
    from alembic import command

    with engine.begin() as connection:
        _one_migration_at_a_time(connection)
        before = _revision_of(connection)
        command.upgrade(_alembic_config(connection), revision)
        return before, _revision_of(connection)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Migrate down to ``revision``; returns the revisions before and after."""
    from alembic import command

    with engine.begin() as connection:
        _one_migration_at_a_time(connection)
        before = _revision_of(connection)
        command.downgrade(_alembic_config(connection), revision)
        return before, _revision_of(connection)


def _one_migration_at_a_time(connection: sa.Connection) -> None:
    # PostgreSQL runs the whole migration in this transaction: a second process waits here, then reads the revision
    # the first one left and has nothing to do. (SQLite: BEGIN IMMEDIATE serializes it already.)
    if connection.dialect.name == "postgresql":
        advisory_xact_lock(connection, "orchestrator:migrations")


def check_schema_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not at this version's head, naming the fix."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaOutOfDateError(
            "the tracking database has no schema yet", "run `orchestrator db upgrade` to create it"
        )
    known = {script.revision for script in _script_directory().walk_revisions()}
    if current not in known:
        raise SchemaOutOfDateError(
            f"the tracking database is at revision {current}, which this version of orchestrator does not know",
            "upgrade orchestrator to the version that created this database",
        )
    raise SchemaOutOfDateError(
        f"the tracking database schema is at {current}, this version needs {head}",
        "run `orchestrator db upgrade`",
    )


def describe_connection_error(url: URL, error: Exception) -> DatabaseError:
    shown = mask_url(url.render_as_string(hide_password=True))
    original = getattr(error, "orig", None) or error
    detail = mask_url(" ".join(str(original).split()))
    if getattr(original, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
        return DatabaseError(
            f"the tracking database {shown} stayed locked by another process for too long ({detail})",
            "another command (a migration, an import) is holding it; wait for it to end and run this again",
        )
    if "timeout expired" in detail:
        timeout = url.query.get("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        return DatabaseError(
            f"no answer from the tracking database at {url.host}:{url.port or 5432} within {timeout} s ({shown})",
            "check that the server is up and that this host and port are its PostgreSQL port; on a slow network "
            "raise the timeout with ?connect_timeout=SECONDS in the URL",
        )
    return DatabaseError(
        f"cannot use the tracking database {shown}: {detail}",
        "check --database / ORCHESTRATOR_DATABASE_URL, that the server is up and the credentials are right",
    )
