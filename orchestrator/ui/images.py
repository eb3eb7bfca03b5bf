"""Images and checkpoints for the UI, fetched only by the artifact URIs the tracking database records.

An artifact URI names its store and ends in the content's sha256, so a fetched copy never goes stale: it is cached
on disk under that hash (fetched and verified once, never re-encoded) and served with the hash as its ETag and an
immutable Cache-Control. What cannot be fetched (no URI recorded, a missing object, an unreachable store) becomes a
placeholder image that says why, never an error page.
"""

from __future__ import annotations

import os
import shutil
import threading
from html import escape
from pathlib import Path

from orchestrator.artifacts.base import ArtifactError, ArtifactStore, sha256_from_uri, store_uri_of
from orchestrator.artifacts.registry import open_store
from orchestrator.datasets.archive import extract_archive
from orchestrator.errors import OrchestratorError

IMMUTABLE = "public, max-age=31536000, immutable"


class ArtifactCache:
    """Local, verified copies of artifacts, one file per sha256; one store client per store URI."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._stores: dict[str, ArtifactStore] = {}
        self._lock = threading.Lock()

    def path_of(self, uri: str) -> Path:
        """The cached copy of ``uri``, fetched (and verified against its sha256) on first use."""
        sha256 = sha256_from_uri(uri)
        path = self.directory / sha256[:2] / sha256
        if not path.is_file():
            self._store(store_uri_of(uri)).get_file(uri, path)
        return path

    def snapshot_dir(self, snapshot_id: str, archive_uri: str | None, *, fetch: bool = True) -> Path | None:
        """The snapshot's files, extracted (every file verified against its manifest) once from its archive; None
        when not extracted yet and ``fetch`` is off."""
        target = self.directory / "snapshots" / snapshot_id
        if target.is_dir():
            return target
        if not fetch:
            return None
        if not archive_uri:
            raise ArtifactError(f"snapshot {snapshot_id[:12]} has no archive recorded",
                                "take the snapshot again with `orchestrator dataset snapshot`")
        archive = self.path_of(archive_uri)
        with self._lock:
            if target.is_dir():
                return target
            partial = target.with_name(f".{snapshot_id}.partial-{os.getpid()}-{threading.get_ident()}")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            try:
                extract_archive(archive, partial, snapshot_id)
                os.replace(partial, target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return target

    def _store(self, store_uri: str) -> ArtifactStore:
        with self._lock:
            if store_uri not in self._stores:
                self._stores[store_uri] = open_store(store_uri)
            return self._stores[store_uri]


def reason_of(error: Exception) -> str:
    if isinstance(error, OrchestratorError):
        return error.message
    return f"{type(error).__name__}: {error}"


def placeholder_svg(reason: str, *, size: int = 192) -> bytes:
    """A grey square saying why the image is not there (the reason is escaped: it may quote a URI)."""
    words = escape(reason[:160])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 192 192">'
        f'<title>{words}</title><rect width="192" height="192" fill="#eee" stroke="#c33" stroke-dasharray="4"/>'
        '<text x="96" y="40" font-family="sans-serif" font-size="14" text-anchor="middle" fill="#c33">'
        'image unavailable</text>'
        f'<foreignObject x="8" y="52" width="176" height="132"><div xmlns="http://www.w3.org/1999/xhtml" '
        f'style="font:10px sans-serif;color:#555;overflow-wrap:anywhere">{words}</div></foreignObject></svg>'
    ).encode()
