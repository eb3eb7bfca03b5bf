"""The session scope every part of the tracking store shares: one engine, one transaction per unit of work.

Each repository of the store (runs, datasets, evaluations, views) is a :class:`SessionScope`; the facade
:class:`~orchestrator.tracking.store.TrackingStore` combines them over one engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.tracking import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything this store writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def like_prefix(ref: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching ids that start with ``ref`` taken literally."""
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SessionScope:
    """The engine behind one database URL and the one way to use it: :meth:`_session`."""

    def __init__(self, url: str | None = None) -> None:
        self.url = db.resolve_url(url)
        self.engine = db.create_engine_for(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self, *, raise_conflicts: bool = False) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back on any error; database errors become
        :class:`~orchestrator.errors.DatabaseError` (password masked).

        With ``raise_conflicts`` an :class:`~sqlalchemy.exc.IntegrityError` (another process inserted the same key
        first) is re-raised as it is, for a caller that retries.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as error:
            session.rollback()
            if raise_conflicts and isinstance(error, IntegrityError):
                raise
            raise db.describe_connection_error(self.url, error) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
