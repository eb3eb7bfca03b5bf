"""What every remote launcher needs: refuse what a remote worker could not reach, and hand it its credentials.

A worker on another machine records into the same database and artifact store, so both must be reachable from
there: a SQLite file or a file:// store on this laptop is not. Credentials travel in the worker process's
environment only — never on a command line, in the database or in a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from orchestrator.config import DATABASE_URL_ENV, STORE_ENV, mask_url
from orchestrator.errors import ConfigError

# Variables a worker needs to reach the database and the store (and nothing else of ours).
PASS_THROUGH_PREFIXES = ("SUPABASE_", "AWS_")
PASS_THROUGH = (DATABASE_URL_ENV, STORE_ENV)


def check_remote_reachable(database_url: str, store_uri: str, environ: Mapping[str, str] = os.environ) -> None:
    """Refuse, before anything is queued, a launch whose worker could not reach the database or the store."""
    database_scheme = urlparse(database_url).scheme.split("+")[0]
    if database_scheme == "sqlite":
        raise ConfigError(
            f"the tracking database {mask_url(database_url)} is a SQLite file on this machine: a remote worker "
            "cannot record into it",
            f"use a PostgreSQL/Supabase database for remote runs (--database or {DATABASE_URL_ENV})",
        )
    scheme = urlparse(store_uri).scheme
    if scheme == "file":
        raise ConfigError(
            f"the artifact store {store_uri} is a folder on this machine: a remote worker cannot reach it",
            f"use an s3:// or supabase:// store for remote runs (--store or {STORE_ENV})",
        )
    if scheme == "supabase":
        missing = [name for name in ("SUPABASE_URL",) if not environ.get(name)]
        if not (environ.get("SUPABASE_SERVICE_ROLE_KEY") or environ.get("SUPABASE_KEY")):
            missing.append("SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_KEY)")
        if missing:
            raise ConfigError(f"the supabase:// store needs {', '.join(missing)} in the environment",
                              "the remote worker gets them through its environment, never its command line")
    if scheme == "s3" and not (environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")):
        raise ConfigError("the s3:// store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
                          "the remote worker gets them through its environment, never its command line")


def worker_environment(database_url: str, store_uri: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables a remote worker gets: the database URL, the store and the storage credentials."""
    env = {k: v for k, v in environ.items() if k.startswith(PASS_THROUGH_PREFIXES) or k in PASS_THROUGH}
    env[DATABASE_URL_ENV] = database_url
    env[STORE_ENV] = store_uri
    for key, value in env.items():
        if "\n" in value or "\0" in value:
            raise ConfigError(f"environment variable {key} has a line break", "it cannot be passed to a worker")
    return env
