"""Read models for the review UI's pages: each page's data in a bounded number of queries, no query per row.

The UI (:mod:`orchestrator.ui.queries`) shapes these records for its templates; the SQL stays here, and ORM rows are
turned into frozen records before they leave, like every other repository of the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orchestrator.errors import InputError, NotFoundError
from orchestrator.tracking.checkpoints import _checkpoint_record
from orchestrator.tracking.entities import CheckpointRecord, EpochScore, EventRecord, Record, ReferenceScore, RunRecord
from orchestrator.tracking.evaluations import _metric_aggregates, _reference_record
from orchestrator.tracking.models import (
    METRICS,
    CaptionVersion,
    Checkpoint,
    DatasetSnapshot,
    Evaluation,
    EvaluationSample,
    Prompt,
    Run,
    RunEpochScore,
    RunEvent,
    RunRating,
    RunTag,
    SnapshotImage,
    SnapshotReferenceScore,
    TrainingStep,
)
from orchestrator.tracking.runs import RunRepository, _event_record, _run_record
from orchestrator.tracking.session import aware, like_prefix

RUN_SORTS = ("created", "best", "rating", "name")
PAGE_SIZE_MAX = 200
EVENTS_SHOWN = 500  # the newest events of a run page; progress events beyond the last are dropped first


@dataclass(frozen=True)
class RunFilter:
    """The Runs page's filters, as the query string gives them (every field optional)."""

    status: str | None = None
    tag: str | None = None
    caption_version: str | None = None  # id, id prefix or label
    preset: str | None = None
    base_family: str | None = None
    network_dim: int | None = None
    min_rating: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    text: str | None = None  # over name and notes


@dataclass(frozen=True)
class RunsPage(Record):
    runs: list[RunRecord]
    total: int
    caption_labels: dict[str, str | None]  # caption version id -> label, for the listed runs
    ratings: dict[str, int | None] = field(default_factory=dict)  # run id -> latest entered, else imported
    entered_tags: dict[str, list[str]] = field(default_factory=dict)  # run id -> tags people added (run_tags)


@dataclass(frozen=True)
class SampleRecord(Record):
    id: int
    epoch: int
    prompt: str | None
    prompt_position: int | None
    seed: int | None
    mode: str
    image_uri: str | None
    image_24_uri: str | None
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class RunPage(Record):
    run: RunRecord
    caption_label: str | None
    parent_name: str | None
    events: list[EventRecord]
    checkpoints: list[CheckpointRecord]
    epoch_scores: list[EpochScore]
    reference: ReferenceScore | None
    samples: list[SampleRecord]
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineRow(Record):
    id: str
    name: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class PageRepository(RunRepository):
    """The UI's reads: one session and a fixed handful of queries per page (runs found as the CLI finds them)."""

    def runs_page(self, filters: RunFilter, *, sort: str = "created", offset: int = 0,
                  limit: int = 50) -> RunsPage:
        if sort not in RUN_SORTS:
            raise InputError(f"unknown sort {sort!r}", f"sort by one of {', '.join(RUN_SORTS)}")
        limit = max(1, min(int(limit), PAGE_SIZE_MAX))
        with self._session() as session:
            where = self._run_conditions(session, filters)
            total = session.scalar(sa.select(sa.func.count()).select_from(Run).where(*where))
            rating = _rating_expression().label("effective_rating")
            order = {
                "created": (Run.created_at.desc(), Run.id),
                "best": (Run.best_score.is_(None), Run.best_score, Run.id),
                "rating": (rating.is_(None), rating.desc(), Run.created_at.desc(), Run.id),
                "name": (Run.name, Run.id),
            }[sort]
            rows = session.execute(sa.select(Run, rating).where(*where).order_by(*order)
                                   .offset(max(0, offset)).limit(limit)).all()
            runs = [_run_record(r) for r, _ in rows]
            ratings = {r.id: value for r, value in rows}
            ids = {r.caption_version_id for r in runs if r.caption_version_id}
            labels = dict(session.execute(sa.select(CaptionVersion.id, CaptionVersion.label)
                                          .where(CaptionVersion.id.in_(ids))).all()) if ids else {}
            entered: dict[str, list[str]] = {}
            if runs:
                for run_id, tag in session.execute(sa.select(RunTag.run_id, RunTag.tag)
                                                   .where(RunTag.run_id.in_(list(ratings)))
                                                   .order_by(RunTag.run_id, RunTag.tag)):
                    entered.setdefault(run_id, []).append(tag)
        return RunsPage(runs=runs, total=int(total or 0), caption_labels=labels, ratings=ratings,
                        entered_tags=entered)

    def _run_conditions(self, session: Session, f: RunFilter) -> list[Any]:
        where: list[Any] = []
        if f.status:
            where.append(Run.status == f.status)
        if f.preset:
            where.append(Run.preset == f.preset)
        if f.base_family:
            where.append(Run.base_model_family == f.base_family)
        if f.network_dim is not None:
            where.append(Run.network_dim == f.network_dim)
        if f.min_rating is not None:
            where.append(_rating_expression() >= f.min_rating)
        if f.created_from is not None:
            where.append(Run.created_at >= f.created_from)
        if f.created_to is not None:
            where.append(Run.created_at <= f.created_to)
        if f.text:
            pattern = "%" + like_prefix(f.text.lower())  # like_prefix escapes and appends the trailing %
            where.append(sa.or_(sa.func.lower(Run.name).like(pattern, escape="\\"),
                                sa.func.lower(sa.func.coalesce(Run.notes, "")).like(pattern, escape="\\")))
        if f.caption_version:
            ref = f.caption_version
            where.append(Run.caption_version_id.in_(
                sa.select(CaptionVersion.id).where(sa.or_(CaptionVersion.id == ref, CaptionVersion.label == ref,
                                                          CaptionVersion.id.like(like_prefix(ref), escape="\\")))))
        if f.tag:  # given by the spec/launch (runs.tags) or added by a person (run_tags)
            where.append(sa.or_(_has_tag(session, f.tag),
                                Run.id.in_(sa.select(RunTag.run_id).where(RunTag.tag == f.tag))))
        return where

    def run_page(self, ref: str) -> RunPage:
        with self._session() as session:
            row = self._find_run(session, ref)
            run = _run_record(row)
            caption_label = (session.scalar(sa.select(CaptionVersion.label)
                                            .where(CaptionVersion.id == run.caption_version_id))
                             if run.caption_version_id else None)
            parent_name = (session.scalar(sa.select(Run.name).where(Run.id == run.parent_run_id))
                           if run.parent_run_id else None)
            events = [_event_record(e) for e in session.scalars(
                sa.select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind != "progress")
                .order_by(RunEvent.id.desc()).limit(EVENTS_SHOWN))][::-1]
            last_progress = session.scalars(sa.select(RunEvent).where(RunEvent.run_id == run.id,
                                                                      RunEvent.kind == "progress")
                                            .order_by(RunEvent.id.desc()).limit(1)).first()
            if last_progress is not None:
                events.append(_event_record(last_progress))
                events.sort(key=lambda e: e.id)
            checkpoints = [_checkpoint_record(c) for c in session.scalars(
                sa.select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.epoch, Checkpoint.id))]
            scores = [_epoch_score(s) for s in session.scalars(
                sa.select(RunEpochScore).where(RunEpochScore.run_id == run.id).order_by(RunEpochScore.epoch))]
            reference_row = (session.get(SnapshotReferenceScore, run.dataset_snapshot_id)
                             if run.dataset_snapshot_id else None)
            reference = _reference_record(reference_row) if reference_row is not None else None
            samples = self._samples(session, [run.id])[run.id]
            steps = [{"step": s, "epoch": e, "loss": loss, "average_loss": avg} for s, e, loss, avg in session.execute(
                sa.select(TrainingStep.step, TrainingStep.epoch, TrainingStep.loss, TrainingStep.average_loss)
                .where(TrainingStep.run_id == run.id).order_by(TrainingStep.step))]
        return RunPage(run=run, caption_label=caption_label, parent_name=parent_name, events=events,
                       checkpoints=checkpoints, epoch_scores=scores, reference=reference, samples=samples,
                       steps=steps)

    def compare_page(self, refs: list[str]) -> tuple[list[RunRecord], dict[str, list[SampleRecord]],
                                                        dict[str, list[EpochScore]]]:
        """Runs (in the order given), their samples and epoch scores: three queries whatever the count."""
        with self._session() as session:
            runs = [_run_record(self._find_run(session, ref)) for ref in refs]
            ids = [r.id for r in runs]
            samples = self._samples(session, ids)
            scores: dict[str, list[EpochScore]] = {i: [] for i in ids}
            for s in session.scalars(sa.select(RunEpochScore).where(RunEpochScore.run_id.in_(ids))
                                     .order_by(RunEpochScore.run_id, RunEpochScore.epoch)):
                scores[s.run_id].append(_epoch_score(s))
        return runs, samples, scores

    @staticmethod
    def _samples(session: Session, run_ids: list[str]) -> dict[str, list[SampleRecord]]:
        columns = [getattr(EvaluationSample, m) for m in METRICS]
        found: dict[str, list[SampleRecord]] = {i: [] for i in run_ids}
        rows = session.execute(
            sa.select(EvaluationSample.run_id, EvaluationSample.id, EvaluationSample.epoch, Prompt.name,
                      Prompt.position, EvaluationSample.seed, Evaluation.mode, EvaluationSample.image_uri,
                      EvaluationSample.image_24_uri, *columns)
            .join(Evaluation, Evaluation.id == EvaluationSample.evaluation_id)
            .outerjoin(Prompt, Prompt.id == EvaluationSample.prompt_id)
            .where(EvaluationSample.run_id.in_(run_ids))
            .order_by(EvaluationSample.epoch, Prompt.position, EvaluationSample.seed, EvaluationSample.id))
        for run_id, sid, epoch, prompt, position, seed, mode, uri, uri24, *values in rows:
            found[run_id].append(SampleRecord(id=sid, epoch=epoch, prompt=prompt, prompt_position=position,
                                              seed=seed, mode=mode, image_uri=uri, image_24_uri=uri24,
                                              metrics=dict(zip(METRICS, values))))
        return found

    def sample_image_uri(self, sample_id: int, size: str) -> str | None:
        """The recorded URI of a sample's image (``full`` or ``24``); NotFoundError for an unknown sample."""
        with self._session() as session:
            row = session.execute(sa.select(EvaluationSample.image_uri, EvaluationSample.image_24_uri)
                                  .where(EvaluationSample.id == sample_id)).first()
        if row is None:
            raise NotFoundError(f"no evaluation sample {sample_id}", "open the run's page for its images")
        return row[1] if size == "24" else row[0]

    def sheet_uri(self, event_id: int) -> str | None:
        """The contact sheet an ``evaluation`` event recorded (``data.sheet_uri``)."""
        with self._session() as session:
            row = session.get(RunEvent, event_id)
            if row is None:
                raise NotFoundError(f"no run event {event_id}", "open the run's page for its contact sheets")
            return (row.data or {}).get("sheet_uri")

    def snapshot_image_path(self, snapshot_id: str, image_sha256: str) -> tuple[str, str | None]:
        """(path inside the snapshot, the snapshot's archive URI) of one of its images, by content hash."""
        with self._session() as session:
            row = session.execute(
                sa.select(SnapshotImage.path, DatasetSnapshot.archive_uri)
                .join(DatasetSnapshot, DatasetSnapshot.id == SnapshotImage.snapshot_id)
                .where(SnapshotImage.snapshot_id == snapshot_id, SnapshotImage.sha256 == image_sha256)
                .order_by(SnapshotImage.path).limit(1)).first()
        if row is None:
            raise NotFoundError(f"snapshot {snapshot_id[:12]} has no image {image_sha256[:12]}",
                                "open the snapshot's page for its images")
        return row[0], row[1]

    def checkpoint_uri(self, checkpoint_id: int) -> CheckpointRecord:
        with self._session() as session:
            row = session.get(Checkpoint, checkpoint_id)
            if row is None:
                raise NotFoundError(f"no checkpoint {checkpoint_id}", "open the run's page for its checkpoints")
            return _checkpoint_record(row)

    def timeline(self, *, limit: int = 5000) -> list[TimelineRow]:
        with self._session() as session:
            rows = session.execute(sa.select(Run.id, Run.name, Run.status, Run.created_at, Run.started_at,
                                             Run.finished_at, Run.heartbeat_at)
                                   .order_by(Run.created_at.desc(), Run.id).limit(limit)).all()
        return [TimelineRow(id=i, name=n, status=s, created_at=aware(c), started_at=aware(st),
                            finished_at=aware(f), heartbeat_at=aware(h)) for i, n, s, c, st, f, h in rows][::-1]

    def filter_choices(self) -> dict[str, list[Any]]:
        """The distinct values the Runs page offers in its filters (one query per column, indexed or small)."""
        with self._session() as session:
            def distinct(column: Any) -> list[Any]:
                return [v for v in session.scalars(sa.select(column).distinct().where(column.is_not(None))
                                                   .order_by(column).limit(200))]
            return {
                "preset": distinct(Run.preset),
                "base_family": distinct(Run.base_model_family),
                "network_dim": distinct(Run.network_dim),
                "caption_version": [label for label in distinct(CaptionVersion.label)],
            }


def _epoch_score(row: RunEpochScore) -> EpochScore:
    return EpochScore(run_id=row.run_id, epoch=row.epoch, sample_count=row.sample_count, reported=bool(row.reported),
                      metrics=_metric_aggregates(row), blank_count=row.blank_count)


def _rating_expression() -> Any:
    """A run's rating as the views have it: the latest entered (run_ratings), else the imported runs.rating."""
    latest = (sa.select(RunRating.score).where(RunRating.run_id == Run.id).order_by(RunRating.id.desc()).limit(1)
              .correlate(Run).scalar_subquery())
    return sa.func.coalesce(latest, Run.rating)


def _has_tag(session: Session, tag: str) -> Any:
    """runs.tags (a JSON list) contains ``tag``, in each backend's JSON dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.text("CAST(runs.tags AS jsonb) ? :tag").bindparams(tag=tag)
    return sa.text("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = :tag)").bindparams(tag=tag)
