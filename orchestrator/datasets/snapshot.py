"""Take a snapshot: read the dataset, hash it, archive it to the artifact store, record it — all or nothing.

Order matters for "nothing half-way": every check runs before anything is written; the archive goes to the
artifact store before the database is touched (a content-addressed put is harmless if recording then fails); the
snapshot, its images, its caption version and the caption entries are recorded in one transaction.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.datasets.archive import write_archive
from orchestrator.datasets.captions import SUMMARY_COLUMNS, caption_stats, measure_all, sha256_text
from orchestrator.datasets.findings import Finding, raise_first
from orchestrator.datasets.lint import lint_scanned
from orchestrator.datasets.manifest import MANIFEST_NAME, caption_version_id, manifest_bytes, sha256_bytes
from orchestrator.datasets.scan import DEFAULT_CAPTION_EXTENSION, ScannedDataset, Subset, scan_dataset
from orchestrator.errors import InputError, NotFoundError, disk_full_names
from orchestrator.scratch import owned_scratch_dir, sweep_stale
from orchestrator.tracking.entities import (
    CaptionEntryRecord,
    CaptionVersionRecord,
    DatasetSnapshotRecord,
    NewCaptionVersion,
    NewDatasetSnapshot,
    SnapshotImageRecord,
)

if TYPE_CHECKING:
    from orchestrator.artifacts import Artifact, ArtifactStore
    from orchestrator.tracking.store import TrackingStore

# Scratch folders in TMPDIR (the archive can be hundreds of MB); stale ones of killed snapshots are swept.
SCRATCH_PREFIXES = ("orchestrator-snapshot-", "orchestrator-manifest-")


@dataclass(frozen=True)
class SnapshotResult:
    snapshot: DatasetSnapshotRecord
    caption_version: CaptionVersionRecord
    created: bool
    caption_version_created: bool
    archive_uri: str
    manifest_uri: str
    subsets: tuple[Subset, ...]
    # What `captions lint` (at the default max_token_length 75) reports for the snapshotted dataset, errors
    # included: the ones about caption content (missing, empty, over the token budget) do not stop a snapshot,
    # which records what sd-scripts would train on, but they are never silent.
    warnings: tuple[Finding, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.to_dict(),
            "caption_version": self.caption_version.to_dict(),
            "created": self.created,
            "caption_version_created": self.caption_version_created,
            "archive_uri": self.archive_uri,
            "manifest_uri": self.manifest_uri,
            "subsets": [s.to_dict() for s in self.subsets],
            "warnings": [w.to_dict() for w in self.warnings],
            "notes": list(self.notes),
        }


def new_caption_version(dataset: ScannedDataset, label: str | None) -> NewCaptionVersion:
    pairs = dataset.caption_pairs()
    version_id = caption_version_id(pairs)
    measures = measure_all(caption for _, caption in pairs)
    stats = caption_stats(pairs, measures, from_caption_file=dataset.captions_from_files())
    summary = {key: stats.pop(key) for key in SUMMARY_COLUMNS}
    # caption_entries holds one row per image hash; a copy of an image with another caption keeps the first
    # caption (sorted) here, and the archive keeps every copy (stats count them: images_with_conflicting_captions).
    first: dict[str, str] = {}
    for sha, caption in sorted(pairs):
        first.setdefault(sha, caption)
    entries = tuple(
        CaptionEntryRecord(caption_version_id=version_id, image_sha256=sha, caption=caption,
                           caption_sha256=sha256_text(caption), chars=measures[caption].chars,
                           tokens=measures[caption].tokens, hex_codes=len(measures[caption].hex_codes))
        for sha, caption in first.items()
    )
    return NewCaptionVersion(id=version_id, label=label, summary=summary, stats=stats, entries=entries,
                             description=f"{len(pairs)} captions first recorded from {dataset.source_path}")


def take_snapshot(
    path: str | Path,
    *,
    tracking: TrackingStore,
    artifacts: ArtifactStore | None = None,
    label: str | None = None,
    caption_extension: str = DEFAULT_CAPTION_EXTENSION,
) -> SnapshotResult:
    """Snapshot the kohya dataset at ``path`` (folder or dataset TOML) into ``artifacts`` and ``tracking``."""
    from orchestrator.artifacts import open_store

    dataset = scan_dataset(path, caption_extension=caption_extension)
    raise_first(dataset.findings, lint_hint=f"list every problem with `orchestrator captions lint {path}`")
    findings = _lint_findings(dataset, str(path))
    manifest = manifest_bytes(dataset)
    snapshot_id = sha256_bytes(manifest)
    version = new_caption_version(dataset, label)
    owner = tracking.caption_label_owner(label) if label else None
    if owner is not None and owner != version.id:
        # Checked before anything is written (the store re-checks inside its transaction, against races).
        raise InputError(f"caption label {label!r} is already used by caption version {owner[:12]}",
                         "choose another --label, or rename that version: "
                         f"orchestrator captions label {owner[:12]} NEW")
    store = artifacts or open_store()
    sweep_stale_scratch()  # what killed snapshots left in TMPDIR (archives of up to hundreds of MB)
    archive = _archive(dataset, manifest, snapshot_id, store, tracking)
    with owned_scratch_dir(SCRATCH_PREFIXES[1]) as tmp:
        manifest_path = tmp / MANIFEST_NAME
        with disk_full_names(tmp, "writing the snapshot manifest"):
            manifest_path.write_bytes(manifest)
        # The manifest alone, keyed by the snapshot id: readable without fetching the whole archive.
        manifest_artifact = store.put_file(manifest_path, sha256=snapshot_id)
    recorded = tracking.record_snapshot(
        NewDatasetSnapshot(
            id=snapshot_id, label=label, source_kind=dataset.source_kind, source_path=dataset.source_path,
            total_bytes=dataset.total_bytes, dataset_toml=dataset.dataset_toml_text, archive_uri=archive.uri,
            archive_sha256=archive.sha256, archive_bytes=archive.size,
            images=tuple(
                SnapshotImageRecord(snapshot_id=snapshot_id, path=i.path, subset=i.subset, sha256=i.sha256,
                                    size_bytes=i.size, width=i.width, height=i.height, mode=i.mode,
                                    caption_sha256=i.caption_sha256)
                for i in dataset.images
            ),
        ),
        version,
    )
    return SnapshotResult(
        snapshot=recorded.snapshot, caption_version=recorded.caption_version, created=recorded.snapshot_created,
        caption_version_created=recorded.caption_version_created, archive_uri=archive.uri,
        manifest_uri=manifest_artifact.uri, subsets=dataset.subsets,
        warnings=findings, notes=recorded.notes,
    )


def _lint_findings(dataset: ScannedDataset, path: str) -> tuple[Finding, ...]:
    """Lint's errors and the reading's warnings, in lint's order (lint's own style warnings, e.g. hex codes or
    keep_tokens prefixes, stay with `captions lint`: they depend on the run's settings)."""
    report = lint_scanned(dataset, path=path)
    from_reading = set(dataset.findings)
    return tuple(f for f in report.findings if f.is_error or f in from_reading)


def sweep_stale_scratch() -> list[Path]:
    """Remove what killed snapshots left in TMPDIR (only stale folders: see orchestrator.scratch)."""
    return sweep_stale(tempfile.gettempdir(), lambda name: name.startswith(SCRATCH_PREFIXES))


def _archive(dataset: ScannedDataset, manifest: bytes, snapshot_id: str, store: ArtifactStore,
             tracking: TrackingStore) -> Artifact:
    from orchestrator.artifacts import Artifact

    try:
        known = tracking.get_snapshot(snapshot_id)
    except NotFoundError:
        known = None
    if known is not None and known.archive_sha256 and store.exists(known.archive_sha256):
        # Same content already archived in this store: the archive would come out byte for byte the same.
        return Artifact(uri=store.uri_for(known.archive_sha256), sha256=known.archive_sha256,
                        size=known.archive_bytes or 0)
    with owned_scratch_dir(SCRATCH_PREFIXES[0]) as tmp:
        archive_path = tmp / f"{snapshot_id}.tar"
        with disk_full_names(tmp, "writing the snapshot archive"):
            sha, _ = write_archive(dataset, manifest, archive_path)
        return store.put_file(archive_path, sha256=sha)
