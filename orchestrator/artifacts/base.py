"""The artifact store interface: put a file, get it back verified, by its sha256."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import OrchestratorError

CHUNK = 1024 * 1024


class ArtifactError(OrchestratorError):
    """An artifact could not be stored, found or verified."""


@dataclass(frozen=True)
class Artifact:
    """A stored object: where it is, what it hashes to and how big it is."""

    uri: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size}


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def object_key(sha256: str) -> str:
    """Where an object lives under a store's root: sha256/ab/abcdef… (two-character fan-out)."""
    return f"sha256/{sha256[:2]}/{sha256}"


def sha256_from_uri(uri: str) -> str:
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    if len(tail) != 64 or any(c not in "0123456789abcdef" for c in tail):
        raise ArtifactError(f"{uri!r} is not a content-addressed artifact URI", "artifact URIs end in a sha256")
    return tail


class ArtifactStore(ABC):
    """One backend. Objects are keyed by content, so a put of known content uploads nothing."""

    scheme: str

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")

    def uri_for(self, sha256: str) -> str:
        return f"{self.uri}/{object_key(sha256)}"

    def put_file(self, path: Path, *, sha256: str | None = None) -> Artifact:
        """Store a file (skipped when the object already exists); returns its artifact."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: no such file", "give the path of a file to store")
        if sha256 is None:
            sha256, size = sha256_file(path)
        else:
            size = path.stat().st_size
        if not self.exists(sha256):
            self._upload(path, sha256, size)
        return Artifact(uri=self.uri_for(sha256), sha256=sha256, size=size)

    def get_file(self, uri: str, dest: Path) -> Path:
        """Download an artifact to dest (atomically) and verify it against the sha256 in its URI."""
        sha256 = sha256_from_uri(uri)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        try:
            self._download(sha256, partial)
            actual, _ = sha256_file(partial)
            if actual != sha256:
                raise ArtifactError(
                    f"{uri}: downloaded content hashes to {actual[:12]}…, not {sha256[:12]}…",
                    "the stored object is corrupt; put the original file again",
                )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def _upload(self, path: Path, sha256: str, size: int) -> None: ...

    @abstractmethod
    def _download(self, sha256: str, dest: Path) -> None: ...

    @abstractmethod
    def list(self) -> Iterator[Artifact]: ...

    @abstractmethod
    def delete(self, sha256: str) -> None: ...
