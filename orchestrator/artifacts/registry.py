"""Pick the backend from a URI's scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from orchestrator.artifacts.base import ArtifactError, ArtifactStore
from orchestrator.config import Settings


def _file_store(uri: str) -> ArtifactStore:
    from orchestrator.artifacts.file_store import FileStore

    return FileStore(uri)


BACKENDS = {"file": _file_store}


def open_store(uri: str | None = None) -> ArtifactStore:
    """Open the store at ``uri`` (default: $ORCHESTRATOR_STORE, else the per-user local store)."""
    uri = uri or Settings.resolve().store_uri
    if "://" not in uri:  # a bare path means a local store
        uri = Path(uri).expanduser().resolve().as_uri()
    scheme = urlparse(uri).scheme
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ArtifactError(
            f"artifact store {uri!r} has an unknown scheme {scheme!r}",
            f"known schemes: {', '.join(sorted(BACKENDS))}",
        )
    return factory(uri)


def get_artifact(uri: str, dest: Path) -> Path:
    """Fetch any artifact URI to dest, verified, from the store that the URI names."""
    store_uri = uri.rsplit("/sha256/", 1)[0]
    return open_store(store_uri).get_file(uri, dest)
