"""The tracking store: the only code that talks to the tracking database.

Every public method is one unit of work in one transaction; ORM rows are turned into frozen records before they
leave. Database errors become :class:`~orchestrator.errors.DatabaseError` with the password masked.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import AmbiguousIdError, DatabaseError, InputError, NotFoundError, OrchestratorError
from orchestrator.tracking import db
from orchestrator.tracking.entities import (
    CaptionVersionRecord,
    CheckpointRecord,
    EpochScore,
    EventRecord,
    NewRun,
    ReferenceScore,
    RunRecord,
    ViewResult,
)
from orchestrator.tracking.models import (
    BLANK_SAMPLE_SQL,
    METRICS,
    RUN_STATUSES,
    CaptionVersion,
    Checkpoint,
    Evaluation,
    EvaluationSample,
    MetricAggregates,
    Prompt,
    PromptSuite,
    Run,
    RunEpochScore,
    RunEvent,
    SnapshotReferenceScore,
    TrainingStep,
)
from orchestrator.tracking.views import VIEW_COLUMNS, VIEW_ORDER, VIEW_TIMESTAMP_COLUMNS

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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything this store writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def new_run_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class SampleScore:
    """One scored image of an evaluation."""

    epoch: int
    prompt_id: int | None
    seed: int | None
    metrics: dict[str, float | None]
    image_uri: str | None = None
    image_24_uri: str | None = None


class TrackingStore:
    """The tracking database behind one URL (SQLite file or PostgreSQL)."""

    def __init__(self, url: str | None = None, *, check_schema: bool = True) -> None:
        self.url = db.resolve_url(url)
        self.engine = db.create_engine_for(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if check_schema:
            try:
                if self.dialect == "sqlite" and db.is_empty(self.engine):
                    db.upgrade(self.engine)  # the embedded default is created on first use
                db.check_schema_current(self.engine)
            except OrchestratorError:
                raise
            except SQLAlchemyError as error:
                raise db.describe_connection_error(self.url, error) from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "TrackingStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as error:
            session.rollback()
            raise db.describe_connection_error(self.url, error) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # ---- runs -------------------------------------------------------------------------------------------------

    def create_run(self, new: NewRun) -> RunRecord:
        if new.status not in RUN_STATUSES:
            raise InputError(f"unknown run status {new.status!r}", f"use one of {', '.join(RUN_STATUSES)}")
        values = {f.name: getattr(new, f.name) for f in fields(NewRun)}
        values["id"] = new.id or new_run_id()
        values["tags"] = list(new.tags)
        values["created_at"] = new.created_at or utcnow()
        if new.status == "running" and new.source == "orchestrator":
            values["started_at"] = new.started_at or values["created_at"]
            values["heartbeat_at"] = values["created_at"]
        with self._session() as session:
            row = Run(**values, attempt=1)
            session.add(row)
            session.flush()
            if new.source == "orchestrator":
                session.add(RunEvent(run_id=row.id, at=utcnow(), kind="status", message=new.status))
            return _run_record(row)

    def run_exists(self, run_id: str) -> bool:
        with self._session() as session:
            return session.get(Run, run_id) is not None

    def get_run(self, ref: str) -> RunRecord:
        """Find a run by id, unique id prefix (4+ characters) or unique name."""
        with self._session() as session:
            return _run_record(self._find_run(session, ref))

    def _find_run(self, session: Session, ref: str) -> Run:
        row = session.get(Run, ref)
        if row is not None:
            return row
        candidates: Sequence[Run] = ()
        if len(ref) >= 4:
            pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            candidates = session.scalars(sa.select(Run).where(Run.id.like(pattern, escape="\\")).limit(5)).all()
        if not candidates:
            candidates = session.scalars(sa.select(Run).where(Run.name == ref).limit(5)).all()
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFoundError(f"no run {ref!r}", "list runs with `orchestrator runs list`")
        ids = ", ".join(c.id for c in candidates)
        raise AmbiguousIdError(f"{ref!r} matches several runs ({ids})", "give more characters of the run id")

    def list_runs(
        self, *, status: str | None = None, limit: int | None = None, tag: str | None = None
    ) -> list[RunRecord]:
        with self._session() as session:
            query = sa.select(Run).order_by(Run.created_at.desc(), Run.id)
            if status:
                query = query.where(Run.status == status)
            rows = session.scalars(query).all()
            records = [_run_record(r) for r in rows if tag is None or tag in (r.tags or [])]
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

    # ---- the run queue -----------------------------------------------------------------------------------------

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

    # ---- events and checkpoints -------------------------------------------------------------------------------

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

    def add_checkpoint(
        self,
        run_id: str,
        *,
        uri: str,
        sha256: str,
        size_bytes: int,
        epoch: int | None = None,
        step: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CheckpointRecord:
        """Register a checkpoint; registering the same (run, epoch, sha256) again returns the existing one."""
        with self._session() as session:
            existing = session.scalars(
                sa.select(Checkpoint).where(
                    Checkpoint.run_id == run_id, Checkpoint.epoch == epoch, Checkpoint.sha256 == sha256
                )
            ).first()
            if existing is not None:
                return _checkpoint_record(existing)
            row = Checkpoint(
                run_id=run_id,
                epoch=epoch,
                step=step,
                uri=uri,
                sha256=sha256,
                size_bytes=size_bytes,
                metadata_json=metadata,
                created_at=utcnow(),
            )
            session.add(row)
            session.add(
                RunEvent(run_id=run_id, at=utcnow(), kind="checkpoint", epoch=epoch, step=step, message=uri)
            )
            session.flush()
            return _checkpoint_record(row)

    def record_training_steps(self, run_id: str, rows: Sequence[dict[str, Any]]) -> int:
        """Store per-step scalars (replacing any earlier copy of the same steps)."""
        steps = [row["step"] for row in rows]
        with self._session() as session:
            for start in range(0, len(steps), 500):
                session.execute(sa.delete(TrainingStep).where(TrainingStep.run_id == run_id,
                                                              TrainingStep.step.in_(steps[start:start + 500])))
            if rows:
                session.execute(sa.insert(TrainingStep), [{"run_id": run_id, **row} for row in rows])
            return len(rows)

    def training_steps(self, run_id: str) -> list[dict[str, Any]]:
        with self._session() as session:
            query = sa.select(TrainingStep).where(TrainingStep.run_id == run_id).order_by(TrainingStep.step)
            return [
                {"step": r.step, "epoch": r.epoch, "loss": r.loss, "average_loss": r.average_loss,
                 "learning_rate": r.learning_rate, "wall_time": r.wall_time}
                for r in session.scalars(query)
            ]

    def find_checkpoints(self, *, sha256: str | None = None, metadata_key: str | None = None,
                         metadata_value: Any = None) -> list[CheckpointRecord]:
        """Checkpoints with this content hash, or whose metadata has key = value (compared in Python, so the
        JSON column works the same on SQLite and PostgreSQL)."""
        with self._session() as session:
            query = sa.select(Checkpoint).order_by(Checkpoint.id)
            if sha256:
                query = query.where(Checkpoint.sha256 == sha256)
            rows = session.scalars(query).all()
            if metadata_key is not None:
                rows = [r for r in rows if (r.metadata_json or {}).get(metadata_key) == metadata_value]
            return [_checkpoint_record(r) for r in rows]

    def checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        with self._session() as session:
            query = sa.select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.epoch, Checkpoint.id)
            return [_checkpoint_record(r) for r in session.scalars(query)]

    # ---- caption versions ------------------------------------------------------------------------------------

    def ensure_caption_version(
        self,
        id: str,
        *,
        label: str | None = None,
        source: str = "snapshot",
        description: str | None = None,
        stats: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> CaptionVersionRecord:
        """Insert a caption version unless it exists (content-addressed ids make this idempotent)."""
        with self._session() as session:
            row = session.get(CaptionVersion, id)
            if row is None:
                row = CaptionVersion(
                    id=id,
                    label=label,
                    source=source,
                    description=description,
                    stats=stats,
                    created_at=utcnow(),
                    **(summary or {}),
                )
                session.add(row)
            elif label and not row.label:
                row.label = label
            session.flush()
            return _caption_version_record(row)

    def list_caption_versions(self) -> list[CaptionVersionRecord]:
        with self._session() as session:
            rows = session.scalars(sa.select(CaptionVersion).order_by(CaptionVersion.created_at, CaptionVersion.id))
            return [_caption_version_record(r) for r in rows]

    # ---- evaluation scores -----------------------------------------------------------------------------------

    def ensure_prompt_suite(
        self, name: str, prompts: Sequence[dict[str, Any]], *, description: str | None = None,
        content_sha256: str | None = None,
    ) -> dict[str, int]:
        """Record a prompt suite (once); returns prompt name -> prompt id."""
        with self._session() as session:
            suite = session.scalars(sa.select(PromptSuite).where(PromptSuite.name == name)).first()
            if suite is None:
                suite = PromptSuite(name=name, description=description, content_sha256=content_sha256,
                                    created_at=utcnow())
                session.add(suite)
                session.flush()
                for position, prompt in enumerate(prompts):
                    session.add(
                        Prompt(
                            suite_id=suite.id,
                            position=position,
                            name=prompt["name"],
                            text=prompt["text"],
                            negative=prompt.get("negative"),
                            seeds=list(prompt.get("seeds", [])),
                        )
                    )
                session.flush()
            elif content_sha256 and suite.content_sha256 and suite.content_sha256 != content_sha256:
                raise InputError(
                    f"prompt suite {name!r} is already recorded with different prompts",
                    "give the changed suite a new name so that old scores stay comparable",
                )
            rows = session.scalars(sa.select(Prompt).where(Prompt.suite_id == suite.id)).all()
            return {p.name: p.id for p in rows}

    def create_evaluation(
        self,
        run_id: str,
        *,
        mode: str,
        suite_name: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        sampler: str | None = None,
        width: int | None = None,
        height: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> int:
        with self._session() as session:
            suite_id = None
            if suite_name:
                suite_id = session.scalars(sa.select(PromptSuite.id).where(PromptSuite.name == suite_name)).first()
                if suite_id is None:
                    raise NotFoundError(f"no prompt suite {suite_name!r}", "record the suite first")
            row = Evaluation(
                run_id=run_id, suite_id=suite_id, mode=mode, steps=steps, cfg_scale=cfg_scale, sampler=sampler,
                width=width, height=height, settings=settings, created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return row.id

    def record_samples(self, evaluation_id: int, samples: Iterable[SampleScore]) -> int:
        """Store scored samples and bring run_epoch_scores and the run's best epoch up to date, atomically."""
        samples = list(samples)
        with self._session() as session:
            evaluation = session.get(Evaluation, evaluation_id)
            if evaluation is None:
                raise NotFoundError(f"no evaluation {evaluation_id}", None)
            now = utcnow()
            rows = []
            for sample in samples:
                unknown = set(sample.metrics) - set(METRICS)
                if unknown:
                    raise InputError(f"unknown metric(s) {sorted(unknown)}", f"metrics are {', '.join(METRICS)}")
                rows.append(
                    {
                        "evaluation_id": evaluation_id,
                        "run_id": evaluation.run_id,
                        "epoch": sample.epoch,
                        "prompt_id": sample.prompt_id,
                        "seed": sample.seed,
                        "image_uri": sample.image_uri,
                        "image_24_uri": sample.image_24_uri,
                        "created_at": now,
                        **{m: sample.metrics.get(m) for m in METRICS},
                    }
                )
            if rows:
                session.execute(sa.insert(EvaluationSample), rows)
            for epoch in sorted({s.epoch for s in samples}):
                _refresh_epoch_score(session, evaluation.run_id, epoch)
            _refresh_best_epoch(session, evaluation.run_id)
            return len(rows)

    def set_reported_epoch_score(self, run_id: str, epoch: int, *, unique_colors_24_mean: float) -> None:
        """Record a score the users reported without the images behind it (their notes)."""
        with self._session() as session:
            row = session.get(RunEpochScore, (run_id, epoch))
            if row is None:
                row = RunEpochScore(run_id=run_id, epoch=epoch, sample_count=0, reported=True)
                session.add(row)
            elif not row.reported:
                return  # real samples win over a reported figure
            row.unique_colors_24_mean = unique_colors_24_mean
            session.flush()
            _refresh_best_epoch(session, run_id)

    def epoch_scores(self, run_id: str) -> list[EpochScore]:
        with self._session() as session:
            rows = session.scalars(
                sa.select(RunEpochScore).where(RunEpochScore.run_id == run_id).order_by(RunEpochScore.epoch)
            )
            return [
                EpochScore(
                    run_id=r.run_id,
                    epoch=r.epoch,
                    sample_count=r.sample_count,
                    reported=bool(r.reported),
                    metrics=_metric_aggregates(r),
                    blank_count=r.blank_count,
                )
                for r in rows
            ]

    def record_snapshot_reference(self, snapshot_id: str, *, palette_size: int,
                                  metrics: Sequence[dict[str, float | None]]) -> ReferenceScore:
        """Store a snapshot's reference row from its training images' metrics (one dict per image), replacing any
        earlier one (the same images give the same figures). An upsert: two workers that start on the same snapshot
        at once both succeed."""
        if not metrics:
            raise InputError(f"dataset snapshot {snapshot_id[:12]} has no images to score", None)
        values: dict[str, Any] = {"snapshot_id": snapshot_id, "image_count": len(metrics),
                                  "palette_size": palette_size, "created_at": utcnow()}
        for metric in METRICS:
            present = [float(m[metric]) for m in metrics if m.get(metric) is not None]
            aggregates = (sum(present) / len(present), min(present), max(present)) if present else (None,) * 3
            values.update({f"{metric}_{agg}": value for agg, value in zip(("mean", "min", "max"), aggregates)})
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(SnapshotReferenceScore).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["snapshot_id"], set_={k: v for k, v in values.items() if k != "snapshot_id"})
        with self._session() as session:
            session.execute(statement)
            return _reference_record(session.get(SnapshotReferenceScore, snapshot_id))

    def snapshot_reference(self, snapshot_id: str) -> ReferenceScore | None:
        with self._session() as session:
            row = session.get(SnapshotReferenceScore, snapshot_id)
            return _reference_record(row) if row is not None else None

    def refresh_summaries(self) -> int:
        """Rebuild run_epoch_scores and every run's best epoch from evaluation_samples, set-based.

        Reported rows (the users' figures with no samples behind them) are kept unless samples now exist for that
        (run, epoch). Returns the number of (run, epoch) rows computed from samples.
        """
        aggregates = ", ".join(f"AVG({m}), MIN({m}), MAX({m})" for m in METRICS)
        columns = ", ".join(f"{m}_{agg}" for m in METRICS for agg in ("mean", "min", "max"))
        with self._session() as session:
            session.execute(sa.text(
                "DELETE FROM run_epoch_scores WHERE reported = :no OR EXISTS (SELECT 1 FROM evaluation_samples e "
                "WHERE e.run_id = run_epoch_scores.run_id AND e.epoch = run_epoch_scores.epoch)"
            ), {"no": False})
            inserted = session.execute(sa.text(
                f"INSERT INTO run_epoch_scores (run_id, epoch, sample_count, reported, {columns}, blank_count) "
                f"SELECT run_id, epoch, COUNT(*), :no, {aggregates}, {_BLANK_COUNT_SQL} FROM evaluation_samples "
                "GROUP BY run_id, epoch"
            ), {"no": False}).rowcount
            best = (
                "SELECT s.{col} FROM run_epoch_scores s WHERE s.run_id = runs.id AND s.unique_colors_24_mean IS NOT NULL "
                "AND COALESCE(s.blank_count, 0) = 0 "
                "ORDER BY s.unique_colors_24_mean, CASE WHEN s.palette_distance_mean IS NULL THEN 1 ELSE 0 END, "
                "s.palette_distance_mean, s.epoch LIMIT 1"
            )
            session.execute(sa.text(
                f"UPDATE runs SET best_epoch = ({best.format(col='epoch')}), "
                f"best_score = ({best.format(col='unique_colors_24_mean')})"
            ))
            return inserted

    # ---- views -------------------------------------------------------------------------------------------------

    def query_view(
        self, name: str, *, filters: dict[str, Any] | None = None, limit: int | None = None
    ) -> ViewResult:
        if name not in VIEW_COLUMNS:
            raise NotFoundError(f"no view {name!r}", f"views: {', '.join(VIEW_COLUMNS)}")
        columns = VIEW_COLUMNS[name]
        clauses, params = [], {}
        for i, (column, value) in enumerate((filters or {}).items()):
            if column not in columns:
                raise InputError(f"view {name} has no column {column!r}", f"columns: {', '.join(columns)}")
            clauses.append(f"{column} = :p{i}")
            params[f"p{i}"] = value
        sql = f"SELECT {', '.join(columns)} FROM {name}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {VIEW_ORDER[name]}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        # Only these columns need converting (timestamps: SQLite returns text); the rest pass through untouched,
        # which keeps a 10k-row view cheap to fetch.
        convert = [i for i, column in enumerate(columns) if column in VIEW_TIMESTAMP_COLUMNS]
        with self._session() as session:
            rows = [list(row) for row in session.execute(sa.text(sql), params)]
        for row in rows:
            for i in convert:
                row[i] = _plain(row[i])
        return ViewResult(name=name, columns=list(columns), rows=rows)


    # ---- datasets and caption versions ----
    # Snapshots and caption versions are content-addressed: recording the same content twice changes nothing.
    # Models and records are imported inside the methods so this section stays self-contained.

    def record_snapshot(self, snapshot: Any, caption_version: Any) -> Any:
        """Record a dataset snapshot, its images and its caption version (with entries) in one transaction.

        Idempotent. A caption label already used by another version is an error; a label asked for on content
        that already has another label keeps the old one and says so in ``notes``.
        """
        from sqlalchemy.exc import IntegrityError

        for attempt in (1, 2):
            session = self._sessions()
            try:
                result = self._record_snapshot(session, snapshot, caption_version)
                session.commit()
                return result
            except IntegrityError as error:
                session.rollback()
                if attempt == 2:
                    raise db.describe_connection_error(self.url, error) from None
                # Another process recorded the same content at the same moment: the retry finds its rows.
            except SQLAlchemyError as error:
                session.rollback()
                raise db.describe_connection_error(self.url, error) from None
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        raise AssertionError("unreachable")

    def _record_snapshot(self, session: Session, snapshot: Any, caption_version: Any) -> Any:
        from orchestrator.tracking.entities import RecordedSnapshot
        from orchestrator.tracking.models import CaptionEntry, DatasetSnapshot, SnapshotImage

        notes: list[str] = []
        label = caption_version.label
        if label:
            other = session.scalars(
                sa.select(CaptionVersion.id).where(CaptionVersion.label == label, CaptionVersion.id != caption_version.id)
            ).first()
            if other is not None:
                raise InputError(
                    f"caption label {label!r} is already used by caption version {other[:12]}",
                    f"choose another --label, or rename that version: orchestrator captions label {other[:12]} NEW",
                )
        version = session.get(CaptionVersion, caption_version.id)
        version_created = version is None
        if version is None:
            version = CaptionVersion(
                id=caption_version.id, label=label, source="snapshot", description=caption_version.description,
                stats=caption_version.stats, created_at=utcnow(), **caption_version.summary,
            )
            session.add(version)
            session.flush()
            if caption_version.entries:
                session.execute(sa.insert(CaptionEntry), [
                    {"caption_version_id": caption_version.id, "image_sha256": e.image_sha256, "caption": e.caption,
                     "caption_sha256": e.caption_sha256, "chars": e.chars, "tokens": e.tokens,
                     "hex_codes": e.hex_codes}
                    for e in caption_version.entries
                ])
        elif label and version.label is None:
            version.label = label
        elif label and version.label != label:
            notes.append(f"caption version {version.id[:12]} is already labelled {version.label!r}; kept that label "
                         f"(rename it with `orchestrator captions label {version.id[:12]} {label}`)")
        row = session.get(DatasetSnapshot, snapshot.id)
        snapshot_created = row is None
        if row is None:
            row = DatasetSnapshot(
                id=snapshot.id, label=snapshot.label, source_kind=snapshot.source_kind,
                source_path=snapshot.source_path, image_count=len(snapshot.images), total_bytes=snapshot.total_bytes,
                caption_version_id=caption_version.id, dataset_toml=snapshot.dataset_toml,
                archive_uri=snapshot.archive_uri, archive_sha256=snapshot.archive_sha256,
                archive_bytes=snapshot.archive_bytes, created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            if snapshot.images:
                session.execute(sa.insert(SnapshotImage), [
                    {"snapshot_id": snapshot.id, "path": i.path, "subset": i.subset, "sha256": i.sha256,
                     "size_bytes": i.size_bytes, "width": i.width, "height": i.height, "mode": i.mode,
                     "caption_sha256": i.caption_sha256}
                    for i in snapshot.images
                ])
        elif snapshot.label and row.label is None:
            row.label = snapshot.label
        elif snapshot.label and row.label != snapshot.label:
            notes.append(f"snapshot {row.id[:12]} is already labelled {row.label!r}; kept that label")
        session.flush()
        return RecordedSnapshot(
            snapshot=self._snapshot_record(row), caption_version=_caption_version_record(version),
            snapshot_created=snapshot_created, caption_version_created=version_created, notes=tuple(notes),
        )

    def get_snapshot(self, ref: str) -> Any:
        """Find a snapshot by full id, label (unless several snapshots share it) or unique id prefix (4+ chars)."""
        from orchestrator.tracking.models import DatasetSnapshot

        with self._session() as session:
            return self._snapshot_record(self._find_content(session, DatasetSnapshot, ref, "dataset snapshot",
                                                            "orchestrator dataset list"))

    def list_snapshots(self) -> list[Any]:
        from orchestrator.tracking.models import DatasetSnapshot

        with self._session() as session:
            rows = session.scalars(sa.select(DatasetSnapshot).order_by(DatasetSnapshot.created_at.desc(),
                                                                        DatasetSnapshot.id))
            return [self._snapshot_record(r) for r in rows]

    def snapshot_images(self, snapshot_id: str) -> list[Any]:
        from orchestrator.tracking.entities import SnapshotImageRecord
        from orchestrator.tracking.models import SnapshotImage

        with self._session() as session:
            rows = session.scalars(
                sa.select(SnapshotImage).where(SnapshotImage.snapshot_id == snapshot_id).order_by(SnapshotImage.path)
            )
            return [SnapshotImageRecord(
                snapshot_id=r.snapshot_id, path=r.path, subset=r.subset, sha256=r.sha256, size_bytes=r.size_bytes,
                width=r.width, height=r.height, mode=r.mode, caption_sha256=r.caption_sha256) for r in rows]

    def get_caption_version(self, ref: str) -> CaptionVersionRecord:
        """Find a caption version by full id, label or unique id prefix (4+ characters)."""
        with self._session() as session:
            return _caption_version_record(self._find_content(session, CaptionVersion, ref, "caption version",
                                                              "orchestrator captions list"))

    def caption_entries(self, version_id: str) -> list[Any]:
        from orchestrator.tracking.entities import CaptionEntryRecord
        from orchestrator.tracking.models import CaptionEntry

        with self._session() as session:
            rows = session.scalars(sa.select(CaptionEntry).where(CaptionEntry.caption_version_id == version_id)
                                   .order_by(CaptionEntry.image_sha256))
            return [CaptionEntryRecord(
                caption_version_id=r.caption_version_id, image_sha256=r.image_sha256, caption=r.caption,
                caption_sha256=r.caption_sha256, chars=r.chars, tokens=r.tokens, hex_codes=r.hex_codes) for r in rows]

    def caption_image_paths(self, version_id: str) -> dict[str, str]:
        """image sha256 → a path it had in a snapshot that used this caption version (first by path)."""
        from orchestrator.tracking.models import DatasetSnapshot, SnapshotImage

        with self._session() as session:
            rows = session.execute(
                sa.select(SnapshotImage.sha256, SnapshotImage.path)
                .join(DatasetSnapshot, DatasetSnapshot.id == SnapshotImage.snapshot_id)
                .where(DatasetSnapshot.caption_version_id == version_id)
                .order_by(SnapshotImage.path)
            ).all()
            paths: dict[str, str] = {}
            for sha, path in rows:
                paths.setdefault(sha, path)
            return paths

    def caption_label_owner(self, label: str) -> str | None:
        """The id of the caption version that has this label, if any."""
        with self._session() as session:
            return session.scalars(sa.select(CaptionVersion.id).where(CaptionVersion.label == label)).first()

    def label_caption_version(self, ref: str, label: str) -> CaptionVersionRecord:
        """Give a caption version a (unique) label, replacing any label it had."""
        label = label.strip()
        if not label or len(label) > 200:
            raise InputError(f"label {label!r} is empty or longer than 200 characters", "use a short name")
        with self._session() as session:
            row = self._find_content(session, CaptionVersion, ref, "caption version", "orchestrator captions list")
            other = session.scalars(
                sa.select(CaptionVersion.id).where(CaptionVersion.label == label, CaptionVersion.id != row.id)
            ).first()
            if other is not None:
                raise InputError(f"caption label {label!r} is already used by caption version {other[:12]}",
                                 f"choose another name, or rename {other[:12]} first")
            row.label = label
            session.flush()
            return _caption_version_record(row)

    @staticmethod
    def _find_content(session: Session, model: Any, ref: str, what: str, list_command: str) -> Any:
        # Exact id, then label, then id prefix: a label wins over a prefix that happens to match it.
        row = session.get(model, ref)
        if row is not None:
            return row
        candidates = session.scalars(sa.select(model).where(model.label == ref).limit(5)).all()
        if not candidates and len(ref) >= 4:
            pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            candidates = session.scalars(sa.select(model).where(model.id.like(pattern, escape="\\")).limit(5)).all()
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFoundError(f"no {what} {ref!r}", f"list them with `{list_command}`")
        ids = ", ".join(c.id[:16] for c in candidates)
        raise AmbiguousIdError(f"{ref!r} matches several {what}s ({ids})", "give more characters of the id")

    @staticmethod
    def _snapshot_record(row: Any) -> Any:
        from orchestrator.tracking.entities import DatasetSnapshotRecord

        return DatasetSnapshotRecord(
            id=row.id, label=row.label, source_kind=row.source_kind, source_path=row.source_path,
            image_count=row.image_count, total_bytes=row.total_bytes, caption_version_id=row.caption_version_id,
            dataset_toml=row.dataset_toml, archive_uri=row.archive_uri, archive_sha256=row.archive_sha256,
            archive_bytes=row.archive_bytes, created_at=_aware(row.created_at),
        )

    # ---- end of datasets and caption versions ----

    # ---- evaluation ----
    # Read-only queries for orchestrator.evaluation (resuming generation, contact sheets).

    def suite_samples(self, run_id: str, suite_name: str) -> list[dict[str, Any]]:
        """Every recorded sample of a run under a prompt suite: epoch, prompt (name), seed, evaluation id and mode,
        image URIs and metrics; ordered by epoch, prompt position, seed."""
        columns = [getattr(EvaluationSample, m) for m in METRICS]
        with self._session() as session:
            rows = session.execute(
                sa.select(EvaluationSample.epoch, Prompt.name, EvaluationSample.seed, EvaluationSample.evaluation_id,
                          Evaluation.mode, EvaluationSample.image_uri, EvaluationSample.image_24_uri, *columns)
                .join(Evaluation, Evaluation.id == EvaluationSample.evaluation_id)
                .join(PromptSuite, PromptSuite.id == Evaluation.suite_id)
                .outerjoin(Prompt, Prompt.id == EvaluationSample.prompt_id)
                .where(EvaluationSample.run_id == run_id, PromptSuite.name == suite_name)
                .order_by(EvaluationSample.epoch, Prompt.position, EvaluationSample.seed, EvaluationSample.id)
            ).all()
        keys = ("epoch", "prompt", "seed", "evaluation_id", "mode", "image_uri", "image_24_uri", *METRICS)
        return [dict(zip(keys, row)) for row in rows]

    def recorded_samples(self, run_id: str, suite_name: str, *, mode: str = "generate") -> set[tuple[int, str, int]]:
        """(epoch, prompt name, seed) of the samples of ``mode`` evaluations already recorded for run and suite."""
        return {(r["epoch"], r["prompt"], r["seed"]) for r in self.suite_samples(run_id, suite_name)
                if r["mode"] == mode and r["prompt"] is not None and r["seed"] is not None}

    # ---- end of evaluation ----


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        # SQLite returns view datetimes as text; normalise to ISO 8601 in UTC like PostgreSQL's.
        try:
            return _aware(datetime.fromisoformat(value)).isoformat()
        except ValueError:
            return value
    return value


_BLANK_COUNT_SQL = f"SUM(CASE WHEN {BLANK_SAMPLE_SQL} THEN 1 ELSE 0 END)"


def _refresh_epoch_score(session: Session, run_id: str, epoch: int) -> None:
    aggregates = [sa.func.count(EvaluationSample.id), sa.literal_column(_BLANK_COUNT_SQL)]
    for metric in METRICS:
        column = getattr(EvaluationSample, metric)
        aggregates += [sa.func.avg(column), sa.func.min(column), sa.func.max(column)]
    result = session.execute(
        sa.select(*aggregates).where(EvaluationSample.run_id == run_id, EvaluationSample.epoch == epoch)
    ).one()
    count, blank_count, values = result[0], result[1], result[2:]
    row = session.get(RunEpochScore, (run_id, epoch))
    if count == 0:
        if row is not None and not row.reported:
            session.delete(row)
        return
    if row is None:
        row = RunEpochScore(run_id=run_id, epoch=epoch)
        session.add(row)
    row.sample_count = count
    row.blank_count = int(blank_count)
    row.reported = False
    for i, metric in enumerate(METRICS):
        for j, agg in enumerate(("mean", "min", "max")):
            value = values[3 * i + j]
            setattr(row, f"{metric}_{agg}", float(value) if value is not None else None)
    session.flush()


def _refresh_best_epoch(session: Session, run_id: str) -> None:
    """Best epoch: lowest mean unique_colors_24; ties broken by lower mean palette_distance, then earlier epoch.

    Epochs with blank samples are left out (a black NaN image scores 1 colour); with none left, no best epoch.
    """
    best = session.execute(
        sa.select(RunEpochScore.epoch, RunEpochScore.unique_colors_24_mean)
        .where(RunEpochScore.run_id == run_id, RunEpochScore.unique_colors_24_mean.is_not(None),
               sa.func.coalesce(RunEpochScore.blank_count, 0) == 0)
        .order_by(
            RunEpochScore.unique_colors_24_mean,
            sa.case((RunEpochScore.palette_distance_mean.is_(None), 1), else_=0),
            RunEpochScore.palette_distance_mean,
            RunEpochScore.epoch,
        )
        .limit(1)
    ).first()
    session.execute(
        sa.update(Run)
        .where(Run.id == run_id)
        .values(best_epoch=best[0] if best else None, best_score=best[1] if best else None)
    )


def _metric_aggregates(row: MetricAggregates) -> dict[str, dict[str, float | None]]:
    return {m: {agg: getattr(row, f"{m}_{agg}") for agg in ("mean", "min", "max")} for m in METRICS}


def _reference_record(row: SnapshotReferenceScore) -> ReferenceScore:
    return ReferenceScore(
        snapshot_id=row.snapshot_id, image_count=row.image_count, palette_size=row.palette_size,
        metrics=_metric_aggregates(row),
        created_at=_aware(row.created_at),
    )


def _run_record(row: Run) -> RunRecord:
    values = {f.name: getattr(row, f.name) for f in fields(RunRecord)}
    for key in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        values[key] = _aware(values[key])
    values["tags"] = list(row.tags or [])
    return RunRecord(**values)


def _event_record(row: RunEvent) -> EventRecord:
    return EventRecord(
        id=row.id, run_id=row.run_id, at=_aware(row.at), kind=row.kind, epoch=row.epoch, step=row.step,
        loss=row.loss, message=row.message, data=row.data,
    )


def _checkpoint_record(row: Checkpoint) -> CheckpointRecord:
    return CheckpointRecord(
        id=row.id, run_id=row.run_id, epoch=row.epoch, step=row.step, uri=row.uri, sha256=row.sha256,
        size_bytes=row.size_bytes, metadata=row.metadata_json, created_at=_aware(row.created_at),
    )


def _caption_version_record(row: CaptionVersion) -> CaptionVersionRecord:
    values = {f.name: getattr(row, f.name) for f in fields(CaptionVersionRecord)}
    values["created_at"] = _aware(values["created_at"])
    return CaptionVersionRecord(**values)


def this_host() -> str:
    return socket.gethostname()


__all__ = ["TrackingStore", "SampleScore", "ALLOWED_TRANSITIONS", "new_run_id", "utcnow", "this_host", "DatabaseError"]
