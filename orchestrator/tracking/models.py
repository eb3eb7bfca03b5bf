"""SQLAlchemy models of the tracking database.

These rows never leave the tracking store (:mod:`orchestrator.tracking.store` and its repositories): the store
turns them into the frozen entities of :mod:`orchestrator.tracking.entities`. The Alembic migrations in ``migrations/`` create exactly this schema; a test
compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that migrations can drop/alter them on both SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("planned", "queued", "running", "succeeded", "failed", "cancelled", "lost")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled", "lost")
CAPTION_CONFIDENCES = ("known", "probable")

# The metric columns of an evaluation sample; run_epoch_scores keeps mean/min/max of each.
METRICS = (
    "unique_colors_24",
    "unique_colors_24_two_stage",
    "colors_95",
    "palette_distance",
    "grid_alignment",
)

# A blank sample: one colour covers (nearly) all of its 24x24 downscale -- a NaN-collapsed, black or flat output.
# It would win the users' metric with a score of 1, so an epoch with any blank sample is never a run's best epoch.
# SQL over evaluation_samples' columns (the store and migration 0003 use it; keep them in step).
BLANK_SAMPLE_SQL = "(colors_95 <= 1 OR (colors_95 IS NULL AND unique_colors_24 <= 1))"

UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetSnapshot(Base):
    """A content-addressed dataset: id = sha256 of the canonical manifest."""

    __tablename__ = "dataset_snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200))
    source_kind: Mapped[str] = mapped_column(String(20))  # "dreambooth" folder layout or "dataset_toml"
    source_path: Mapped[str | None] = mapped_column(Text)
    image_count: Mapped[int] = mapped_column(Integer)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    caption_version_id: Mapped[str | None] = mapped_column(ForeignKey("caption_versions.id"))
    dataset_toml: Mapped[str | None] = mapped_column(Text)
    archive_uri: Mapped[str | None] = mapped_column(Text)
    archive_sha256: Mapped[str | None] = mapped_column(String(64))
    archive_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SnapshotImage(Base):
    """One image of a snapshot's manifest."""

    __tablename__ = "snapshot_images"

    snapshot_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)  # relative to the dataset root, '/'-separated
    subset: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    caption_sha256: Mapped[str | None] = mapped_column(String(64))


class CaptionVersion(Base):
    """A caption set: id = sha256 of the canonical mapping image sha256 -> caption text.

    Versions known only from the users' notes (no content) have ids of the form ``history:<label>``.
    """

    __tablename__ = "caption_versions"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(20), default="snapshot")  # "snapshot" or "history"
    description: Mapped[str | None] = mapped_column(Text)
    caption_count: Mapped[int | None] = mapped_column(Integer)
    mean_chars: Mapped[float | None] = mapped_column(Float)
    max_chars: Mapped[int | None] = mapped_column(Integer)
    mean_tokens: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    mean_hex_codes: Mapped[float | None] = mapped_column(Float)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CaptionEntry(Base):
    """The caption of one image (by content hash) in one caption version."""

    __tablename__ = "caption_entries"

    caption_version_id: Mapped[str] = mapped_column(
        ForeignKey("caption_versions.id", ondelete="CASCADE"), primary_key=True
    )
    image_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    caption: Mapped[str] = mapped_column(Text)
    caption_sha256: Mapped[str] = mapped_column(String(64))
    chars: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int | None] = mapped_column(Integer)
    hex_codes: Mapped[int] = mapped_column(Integer)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('planned','queued','running','succeeded','failed','cancelled','lost')", name="status"
        ),
        CheckConstraint("rating IS NULL OR (rating >= 0 AND rating <= 10)", name="rating"),
        CheckConstraint(
            "caption_version_confidence IS NULL OR caption_version_confidence IN ('known','probable')",
            name="caption_version_confidence",
        ),
        Index("ix_runs_status_heartbeat_at", "status", "heartbeat_at"),
        Index("ix_runs_status_queue_created_at", "status", "queue", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True, unique=True)  # `runs show NAME`: never ambiguous
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(20), default="orchestrator")  # "orchestrator" | "history" | "import"
    preset: Mapped[str | None] = mapped_column(String(100))
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config_toml: Mapped[str | None] = mapped_column(Text)
    dataset_toml: Mapped[str | None] = mapped_column(Text)
    argv: Mapped[list[Any] | None] = mapped_column(JSON)
    sd_scripts_commit: Mapped[str | None] = mapped_column(String(40))
    base_model_family: Mapped[str | None] = mapped_column(String(20))  # "sd15" | "sdxl"
    base_model_name: Mapped[str | None] = mapped_column(Text)
    base_model_sha256: Mapped[str | None] = mapped_column(String(64))
    network_dim: Mapped[int | None] = mapped_column(Integer)
    network_alpha: Mapped[float | None] = mapped_column(Float)
    resolution: Mapped[str | None] = mapped_column(String(20))
    max_epochs: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    dataset_snapshot_id: Mapped[str | None] = mapped_column(ForeignKey("dataset_snapshots.id"), index=True)
    caption_version_id: Mapped[str | None] = mapped_column(ForeignKey("caption_versions.id"), index=True)
    caption_version_confidence: Mapped[str | None] = mapped_column(String(10))
    executor: Mapped[str | None] = mapped_column(String(40))
    host: Mapped[str | None] = mapped_column(String(200))
    work_dir: Mapped[str | None] = mapped_column(Text)
    log_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error_summary: Mapped[str | None] = mapped_column(Text)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    # Kept by the store whenever evaluation scores change: the epoch with the lowest mean unique_colors_24.
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_score: Mapped[float | None] = mapped_column(Float)
    # Remote runs: the queue a worker claims from, who claimed it, and where it ran.
    queue: Mapped[str | None] = mapped_column(String(100))
    worker: Mapped[str | None] = mapped_column(String(200))
    remote_kind: Mapped[str | None] = mapped_column(String(20))  # "ssh" | "runpod" | None (local)
    remote_id: Mapped[str | None] = mapped_column(String(200))  # e.g. the RunPod pod id
    gpu_type: Mapped[str | None] = mapped_column(String(100))
    cost_usd: Mapped[float | None] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PromptSuite(Base):
    __tablename__ = "prompt_suites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("suite_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("prompt_suites.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    negative: Mapped[str | None] = mapped_column(Text)
    seeds: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Evaluation(Base):
    """One evaluation pass over a run's checkpoints: which suite and which generation settings."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    suite_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_suites.id"))
    mode: Mapped[str] = mapped_column(String(20))  # "generate" | "on_train" | "scored_dir" | "reported"
    steps: Mapped[int | None] = mapped_column(Integer)
    cfg_scale: Mapped[float | None] = mapped_column(Float)
    sampler: Mapped[str | None] = mapped_column(String(40))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EvaluationSample(Base):
    """One generated image of one (run, epoch, prompt, seed) and its metrics."""

    __tablename__ = "evaluation_samples"
    __table_args__ = (UniqueConstraint("evaluation_id", "epoch", "prompt_id", "seed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    image_uri: Mapped[str | None] = mapped_column(Text)
    image_24_uri: Mapped[str | None] = mapped_column(Text)
    unique_colors_24: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_two_stage: Mapped[float | None] = mapped_column(Float)
    colors_95: Mapped[float | None] = mapped_column(Float)
    palette_distance: Mapped[float | None] = mapped_column(Float)
    grid_alignment: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


Index("ix_evaluation_samples_run_id_epoch", EvaluationSample.run_id, EvaluationSample.epoch)


class MetricAggregates:
    """Mean/min/max of every metric in METRICS, as ``<metric>_<mean|min|max>`` columns (a per-epoch summary, a
    snapshot's reference row)."""

    unique_colors_24_mean: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_min: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_max: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_two_stage_mean: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_two_stage_min: Mapped[float | None] = mapped_column(Float)
    unique_colors_24_two_stage_max: Mapped[float | None] = mapped_column(Float)
    colors_95_mean: Mapped[float | None] = mapped_column(Float)
    colors_95_min: Mapped[float | None] = mapped_column(Float)
    colors_95_max: Mapped[float | None] = mapped_column(Float)
    palette_distance_mean: Mapped[float | None] = mapped_column(Float)
    palette_distance_min: Mapped[float | None] = mapped_column(Float)
    palette_distance_max: Mapped[float | None] = mapped_column(Float)
    grid_alignment_mean: Mapped[float | None] = mapped_column(Float)
    grid_alignment_min: Mapped[float | None] = mapped_column(Float)
    grid_alignment_max: Mapped[float | None] = mapped_column(Float)


class RunEpochScore(MetricAggregates, Base):
    """Per (run, epoch): sample count, mean/min/max of each metric across prompts and seeds, blank samples.

    A summary table kept in step with evaluation_samples by the store in the same transaction, so that the views
    stay fast at 800k samples. Rows with ``reported = true`` come from the users' notes (no samples behind them).
    """

    __tablename__ = "run_epoch_scores"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_count: Mapped[int] = mapped_column(Integer)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    blank_count: Mapped[int | None] = mapped_column(Integer)  # samples matching BLANK_SAMPLE_SQL; None if reported


class SnapshotReferenceScore(MetricAggregates, Base):
    """The reference row of a dataset snapshot: every metric of its training images (scored against the snapshot's
    own palette, so palette_distance is 0), mean/min/max over the images; computed once per snapshot."""

    __tablename__ = "snapshot_reference_scores"

    snapshot_id: Mapped[str] = mapped_column(ForeignKey("dataset_snapshots.id", ondelete="CASCADE"),
                                             primary_key=True)
    image_count: Mapped[int] = mapped_column(Integer)
    palette_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RunEvent(Base):
    """Status changes, epoch ends (with average loss), checkpoints, log lines of note."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(20))  # "status" | "epoch" | "checkpoint" | "log" | "progress"
    epoch: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


Index("ix_run_events_run_id_id", RunEvent.run_id, RunEvent.id)


class TrainingStep(Base):
    """Per-step scalars read from the trainer's TensorBoard events."""

    __tablename__ = "training_steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    average_loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    wall_time: Mapped[float | None] = mapped_column(Float)


# Verdicts: what a person decides about a run after looking at it (issue 14). Entered through `runs rate/note/tag`
# or the web UI; runs.rating stays the rating imported from the users' history (0-10), never overwritten here.
RATING_MIN, RATING_MAX = 1, 5
EPOCH_MARKS = ("keeper", "reject")
AUTHOR_MAX = 200
TAG_MAX = 64


class RunRating(Base):
    """A rating entered here (1-5). Every entry is kept; the latest one (highest id) is the run's rating."""

    __tablename__ = "run_ratings"
    __table_args__ = (CheckConstraint("score >= 1 AND score <= 5", name="score"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


Index("ix_run_ratings_run_id_id", RunRating.run_id, RunRating.id)


class RunEpochMark(Base):
    """One epoch of a run marked keeper or reject; marking it again replaces the mark."""

    __tablename__ = "run_epoch_marks"
    __table_args__ = (CheckConstraint("mark IN ('keeper','reject')", name="mark"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    mark: Mapped[str] = mapped_column(String(10))
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    marked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RunNote(Base):
    """A timestamped note on a run by an author (runs.notes stays the note imported from history)."""

    __tablename__ = "run_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


Index("ix_run_notes_run_id_id", RunNote.run_id, RunNote.id)


class RunTag(Base):
    """A tag added to a run here (runs.tags holds the spec's and launch's tags; both count for `runs list --tag`)."""

    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(TAG_MAX), primary_key=True, index=True)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)
