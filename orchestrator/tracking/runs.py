"""Runs and their events: creation, lookup, the status machine, the queue (claim, requeue), heartbeats and lost runs.

Every status change is also recorded as a ``status`` event.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.errors import AmbiguousIdError, InputError, NotFoundError
from orchestrator.tracking import db
from orchestrator.tracking.entities import EventRecord, NewRun, RunRecord
from orchestrator.tracking.models import RUN_STATUSES, Run, RunEvent, RunTag
from orchestrator.tracking.session import SessionScope, aware, like_prefix, utcnow

# Which statuses a run may move to from each status. Enforced atomically with UPDATE … WHERE status IN (…), so two
# processes racing on one run cannot both win.
ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "planned": ("queued", "running", "failed", "cancelled"),
    "queued": ("running", "failed", "cancelled", "lost"),
    "running": ("succeeded", "failed", "cancelled", "lost"),
    "lost": ("queued", "failed", "cancelled"),
    "failed": ("queued",),
    "cancelled": ("queued",),
    "succeeded": (),
}
_ENDED = ("succeeded", "failed", "cancelled", "lost")
RUN_NAME_MAX = 200  # runs.name
# Run names are unique (`runs show NAME` is never ambiguous). A name already taken gets the first free "-2", "-3", …
# rather than a refusal: names come from specs that are launched again on purpose and from files the user does not
# control (import-lora); the run's id stays its stable handle. Two processes racing for one name: the loser retries.
_NAME_ATTEMPTS = 20
_LONGEST_SUFFIX = 12  # "-" and up to 11 digits


def new_run_id() -> str:
    return secrets.token_hex(6)


def find_run(session: Session, ref: str) -> Run:
    """The run row ``ref`` names (id, unique id prefix of 4+ characters, or unique name) in ``session``."""
    row = session.get(Run, ref)
    if row is not None:
        return row
    candidates: Sequence[Run] = ()
    if len(ref) >= 4:
        candidates = session.scalars(
            sa.select(Run).where(Run.id.like(like_prefix(ref), escape="\\")).limit(5)
        ).all()
    if not candidates:
        candidates = session.scalars(sa.select(Run).where(Run.name == ref).limit(5)).all()
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFoundError(f"no run {ref!r}", "list runs with `orchestrator runs list`")
    ids = ", ".join(c.id for c in candidates)
    raise AmbiguousIdError(f"{ref!r} matches several runs ({ids})", "give more characters of the run id")


class RunRepository(SessionScope):
    """Runs, the run queue and run events."""

    def create_run(self, new: NewRun) -> RunRecord:
        """Record a new run; a name another run has gets the first free ``-N`` suffix (recorded as an event)."""
        if new.status not in RUN_STATUSES:
            raise InputError(f"unknown run status {new.status!r}", f"use one of {', '.join(RUN_STATUSES)}")
        wanted = _checked_name(new.name)
        values = {f.name: getattr(new, f.name) for f in fields(NewRun)}
        values["id"] = new.id or new_run_id()
        values["tags"] = list(new.tags)
        values["created_at"] = new.created_at or utcnow()
        if new.status == "running" and new.source == "orchestrator":
            values["started_at"] = new.started_at or values["created_at"]
            values["heartbeat_at"] = values["created_at"]
        for attempt in range(_NAME_ATTEMPTS):
            try:
                with self._session(raise_conflicts=True) as session:
                    values["name"] = _free_name(session, wanted)
                    row = Run(**values, attempt=1)
                    session.add(row)
                    session.flush()
                    if new.source == "orchestrator":
                        session.add(RunEvent(run_id=row.id, at=utcnow(), kind="status", message=new.status))
                    if values["name"] != wanted:
                        session.add(RunEvent(run_id=row.id, at=utcnow(), kind="log",
                                             message=f"named {values['name']!r}: {wanted!r} is another run's name"))
                    return _run_record(row)
            except IntegrityError as error:
                if attempt + 1 < _NAME_ATTEMPTS and self._lost_name_race(values["id"], values["name"]):
                    continue
                raise db.describe_connection_error(self.url, error) from None
        raise AssertionError("unreachable")

    def _lost_name_race(self, run_id: str, name: str) -> bool:
        """After a failed insert: did another process take the name first (and not the id)?"""
        with self._session() as session:
            return (session.get(Run, run_id) is None
                    and session.scalar(sa.select(Run.id).where(Run.name == name)) is not None)

    def run_exists(self, run_id: str) -> bool:
        with self._session() as session:
            return session.get(Run, run_id) is not None

    def get_run(self, ref: str) -> RunRecord:
        """Find a run by id, unique id prefix (4+ characters) or unique name."""
        with self._session() as session:
            return _run_record(self._find_run(session, ref))

    def _find_run(self, session: Session, ref: str) -> Run:
        return find_run(session, ref)

    def list_runs(
        self, *, status: str | None = None, limit: int | None = None, tag: str | None = None
    ) -> list[RunRecord]:
        with self._session() as session:
            query = sa.select(Run).order_by(Run.created_at.desc(), Run.id)
            if status:
                query = query.where(Run.status == status)
            rows = session.scalars(query).all()
            # A tag counts whether the spec/launch gave it (runs.tags) or a person added it (run_tags).
            tagged = set(session.scalars(sa.select(RunTag.run_id).where(RunTag.tag == tag))) if tag else set()
            records = [_run_record(r) for r in rows if tag is None or tag in (r.tags or []) or r.id in tagged]
            return records[:limit] if limit else records

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        exit_code: int | None = None,
        error_summary: str | None = None,
        message: str | None = None,
        **fields_: Any,
    ) -> RunRecord:
        """Move a run to ``status`` if its current status allows it; records a status event."""
        if status not in RUN_STATUSES:
            raise InputError(f"unknown run status {status!r}", f"use one of {', '.join(RUN_STATUSES)}")
        allowed_from = [s for s, targets in ALLOWED_TRANSITIONS.items() if status in targets]
        now = utcnow()
        values: dict[str, Any] = dict(fields_, status=status)
        if status == "running":
            values.setdefault("started_at", now)
            values.setdefault("heartbeat_at", now)
        if status in _ENDED:
            values.setdefault("finished_at", now)
        if exit_code is not None:
            values["exit_code"] = exit_code
        if error_summary is not None:
            values["error_summary"] = error_summary
        with self._session() as session:
            result = session.execute(
                sa.update(Run).where(Run.id == run_id, Run.status.in_(allowed_from)).values(**values)
            )
            if result.rowcount != 1:
                row = session.get(Run, run_id)
                if row is None:
                    raise NotFoundError(f"no run {run_id!r}", "list runs with `orchestrator runs list`")
                raise InputError(
                    f"run {run_id} is {row.status}; it cannot become {status}",
                    f"from {row.status} a run may become: {', '.join(ALLOWED_TRANSITIONS[row.status]) or 'nothing'}",
                )
            session.add(RunEvent(run_id=run_id, at=now, kind="status", message=message or status))
            session.flush()
            return _run_record(session.get(Run, run_id))

    def update_run(self, run_id: str, **values: Any) -> RunRecord:
        """Set plain fields of a run (not its status: use :meth:`set_status`)."""
        if "status" in values:
            raise InputError("update_run cannot change the status", "use set_status")
        if "rating" in values and values["rating"] is not None and not 0 <= int(values["rating"]) <= 10:
            raise InputError(f"rating {values['rating']} is out of range", "a rating is 0 to 10")
        with self._session() as session:
            row = self._find_run(session, run_id)
            for key, value in values.items():
                if not hasattr(Run, key):
                    raise InputError(f"runs have no field {key!r}", None)
                setattr(row, key, list(value) if key == "tags" else value)
            session.flush()
            return _run_record(row)

    def heartbeat(self, run_id: str) -> str | None:
        """Beat the run's heartbeat; returns its status, so an executor sees a `runs cancel` from elsewhere."""
        with self._session() as session:
            session.execute(sa.update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))
            return session.scalar(sa.select(Run.status).where(Run.id == run_id))

    def mark_lost(self, heartbeat_timeout: timedelta) -> list[str]:
        """Mark running runs whose last heartbeat is older than the timeout as lost; returns their ids."""
        cutoff = utcnow() - heartbeat_timeout
        with self._session() as session:
            stale = session.scalars(
                sa.select(Run.id).where(Run.status == "running", Run.heartbeat_at < cutoff)
            ).all()
            lost = []
            for run_id in stale:
                result = session.execute(
                    sa.update(Run)
                    .where(Run.id == run_id, Run.status == "running", Run.heartbeat_at < cutoff)
                    .values(status="lost", finished_at=utcnow())
                )
                if result.rowcount == 1:
                    session.add(
                        RunEvent(run_id=run_id, at=utcnow(), kind="status", message="lost: no heartbeat")
                    )
                    lost.append(run_id)
            return lost

    # ---- the queue ------------------------------------------------------------------------------------------------

    def claim_run(self, worker: str, *, run_id: str | None = None, queue: str | None = None) -> RunRecord | None:
        """Take one queued run for ``worker`` (oldest first), or None when there is none.

        Exactly one worker gets a run: PostgreSQL locks the chosen row with FOR UPDATE SKIP LOCKED (concurrent
        workers skip it and take the next); SQLite transactions here begin IMMEDIATE, so the select and the update
        already run under the one write lock. The status update is conditional either way.
        """
        now = utcnow()
        with self._session() as session:
            query = sa.select(Run.id).where(Run.status == "queued").order_by(Run.created_at, Run.id).limit(1)
            if run_id:
                query = query.where(Run.id == run_id)
            if queue:
                query = query.where(Run.queue == queue)
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            chosen = session.scalars(query).first()
            if chosen is None:
                return None
            result = session.execute(
                sa.update(Run).where(Run.id == chosen, Run.status == "queued")
                .values(status="running", worker=worker, started_at=now, heartbeat_at=now, finished_at=None)
            )
            if result.rowcount != 1:
                return None
            session.add(RunEvent(run_id=chosen, at=now, kind="status", message=f"running (claimed by {worker})"))
            session.flush()
            return _run_record(session.get(Run, chosen))

    def requeue(self, run_ref: str) -> RunRecord:
        """Put a lost, failed or cancelled run back in the queue as a new attempt (its checkpoints are kept)."""
        with self._session() as session:
            row = self._find_run(session, run_ref)
            if row.status not in ("lost", "failed", "cancelled"):
                raise InputError(f"run {row.id} is {row.status}; only lost, failed or cancelled runs can be requeued",
                                 "wait for it to end, or cancel it first")
            result = session.execute(
                sa.update(Run).where(Run.id == row.id, Run.status == row.status).values(
                    status="queued", attempt=Run.attempt + 1, started_at=None, finished_at=None, heartbeat_at=None,
                    exit_code=None, error_summary=None, worker=None)
            )
            if result.rowcount != 1:
                raise InputError(f"run {row.id} changed while requeueing", "try again")
            session.add(RunEvent(run_id=row.id, at=utcnow(), kind="status",
                                 message=f"queued (attempt {row.attempt + 1})"))
            session.flush()
            session.refresh(row)
            return _run_record(row)

    # ---- events ---------------------------------------------------------------------------------------------------

    def record_event(
        self,
        run_id: str,
        kind: str,
        *,
        message: str | None = None,
        epoch: int | None = None,
        step: int | None = None,
        loss: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        with self._session() as session:
            row = RunEvent(
                run_id=run_id, at=utcnow(), kind=kind, epoch=epoch, step=step, loss=loss, message=message, data=data
            )
            session.add(row)
            session.flush()
            return _event_record(row)

    def events(self, run_id: str, *, after_id: int = 0, kind: str | None = None) -> list[EventRecord]:
        with self._session() as session:
            query = sa.select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.id > after_id)
            if kind:
                query = query.where(RunEvent.kind == kind)
            return [_event_record(r) for r in session.scalars(query.order_by(RunEvent.id))]


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("a run needs a name", "set the spec's name (or pass one)")
    if "\x00" in name:
        raise InputError(f"run name {name!r} contains a NUL character", "give a name without control characters")
    if len(name) > RUN_NAME_MAX:
        raise InputError(f"run name {name[:40]!r}… is {len(name)} characters, more than {RUN_NAME_MAX}",
                         "give a shorter name (the spec's name)")
    return name


def suffixed_name(name: str, number: int) -> str:
    """``name-N``, shortening ``name`` so that the whole fits runs.name."""
    tail = f"-{number}"
    return name[: RUN_NAME_MAX - len(tail)] + tail


def _free_name(session: Session, wanted: str) -> str:
    """``wanted`` if no run has it, else the first free ``wanted-N`` (N from 2)."""
    # the names a suffix could collide with: "wanted-…", or (a name shortened to fit) any with its stem
    stem = wanted + "-" if len(wanted) <= RUN_NAME_MAX - _LONGEST_SUFFIX else wanted[: RUN_NAME_MAX - _LONGEST_SUFFIX]
    taken = set(session.scalars(sa.select(Run.name).where(
        sa.or_(Run.name == wanted, Run.name.like(like_prefix(stem), escape="\\")))))
    if wanted not in taken:
        return wanted
    number = 2
    while suffixed_name(wanted, number) in taken:
        number += 1
    return suffixed_name(wanted, number)


def _run_record(row: Run) -> RunRecord:
    values = {f.name: getattr(row, f.name) for f in fields(RunRecord)}
    for key in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        values[key] = aware(values[key])
    values["tags"] = list(row.tags or [])
    return RunRecord(**values)


def _event_record(row: RunEvent) -> EventRecord:
    return EventRecord(
        id=row.id, run_id=row.run_id, at=aware(row.at), kind=row.kind, epoch=row.epoch, step=row.step,
        loss=row.loss, message=row.message, data=row.data,
    )
