"""``dataset materialize``: rebuild a snapshot's exact kohya folder from the artifact store.

The archive is fetched (the store verifies its sha256), then extracted with every member checked
(:func:`orchestrator.datasets.archive.extract_archive`) into a staging folder next to DEST. Only when everything
verified does the staging folder become DEST, so a failure (a damaged manifest, a full disk) leaves DEST as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.datasets.archive import extract_archive
from orchestrator.errors import InputError, disk_full_names

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactStore
    from orchestrator.tracking.store import TrackingStore


@dataclass(frozen=True)
class MaterializeResult:
    snapshot_id: str
    dest: str
    files: int
    bytes: int
    source_kind: str
    dataset_toml: str | None  # path of the dataset TOML inside dest, if the snapshot had one
    caption_extension: str | None
    train_args: tuple[str, ...]  # how to point sd-scripts at it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def materialize_snapshot(
    ref: str,
    dest: str | os.PathLike[str],
    *,
    tracking: TrackingStore,
    artifacts: ArtifactStore | None = None,
    force: bool = False,
) -> MaterializeResult:
    """Rebuild snapshot ``ref`` (id, prefix or label) in ``dest``; refuses a non-empty ``dest`` unless ``force``
    (which replaces its contents).

    The archive is read from ``artifacts`` when given (``--store``), else from the store the snapshot was recorded
    in (its archive URI names it) — not from whatever store is configured now, which may be another one."""
    from orchestrator.artifacts import open_store
    from orchestrator.artifacts.base import store_uri_of

    snapshot = tracking.get_snapshot(ref)
    if not snapshot.archive_uri or not snapshot.archive_sha256:
        raise InputError(f"snapshot {snapshot.id[:12]} has no archive", "take the snapshot again")
    target = Path(dest)
    _check_dest(target, force)
    store = artifacts or open_store(store_uri_of(snapshot.archive_uri))
    parent = target.parent
    with disk_full_names(parent, "creating the destination's folder"):
        parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = parent / f".{target.name}.materialize-{token}"
    archive = parent / f".{target.name}.archive-{token}.tar"
    try:
        with disk_full_names(parent, f"materializing snapshot {snapshot.id[:12]}"):
            store.get_file(snapshot.archive_uri, archive)  # verifies the hash in the URI
            staging.mkdir()
            manifest = extract_archive(archive, staging, snapshot.id)
            _swap_in(staging, target, token)
    finally:
        archive.unlink(missing_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
    files = manifest["files"]
    toml = manifest.get("dataset_toml")
    target = target.resolve()  # sd-scripts gets absolute paths
    if toml:
        train_args: tuple[str, ...] = ("--dataset_config", str(target / toml))
    else:
        train_args = ("--train_data_dir", str(target), "--caption_extension", manifest.get("caption_extension") or "")
    return MaterializeResult(
        snapshot_id=snapshot.id, dest=str(target), files=len(files), bytes=sum(f["size"] for f in files),
        source_kind=manifest.get("source_kind", ""), dataset_toml=str(target / toml) if toml else None,
        caption_extension=manifest.get("caption_extension"), train_args=train_args,
    )


def _check_dest(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder", "give a new or empty folder")
    if target.is_symlink():
        raise InputError(f"{target}: is a link", "give a real folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise InputError(f"{target}: folder is not empty",
                             "give a new or empty folder, or --force to replace its contents")
        resolved = target.resolve()
        cwd = Path.cwd().resolve()
        if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or cwd.is_relative_to(resolved):
            raise InputError(f"{target}: refusing to replace this folder (a filesystem root, your home, or a "
                             "folder containing the current directory)", "give a dedicated folder")


def _swap_in(staging: Path, target: Path, token: str) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        os.rename(staging, target)
        return
    # --force: move the old folder aside, put the new one in place, then delete the old one.
    old = target.parent / f".{target.name}.old-{token}"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old)
