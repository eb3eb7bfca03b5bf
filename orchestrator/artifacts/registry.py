"""Pick the backend from a URI's scheme."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.artifacts.base import ArtifactError, ArtifactStore, scheme_of, store_uri_of
from orchestrator.artifacts.credentials import check_store_uri
from orchestrator.config import Settings


def _file_store(uri: str) -> ArtifactStore:
    from orchestrator.artifacts.file_store import FileStore

    return FileStore(uri)


def _s3_store(uri: str) -> ArtifactStore:
    from orchestrator.artifacts.s3_store import S3Store

    return S3Store(uri)


def _supabase_store(uri: str) -> ArtifactStore:
    from orchestrator.artifacts.supabase_store import SupabaseStore

    return SupabaseStore(uri)


BACKENDS: dict[str, Callable[[str], ArtifactStore]] = {
    "file": _file_store,
    "s3": _s3_store,
    "supabase": _supabase_store,
}


def open_store(uri: str | None = None) -> ArtifactStore:
    """Open the store at ``uri`` (default: $ORCHESTRATOR_STORE, else the per-user local store).

    A bare path means a local store. URIs that embed credentials are refused: store URIs end up in the tracking
    database, so keys belong in the environment.
    """
    uri = uri or Settings.resolve().store_uri
    if "://" not in uri:  # a bare path means a local store
        uri = Path(uri).expanduser().resolve().as_uri()
    check_store_uri(uri, hint="put keys in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                              "SUPABASE_SERVICE_ROLE_KEY), never in the store URI")
    scheme = scheme_of(uri)
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ArtifactError(
            f"artifact store {uri.split('?', 1)[0]!r} has an unknown scheme {scheme!r}",
            f"known schemes: {', '.join(sorted(BACKENDS))}",
        )
    return factory(uri)


def get_artifact(uri: str, dest: Path, *, progress=None) -> Path:
    """Fetch any artifact URI to dest, verified, from the store that the URI names."""
    return open_store(store_uri_of(uri)).get_file(uri, dest, progress=progress)


def resolve_artifact(ref: str, store_uri: str | None = None) -> str:
    """The full URI of the artifact ``ref`` names: an artifact URI as it is, else its sha256 or a unique prefix of
    it (4+ hexadecimal characters, ``sha256:`` allowed in front) in the store ``store_uri`` (default: the
    configured one), as the tables print it."""
    from orchestrator.errors import AmbiguousIdError, InputError, NotFoundError

    if "://" in ref:
        return ref
    prefix = ref.removeprefix("sha256:").lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        raise InputError(f"{ref!r} is neither an artifact URI nor a sha256 prefix",
                         "give the URI `orchestrator artifacts ls` prints, or 4+ hexadecimal characters of the sha256")
    store = open_store(store_uri)
    matches = [a.uri for a in store.list() if a.sha256.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(f"no artifact {ref!r} in {store.display_name}",
                            "list them with `orchestrator artifacts ls` (and --store URI for another store)")
    raise AmbiguousIdError(f"{ref!r} matches {len(matches)} artifacts in {store.display_name}",
                           "give more characters of the sha256")
