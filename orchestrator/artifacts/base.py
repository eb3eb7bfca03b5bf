"""The artifact store interface: put a file, get it back verified, by its sha256.

Every backend keeps an object under ``<store root>/sha256/<first two hex digits>/<sha256>``, so a put of content the
store already holds uploads nothing, and every get is checked against the sha256 in the artifact's URI. Store URIs
may carry non-secret options in a query (``s3://bucket/prefix?endpoint=…&region=…``); an artifact's URI is the
store's path, the object key, then the same query, so the store can be reopened from any artifact URI.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.artifacts.progress import ProgressCallback, Reporter, transfer_progress
from orchestrator.errors import OrchestratorError

CHUNK = 1024 * 1024
KEY_MARKER = "/sha256/"


class ArtifactError(OrchestratorError):
    """An artifact could not be stored, found or verified."""


# what to do when a remote store failed in a way the message cannot pin down further
STORE_FAILURE_HINT = ("check the store URI and that the service answers (network, credentials), then run the "
                      "command again; --debug shows the full error")


class ArtifactNotFoundError(ArtifactError):
    """The store has no object with that hash."""

    exit_code = 2


@dataclass(frozen=True)
class Artifact:
    """A stored object: where it is, what it hashes to and how big it is."""

    uri: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size}


class Sha256OnThread:
    """sha256 of chunks fed in order, computed on a second thread so that it overlaps the reads and writes that
    produce them (hashlib releases the GIL on large buffers; sha256 is as slow as a fast disk or loopback socket).

    ``update`` returns once at most ``pending`` chunks are still waiting to be hashed: a caller that reuses its
    buffers keeps ``pending + 1`` of them in rotation.
    """

    def __init__(self, pending: int = 2) -> None:
        self._digest = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._queued: deque[Future[None]] = deque()
        self._pending = pending

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._queued.append(self._pool.submit(self._digest.update, data))  # one worker: hashed in order
        while len(self._queued) > self._pending:
            self._queued.popleft().result()

    def hexdigest(self) -> str:
        while self._queued:
            self._queued.popleft().result()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Sha256OnThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def sha256_from_uri(uri: str) -> str:
    tail = uri.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if not is_sha256(tail):
        raise ArtifactError(f"{uri!r} is not a content-addressed artifact URI", "artifact URIs end in a sha256")
    return tail


def store_uri_of(artifact_uri: str) -> str:
    """The URI of the store that holds an artifact (its path up to ``/sha256/``, with the same query)."""
    base, sep, query = artifact_uri.partition("?")
    if KEY_MARKER not in base:
        raise ArtifactError(f"{artifact_uri!r} is not a content-addressed artifact URI",
                            "artifact URIs look like <store>/sha256/ab/<sha256>")
    root = base.rsplit(KEY_MARKER, 1)[0]
    return f"{root}?{query}" if sep else root


class ArtifactStore(ABC):
    """One backend. Objects are keyed by content, so a put of known content uploads nothing.

    Backends implement ``exists``, ``_upload``, ``_download``, ``list`` and ``delete`` (and ``signed_url`` where the
    backend can share objects); this class does the hashing, the skipping, the progress bars and the verification.
    """

    scheme: str

    def __init__(self, uri: str) -> None:
        base, sep, query = uri.partition("?")
        self._root_uri = base.rstrip("/")
        self._query = query if sep else ""
        self.uri = f"{self._root_uri}?{self._query}" if self._query else self._root_uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @property
    def display_name(self) -> str:
        """The store as people should see it in messages: its URI (never carries credentials)."""
        return self._root_uri

    def uri_for(self, sha256: str) -> str:
        uri = f"{self._root_uri}/{object_key(sha256)}"
        return f"{uri}?{self._query}" if self._query else uri

    def put_file(self, path: Path, *, sha256: str | None = None, progress: ProgressCallback | None = None) -> Artifact:
        """Store a file (skipped when the object already exists with that hash); returns its artifact.

        ``progress(done_bytes, total_bytes)`` is called as the upload goes; without it, a progress bar shows on
        stderr when stderr is a terminal.
        """
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: no such file", "give the path of a file to store")
        if sha256 is None:
            sha256, size = sha256_file(path)
        else:
            size = path.stat().st_size
        if not self.exists(sha256):
            with transfer_progress(f"upload {path.name}", size, progress) as report:
                self._upload(path, sha256, size, report)
        return Artifact(uri=self.uri_for(sha256), sha256=sha256, size=size)

    def get_file(self, uri: str, dest: Path, *, progress: ProgressCallback | None = None) -> Path:
        """Download an artifact to dest (atomically) and verify it against the sha256 in its URI."""
        sha256 = sha256_from_uri(uri)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        try:
            with transfer_progress(f"download {dest.name}", None, progress) as report:
                streamed = self._download(sha256, partial, report)
            actual = streamed if isinstance(streamed, str) else sha256_file(partial)[0]
            if actual != sha256:
                raise ArtifactError(
                    f"{uri}: downloaded content hashes to {actual[:12]}…, not {sha256[:12]}…",
                    "the stored object is corrupt; put the original file again",
                )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def signed_url(self, uri: str, *, expires: int = 3600) -> str:
        """A URL that fetches the artifact without credentials, valid for ``expires`` seconds."""
        raise ArtifactError(f"{self.display_name}: this store cannot make shareable URLs",
                            "use an s3:// or supabase:// store for URLs, or `orchestrator artifacts get URI DEST`")

    def not_found(self, sha256: str) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(f"{self.uri_for(sha256)}: no such artifact",
                                     f"is the store {self.display_name} the right one?")

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the store holds a complete object with this hash."""

    @abstractmethod
    def _upload(self, path: Path, sha256: str, size: int, progress: Reporter) -> None:
        """Write the object; readers must never see a partial one."""

    @abstractmethod
    def _download(self, sha256: str, dest: Path, progress: Reporter) -> str | None:
        """Write the object's bytes to dest; raise ``self.not_found`` when absent.

        The caller verifies the bytes: a backend that hashed them as it wrote them returns the hex sha256 of dest
        (saving a second read); otherwise None, and the caller hashes dest.
        """

    @abstractmethod
    def list(self) -> Iterator[Artifact]: ...

    @abstractmethod
    def delete(self, sha256: str) -> None: ...


def scheme_of(uri: str) -> str:
    return urlsplit(uri).scheme
