"""One process at a time, across processes: for work that reads, then writes what it did not find (the history
import), which two processes would otherwise both try to insert.

PostgreSQL: a transaction-scoped advisory lock, held on a connection of its own while the work runs on others.
SQLite: ``flock`` on a lock file beside the database file (never on the database file itself: closing any
descriptor of it would drop SQLite's own POSIX locks of this process). Both wait at most
:data:`~orchestrator.tracking.db.LOCK_WAIT_SECONDS` and then fail with a :class:`~orchestrator.errors.DatabaseError`.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.config import mask_url
from orchestrator.errors import DatabaseError
from orchestrator.tracking import db

_POLL_SECONDS = 0.05


@contextmanager
def exclusive(engine: Engine, url: URL, name: str, *, wait_seconds: float | None = None) -> Iterator[None]:
    """Run the block while no other process runs a block under the same ``name`` on this database."""
    wait_seconds = db.LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, url, name, wait_seconds):
            yield
        return
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield  # an in-memory database has one process
        return
    with _file_lock(Path(f"{Path(database).expanduser()}.lock"), name, wait_seconds):
        yield


@contextmanager
def _advisory_lock(engine: Engine, url: URL, name: str, wait_seconds: float) -> Iterator[None]:
    try:
        connection = engine.connect()
        connection.begin()
        db.advisory_xact_lock(connection, name, wait_seconds=wait_seconds)
    except SQLAlchemyError as error:
        raise db.describe_connection_error(url, error) from None
    try:
        yield
    finally:
        try:
            connection.rollback()  # ends the transaction, which releases the lock
        finally:
            connection.close()


@contextmanager
def _file_lock(path: Path, name: str, wait_seconds: float) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatabaseError(
                        f"another process has held {mask_url(str(path))} ({name}) for more than {wait_seconds:.0f} s",
                        "wait for the other command to end and run this again",
                    ) from None
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # releases the lock
