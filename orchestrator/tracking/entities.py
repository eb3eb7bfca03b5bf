"""Plain, frozen records that cross module boundaries (ORM rows stay inside the store)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class Record:
    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class NewRun:
    """What a caller knows about a run when it is created; the store adds id, status and timestamps."""

    name: str
    status: str = "planned"
    source: str = "orchestrator"
    id: str | None = None
    preset: str | None = None
    spec: dict[str, Any] | None = None
    config_toml: str | None = None
    dataset_toml: str | None = None
    argv: list[str] | None = None
    sd_scripts_commit: str | None = None
    base_model_family: str | None = None
    base_model_name: str | None = None
    base_model_sha256: str | None = None
    network_dim: int | None = None
    network_alpha: float | None = None
    resolution: str | None = None
    max_epochs: int | None = None
    seed: int | None = None
    dataset_snapshot_id: str | None = None
    caption_version_id: str | None = None
    caption_version_confidence: str | None = None
    executor: str | None = None
    host: str | None = None
    work_dir: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    rating: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue: str | None = None
    remote_kind: str | None = None


@dataclass(frozen=True)
class RunRecord(Record):
    id: str
    name: str
    status: str
    source: str
    preset: str | None
    spec: dict[str, Any] | None
    config_toml: str | None
    dataset_toml: str | None
    argv: list[str] | None
    sd_scripts_commit: str | None
    base_model_family: str | None
    base_model_name: str | None
    base_model_sha256: str | None
    network_dim: int | None
    network_alpha: float | None
    resolution: str | None
    max_epochs: int | None
    seed: int | None
    dataset_snapshot_id: str | None
    caption_version_id: str | None
    caption_version_confidence: str | None
    executor: str | None
    host: str | None
    work_dir: str | None
    log_uri: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    exit_code: int | None
    error_summary: str | None
    parent_run_id: str | None
    attempt: int
    tags: list[str]
    notes: str | None
    rating: int | None
    best_epoch: int | None
    best_score: float | None
    queue: str | None = None
    worker: str | None = None
    remote_kind: str | None = None
    remote_id: str | None = None
    gpu_type: str | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class EventRecord(Record):
    id: int
    run_id: str
    at: datetime
    kind: str
    epoch: int | None
    step: int | None
    loss: float | None
    message: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True)
class CheckpointRecord(Record):
    id: int
    run_id: str
    epoch: int | None
    step: int | None
    uri: str
    sha256: str
    size_bytes: int
    metadata: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class EpochScore(Record):
    run_id: str
    epoch: int
    sample_count: int
    reported: bool
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    blank_count: int | None = None  # blank samples (see models.BLANK_SAMPLE_SQL); such an epoch is never the best


@dataclass(frozen=True)
class SampleScore:
    """One scored image of an evaluation, as a caller hands it to the store."""

    epoch: int
    prompt_id: int | None
    seed: int | None
    metrics: dict[str, float | None]
    image_uri: str | None = None
    image_24_uri: str | None = None


@dataclass(frozen=True)
class ReferenceScore(Record):
    """A dataset snapshot's reference row: its training images' metrics (mean/min/max), computed once."""

    snapshot_id: str
    image_count: int
    palette_size: int
    metrics: dict[str, dict[str, float | None]]
    created_at: datetime


@dataclass(frozen=True)
class CaptionVersionRecord(Record):
    id: str
    label: str | None
    source: str
    description: str | None
    caption_count: int | None
    mean_chars: float | None
    max_chars: int | None
    mean_tokens: float | None
    max_tokens: int | None
    mean_hex_codes: float | None
    stats: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class ViewResult(Record):
    name: str
    columns: list[str]
    rows: list[list[Any]]


# ---- datasets and caption versions ----


@dataclass(frozen=True)
class DatasetSnapshotRecord(Record):
    """A content-addressed dataset (id = sha256 of its canonical manifest) and where its archive is."""

    id: str
    label: str | None
    source_kind: str
    source_path: str | None
    image_count: int
    total_bytes: int
    caption_version_id: str | None
    dataset_toml: str | None
    archive_uri: str | None
    archive_sha256: str | None
    archive_bytes: int | None
    created_at: datetime


@dataclass(frozen=True)
class SnapshotImageRecord(Record):
    snapshot_id: str
    path: str
    subset: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    mode: str
    caption_sha256: str | None


@dataclass(frozen=True)
class CaptionEntryRecord(Record):
    caption_version_id: str
    image_sha256: str
    caption: str
    caption_sha256: str
    chars: int
    tokens: int | None
    hex_codes: int


@dataclass(frozen=True)
class NewCaptionVersion:
    """A caption version computed from content; the store inserts it unless it exists."""

    id: str
    label: str | None
    summary: dict[str, Any]  # the summary columns (caption_count, mean_chars, …)
    stats: dict[str, Any]
    entries: tuple[CaptionEntryRecord, ...]
    description: str | None = None


@dataclass(frozen=True)
class NewDatasetSnapshot:
    id: str
    label: str | None
    source_kind: str
    source_path: str | None
    total_bytes: int
    dataset_toml: str | None
    archive_uri: str
    archive_sha256: str
    archive_bytes: int
    images: tuple[SnapshotImageRecord, ...]


@dataclass(frozen=True)
class RecordedSnapshot(Record):
    """What recording a snapshot did: the rows as stored, whether they were new, and notes (kept labels)."""

    snapshot: DatasetSnapshotRecord
    caption_version: CaptionVersionRecord
    snapshot_created: bool
    caption_version_created: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RatingRecord(Record):
    """A rating entered here (1-5)."""

    id: int
    run_id: str
    score: int
    author: str
    created_at: datetime


@dataclass(frozen=True)
class EpochMarkRecord(Record):
    run_id: str
    epoch: int
    mark: str  # "keeper" | "reject"
    author: str
    marked_at: datetime


@dataclass(frozen=True)
class NoteRecord(Record):
    id: int
    run_id: str
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class TagRecord(Record):
    run_id: str
    tag: str
    author: str
    added_at: datetime


@dataclass(frozen=True)
class RunTags(Record):
    """The tags entered here for one run, after a change."""

    run_id: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Verdicts(Record):
    """Everything people decided about one run.

    ``rating`` is the one the views use: the latest rating entered here, else the one imported from the users'
    history (``imported_rating``, their 0-10 scale); ``rating_source`` says which ("entered", "imported" or None).
    ``tags`` are the tags entered here; the run's own ``tags`` (spec, launch) are on its :class:`RunRecord`.
    """

    run_id: str
    rating: int | None
    rating_source: str | None
    imported_rating: int | None
    ratings: tuple[RatingRecord, ...] = ()  # entered here, oldest first
    epoch_marks: tuple[EpochMarkRecord, ...] = ()  # by epoch
    notes: tuple[NoteRecord, ...] = ()  # oldest first
    tags: tuple[TagRecord, ...] = ()  # by tag
