"""What training leaves behind: checkpoints (registered once per run, epoch and content) and per-step scalars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from orchestrator.tracking.entities import CheckpointRecord
from orchestrator.tracking.models import Checkpoint, RunEvent, TrainingStep
from orchestrator.tracking.session import SessionScope, aware, utcnow


class CheckpointRepository(SessionScope):
    """Checkpoints and training steps of runs."""

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


def _checkpoint_record(row: Checkpoint) -> CheckpointRecord:
    return CheckpointRecord(
        id=row.id, run_id=row.run_id, epoch=row.epoch, step=row.step, uri=row.uri, sha256=row.sha256,
        size_bytes=row.size_bytes, metadata=row.metadata_json, created_at=aware(row.created_at),
    )
