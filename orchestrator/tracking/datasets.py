"""Datasets on the tracking side: snapshots with their images, and caption versions with their entries.

Snapshots and caption versions are content-addressed: recording the same content twice changes nothing, and the
same content recorded by two processes at once ends as one row.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.errors import AmbiguousIdError, InputError, NotFoundError
from orchestrator.tracking.entities import (
    CaptionEntryRecord,
    CaptionVersionRecord,
    DatasetSnapshotRecord,
    NewCaptionVersion,
    NewDatasetSnapshot,
    RecordedSnapshot,
    SnapshotImageRecord,
)
from orchestrator.tracking.models import CaptionEntry, CaptionVersion, DatasetSnapshot, SnapshotImage
from orchestrator.tracking.session import SessionScope, aware, like_prefix, utcnow


class DatasetRepository(SessionScope):
    """Dataset snapshots and caption versions."""

    # ---- snapshots ------------------------------------------------------------------------------------------------

    def record_snapshot(
        self, snapshot: NewDatasetSnapshot, caption_version: NewCaptionVersion
    ) -> RecordedSnapshot:
        """Record a dataset snapshot, its images and its caption version (with entries) in one transaction.

        Idempotent. A caption label already used by another version is an error; a label asked for on content
        that already has another label keeps the old one and says so in ``notes``.
        """
        try:
            with self._session(raise_conflicts=True) as session:
                return self._record_snapshot(session, snapshot, caption_version)
        except IntegrityError:
            # Another process recorded the same content at the same moment: the retry finds its rows.
            with self._session() as session:
                return self._record_snapshot(session, snapshot, caption_version)

    def _record_snapshot(self, session: Session, snapshot: NewDatasetSnapshot,
                         caption_version: NewCaptionVersion) -> RecordedSnapshot:
        notes: list[str] = []
        label = caption_version.label
        if label:
            other = session.scalars(
                sa.select(CaptionVersion.id)
                .where(CaptionVersion.label == label, CaptionVersion.id != caption_version.id)
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
            snapshot=_snapshot_record(row), caption_version=_caption_version_record(version),
            snapshot_created=snapshot_created, caption_version_created=version_created, notes=tuple(notes),
        )

    def get_snapshot(self, ref: str) -> DatasetSnapshotRecord:
        """Find a snapshot by full id, label (unless several snapshots share it) or unique id prefix (4+ chars)."""
        with self._session() as session:
            return _snapshot_record(self._find_content(session, DatasetSnapshot, ref, "dataset snapshot",
                                                       "orchestrator dataset list"))

    def list_snapshots(self) -> list[DatasetSnapshotRecord]:
        with self._session() as session:
            rows = session.scalars(sa.select(DatasetSnapshot).order_by(DatasetSnapshot.created_at.desc(),
                                                                        DatasetSnapshot.id))
            return [_snapshot_record(r) for r in rows]

    def snapshot_images(self, snapshot_id: str) -> list[SnapshotImageRecord]:
        with self._session() as session:
            rows = session.scalars(
                sa.select(SnapshotImage).where(SnapshotImage.snapshot_id == snapshot_id).order_by(SnapshotImage.path)
            )
            return [SnapshotImageRecord(
                snapshot_id=r.snapshot_id, path=r.path, subset=r.subset, sha256=r.sha256, size_bytes=r.size_bytes,
                width=r.width, height=r.height, mode=r.mode, caption_sha256=r.caption_sha256) for r in rows]

    # ---- caption versions -----------------------------------------------------------------------------------------

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

    def get_caption_version(self, ref: str) -> CaptionVersionRecord:
        """Find a caption version by full id, label or unique id prefix (4+ characters)."""
        with self._session() as session:
            return _caption_version_record(self._find_content(session, CaptionVersion, ref, "caption version",
                                                              "orchestrator captions list"))

    def caption_entries(self, version_id: str) -> list[CaptionEntryRecord]:
        with self._session() as session:
            rows = session.scalars(sa.select(CaptionEntry).where(CaptionEntry.caption_version_id == version_id)
                                   .order_by(CaptionEntry.image_sha256))
            return [CaptionEntryRecord(
                caption_version_id=r.caption_version_id, image_sha256=r.image_sha256, caption=r.caption,
                caption_sha256=r.caption_sha256, chars=r.chars, tokens=r.tokens, hex_codes=r.hex_codes) for r in rows]

    def caption_image_paths(self, version_id: str) -> dict[str, str]:
        """image sha256 → a path it had in a snapshot that used this caption version (first by path)."""
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
            candidates = session.scalars(
                sa.select(model).where(model.id.like(like_prefix(ref), escape="\\")).limit(5)
            ).all()
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFoundError(f"no {what} {ref!r}", f"list them with `{list_command}`")
        ids = ", ".join(c.id[:16] for c in candidates)
        raise AmbiguousIdError(f"{ref!r} matches several {what}s ({ids})", "give more characters of the id")


def _snapshot_record(row: DatasetSnapshot) -> DatasetSnapshotRecord:
    return DatasetSnapshotRecord(
        id=row.id, label=row.label, source_kind=row.source_kind, source_path=row.source_path,
        image_count=row.image_count, total_bytes=row.total_bytes, caption_version_id=row.caption_version_id,
        dataset_toml=row.dataset_toml, archive_uri=row.archive_uri, archive_sha256=row.archive_sha256,
        archive_bytes=row.archive_bytes, created_at=aware(row.created_at),
    )


def _caption_version_record(row: CaptionVersion) -> CaptionVersionRecord:
    values = {f.name: getattr(row, f.name) for f in fields(CaptionVersionRecord)}
    values["created_at"] = aware(values["created_at"])
    return CaptionVersionRecord(**values)
