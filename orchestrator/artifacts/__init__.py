"""Content-addressed artifact stores, chosen by URI scheme: file:// (the default), s3://, supabase://.

The database keeps only URIs and hashes; credentials come from the environment of the process that opens a store.
"""

from orchestrator.artifacts.base import Artifact, ArtifactError, ArtifactNotFoundError, ArtifactStore, sha256_file
from orchestrator.artifacts.registry import get_artifact, open_store
from orchestrator.artifacts.retry import RetryPolicy

__all__ = [
           "Artifact",
           "ArtifactError",
           "ArtifactNotFoundError",
           "ArtifactStore",
           "RetryPolicy",
           "get_artifact",
           "open_store",
           "sha256_file",
]
