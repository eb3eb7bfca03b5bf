"""Where an unfinished resumable upload can be picked up again: one small JSON file per (store, sha256).

``<data dir>/uploads/<store id>/<sha256>.json`` holds the upload URL the server handed out (a TUS upload URL names
the upload, not a credential). It is written as soon as the server creates the upload and removed when the upload
completes, so a run that was interrupted (Ctrl-C, a dropped connection, a crash) resumes from the server's offset.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.config import data_dir


class ResumableUploads:
    """The saved upload URLs of one store."""

    def __init__(self, store_uri: str, root: Path | None = None) -> None:
        self.store_uri = store_uri
        store_id = hashlib.sha256(store_uri.encode()).hexdigest()[:16]
        self.folder = (root or data_dir() / "uploads") / store_id

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.json"

    def get(self, sha256: str) -> str | None:
        try:
            record = json.loads(self._path(sha256).read_text())
        except (OSError, ValueError):
            return None
        url = record.get("upload_url") if isinstance(record, dict) else None
        return url if isinstance(url, str) and record.get("store") == self.store_uri else None

    def put(self, sha256: str, upload_url: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"store": self.store_uri, "sha256": sha256, "upload_url": upload_url,
                  "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        path = self._path(sha256)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(partial, path)

    def remove(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)
        try:
            self.folder.rmdir()  # only when empty
        except OSError:
            pass

    def pending(self) -> list[str]:
        """The hashes with an unfinished upload."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json"))
