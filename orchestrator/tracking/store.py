"""The tracking store: the only code that talks to the tracking database.

:class:`TrackingStore` is the one entry point. It is made of one repository per concern, each a
:class:`~orchestrator.tracking.session.SessionScope` over the same engine:

- :mod:`~orchestrator.tracking.runs`: runs, their status machine, the queue, heartbeats and lost runs, events;
- :mod:`~orchestrator.tracking.checkpoints`: checkpoints and per-step training scalars;
- :mod:`~orchestrator.tracking.datasets`: dataset snapshots and caption versions;
- :mod:`~orchestrator.tracking.evaluations`: prompt suites, evaluation samples, epoch scores and best epochs,
  snapshots' reference scores;
- :mod:`~orchestrator.tracking.verdicts`: what people decide about runs (ratings, epoch marks, notes, tags);
- :mod:`~orchestrator.tracking.views`: the read side of the SQL views;
- :mod:`~orchestrator.tracking.pages`: the review UI's page reads (a bounded number of queries per page).

Sweeps, when they come, follow the same pattern: a ``SweepRepository`` in ``tracking/sweeps.py``, its records in
``tracking/entities.py``, added to the bases below.

Every public method is one unit of work in one transaction; ORM rows are turned into frozen records
(:mod:`~orchestrator.tracking.entities`) before they leave. Database errors become
:class:`~orchestrator.errors.DatabaseError` with the password masked.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from orchestrator.errors import OrchestratorError
from orchestrator.tracking import db, locks
from orchestrator.tracking.checkpoints import CheckpointRepository
from orchestrator.tracking.datasets import DatasetRepository
from orchestrator.tracking.evaluations import EvaluationRepository
from orchestrator.tracking.pages import PageRepository
from orchestrator.tracking.runs import RunRepository
from orchestrator.tracking.verdicts import VerdictRepository
from orchestrator.tracking.views import ViewRepository


class TrackingStore(PageRepository, RunRepository, CheckpointRepository, DatasetRepository, EvaluationRepository,
                    VerdictRepository, ViewRepository):
    """The tracking database behind one URL (SQLite file or PostgreSQL)."""

    def __init__(self, url: str | None = None, *, check_schema: bool = True) -> None:
        super().__init__(url)
        if check_schema:
            try:
                if self.dialect == "sqlite" and db.is_empty(self.engine):
                    db.upgrade(self.engine)  # the embedded default is created on first use
                db.check_schema_current(self.engine)
            except OrchestratorError:
                raise
            except SQLAlchemyError as error:
                raise db.describe_connection_error(self.url, error) from None

    def exclusive(self, name: str):
        """A context manager: its block runs while no other process runs one under ``name`` on this database."""
        return locks.exclusive(self.engine, self.url, name)

    def __enter__(self) -> TrackingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["TrackingStore"]
