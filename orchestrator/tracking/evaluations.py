"""Evaluation on the tracking side: prompt suites, evaluations and their scored samples, per-epoch scores with each
run's best epoch, and the dataset snapshots' reference scores.

Recording samples brings ``run_epoch_scores`` and the run's best epoch up to date in the same transaction, so the
summaries never disagree with the samples behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from orchestrator.errors import InputError, NotFoundError
from orchestrator.tracking.entities import EpochScore, ReferenceScore, SampleScore
from orchestrator.tracking.models import (
    BLANK_SAMPLE_SQL,
    METRICS,
    Evaluation,
    EvaluationSample,
    MetricAggregates,
    Prompt,
    PromptSuite,
    Run,
    RunEpochScore,
    SnapshotReferenceScore,
)
from orchestrator.tracking.session import SessionScope, aware, utcnow


class EvaluationRepository(SessionScope):
    """Prompt suites, evaluations, samples, epoch scores and reference scores."""

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
                raise NotFoundError(f"no evaluation {evaluation_id}", "it was deleted meanwhile (with its run?); run the "
                                    "evaluation again")
            return _insert_samples(session, evaluation, samples, set())

    def record_scored_folder(self, run_id: str, *, suite_name: str, source: str, samples: Iterable[SampleScore],
                             width: int | None = None, height: int | None = None) -> tuple[int, int]:
        """Record the scores of a folder of existing images as the run's ``scored_dir`` evaluation of ``source``
        for ``suite_name``; returns (evaluation id, samples recorded).

        Scoring the same folder again replaces that evaluation's samples instead of adding a second copy (the
        epoch counts would double), in one transaction: the old scores stay if the new ones cannot be recorded.
        """
        samples = list(samples)
        with self._session() as session:
            suite_id = session.scalars(sa.select(PromptSuite.id).where(PromptSuite.name == suite_name)).first()
            if suite_id is None:
                raise NotFoundError(f"no prompt suite {suite_name!r}", "record the suite first")
            earlier = session.scalars(
                sa.select(Evaluation).where(Evaluation.run_id == run_id, Evaluation.mode == "scored_dir",
                                            Evaluation.suite_id == suite_id).order_by(Evaluation.id)
            ).all()
            evaluation = next((e for e in earlier if (e.settings or {}).get("source") == source), None)
            replaced_epochs: set[int] = set()
            if evaluation is None:
                evaluation = Evaluation(run_id=run_id, suite_id=suite_id, mode="scored_dir", width=width,
                                        height=height, settings={"source": source}, created_at=utcnow())
                session.add(evaluation)
                session.flush()
            else:
                replaced_epochs = set(session.scalars(
                    sa.select(EvaluationSample.epoch).where(EvaluationSample.evaluation_id == evaluation.id)
                ).all())
                session.execute(sa.delete(EvaluationSample).where(EvaluationSample.evaluation_id == evaluation.id))
            return evaluation.id, _insert_samples(session, evaluation, samples, replaced_epochs)

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
                "SELECT s.{col} FROM run_epoch_scores s WHERE s.run_id = runs.id "
                "AND s.unique_colors_24_mean IS NOT NULL AND COALESCE(s.blank_count, 0) = 0 "
                "ORDER BY s.unique_colors_24_mean, CASE WHEN s.palette_distance_mean IS NULL THEN 1 ELSE 0 END, "
                "s.palette_distance_mean, s.epoch LIMIT 1"
            )
            session.execute(sa.text(
                f"UPDATE runs SET best_epoch = ({best.format(col='epoch')}), "
                f"best_score = ({best.format(col='unique_colors_24_mean')})"
            ))
            return inserted

    # ---- samples already recorded ---------------------------------------------------------------------------------

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

    # ---- snapshots' reference scores ------------------------------------------------------------------------------

    def record_snapshot_reference(self, snapshot_id: str, *, palette_size: int,
                                  metrics: Sequence[dict[str, float | None]]) -> ReferenceScore:
        """Store a snapshot's reference row from its training images' metrics (one dict per image), replacing any
        earlier one (the same images give the same figures). An upsert: two workers that start on the same snapshot
        at once both succeed."""
        if not metrics:
            raise InputError(f"dataset snapshot {snapshot_id[:12]} has no images to score",
                             "snapshot a dataset folder that holds the training images")
        values: dict[str, Any] = {"snapshot_id": snapshot_id, "image_count": len(metrics),
                                  "palette_size": palette_size, "created_at": utcnow()}
        for metric in METRICS:
            present = [float(m[metric]) for m in metrics if m.get(metric) is not None]
            aggregates = (sum(present) / len(present), min(present), max(present)) if present else (None,) * 3
            values.update({f"{metric}_{agg}": value for agg, value in zip(("mean", "min", "max"), aggregates)})
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
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


_BLANK_COUNT_SQL = f"SUM(CASE WHEN {BLANK_SAMPLE_SQL} THEN 1 ELSE 0 END)"


def _insert_samples(session: Session, evaluation: Evaluation, samples: list[SampleScore],
                    also_refresh: set[int]) -> int:
    """Insert samples of ``evaluation``, then refresh the epoch scores of their epochs (and of ``also_refresh``:
    epochs whose samples were just removed) and the run's best epoch."""
    now = utcnow()
    rows = []
    for sample in samples:
        unknown = set(sample.metrics) - set(METRICS)
        if unknown:
            raise InputError(f"unknown metric(s) {sorted(unknown)}", f"metrics are {', '.join(METRICS)}")
        rows.append(
            {
                "evaluation_id": evaluation.id,
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
    for epoch in sorted({s.epoch for s in samples} | also_refresh):
        _refresh_epoch_score(session, evaluation.run_id, epoch)
    _refresh_best_epoch(session, evaluation.run_id)
    return len(rows)


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
        created_at=aware(row.created_at),
    )
