"""Content-addressed artifact stores, chosen by URI scheme (file:// by default; s3:// and supabase:// to come).

The database keeps only URIs and hashes; credentials come from the environment of the process that opens a store.
"""

from orchestrator.artifacts.base import Artifact, ArtifactStore, sha256_file
from orchestrator.artifacts.registry import get_artifact, open_store

__all__ = ["Artifact", "ArtifactStore", "sha256_file", "open_store", "get_artifact"]
