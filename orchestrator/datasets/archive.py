"""The snapshot archive: a deterministic tar of the manifest and the dataset's files, and its safe extraction.

Same content, same bytes: an uncompressed POSIX (pax) tar with ``manifest.json`` first and then every file of the
manifest sorted by path, each with mtime 0, uid/gid 0, no owner names and mode 0644; no directory entries. (Images
are PNG/JPEG already, so compression would cost time and save little.)

Extraction trusts nothing in the archive: the manifest must hash to the snapshot id, every member must be a
regular file with a safe relative path (no absolute paths, no ``..``, no links, devices or FIFOs) that the manifest
lists with the same size, and each file's sha256 is checked as it is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from pathlib import Path
from typing import IO, Any

from orchestrator.datasets.manifest import MANIFEST_NAME, parse_manifest
from orchestrator.datasets.scan import ScannedDataset
from orchestrator.errors import InputError, is_disk_full

CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(InputError):
    """An archive is damaged, tampered with, or does not match its snapshot."""


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.handle.flush()


class _HashingReader:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_archive(dataset: ScannedDataset, manifest: bytes, dest: Path) -> tuple[str, int]:
    """Write the archive to ``dest``; returns (sha256, size). Refuses files that changed since they were hashed."""
    import io

    if any(f.path == MANIFEST_NAME for f in dataset.files):
        raise InputError(f"{dataset.shown(MANIFEST_NAME)}: a dataset file may not be called {MANIFEST_NAME}",
                         "rename it; the snapshot archive keeps its manifest under that name")
    with open(dest, "wb") as handle:
        writer = _HashingWriter(handle)
        with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.addfile(_member(MANIFEST_NAME, len(manifest)), io.BytesIO(manifest))
            for item in dataset.files:
                full = os.path.join(dataset.root, *item.path.split("/"))
                changed = InputError(f"{dataset.shown(item.path)}: the file changed while the snapshot was taken",
                                     "take the snapshot again once nothing is writing to the dataset")
                try:
                    with open(full, "rb") as source:
                        if os.fstat(source.fileno()).st_size != item.size:
                            raise changed
                        reader = _HashingReader(source)
                        tar.addfile(_member(item.path, item.size), reader)  # type: ignore[arg-type]
                except OSError as error:
                    if is_disk_full(error):
                        raise  # the archive's disk, not the dataset file: the caller names the full place
                    raise InputError(f"{dataset.shown(item.path)}: cannot read ({error.strerror or error})",
                                     "check the file and take the snapshot again") from None
                if reader.digest.hexdigest() != item.sha256:
                    raise changed
        handle.flush()
    return writer.digest.hexdigest(), writer.size


def safe_relative_path(name: str) -> bool:
    """True for a plain relative path: no absolute path, drive, backslash, NUL, '.', '..' or empty part."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or _DRIVE.match(name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def extract_archive(archive: Path, dest: Path, snapshot_id: str) -> dict[str, Any]:
    """Extract a snapshot archive into the empty folder ``dest``, verifying everything; returns the manifest."""
    source = str(archive)
    try:
        tar = tarfile.open(archive, mode="r:")
    except (tarfile.TarError, OSError) as error:
        raise ArchiveError(f"{source}: not a readable tar archive ({error})", "the stored archive is damaged") from None
    with tar:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg():
            raise ArchiveError(f"{source}: the archive does not start with {MANIFEST_NAME}",
                               "this is not a snapshot archive")
        data = _read_member(tar, first)
        if hashlib.sha256(data).hexdigest() != snapshot_id:
            raise ArchiveError(f"{source}: the manifest does not hash to snapshot {snapshot_id[:12]}…",
                               "the archive belongs to another snapshot or was tampered with")
        manifest = parse_manifest(data, source, snapshot_id)
        expected: dict[str, dict[str, Any]] = {}
        for item in manifest["files"]:
            path = item.get("path") if isinstance(item, dict) else None
            if not isinstance(path, str) or not safe_relative_path(path) or path == MANIFEST_NAME:
                raise ArchiveError(f"{source}: the manifest lists an unsafe path {path!r}", "refusing to extract")
            expected[path] = item
        _write_file(dest / MANIFEST_NAME, [data])
        seen: set[str] = set()
        while (member := tar.next()) is not None:
            name = member.name
            if not member.isreg():
                raise ArchiveError(f"{source}: member {name!r} is a {_kind(member)}, not a regular file",
                                   "refusing to extract links, devices and folders")
            if not safe_relative_path(name):
                raise ArchiveError(f"{source}: member {name!r} has an unsafe path", "refusing to extract")
            item = expected.get(name)
            if item is None or name in seen:
                what = "appears twice" if name in seen else "is not in the manifest"
                raise ArchiveError(f"{source}: member {name!r} {what}", "the archive was tampered with")
            if member.size != item["size"]:
                raise ArchiveError(f"{source}: {name} is {member.size} bytes, the manifest says {item['size']}",
                                   "the archive was tampered with")
            digest = _extract_member(tar, member, dest / name)
            if digest != item["sha256"]:
                raise ArchiveError(f"{source}: {name} hashes to {digest[:12]}…, the manifest says "
                                   f"{item['sha256'][:12]}…", "the archive was tampered with")
            seen.add(name)
        missing = sorted(set(expected) - seen)
        if missing:
            raise ArchiveError(f"{source}: {len(missing)} file(s) of the manifest are missing, e.g. {missing[0]}",
                               "the archive is incomplete")
    return manifest


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "link"
    if member.isdir():
        return "folder"
    if member.isdev():
        return "device or FIFO"
    return "special member"


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> str:
    handle = tar.extractfile(member)
    assert handle is not None

    def chunks():
        while chunk := handle.read(CHUNK):
            yield chunk

    return _write_file(target, chunks())


def _write_file(target: Path, chunks) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # O_EXCL: never write through something already there (the staging folder is fresh, so nothing should be).
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
