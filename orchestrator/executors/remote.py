"""What every remote launcher needs: refuse what a remote worker could not reach, and hand it its credentials.

A worker on another machine records into the same database and artifact store, so both must be reachable from
there: a SQLite file or a file:// store on this laptop is not. Credentials travel in the worker process's
environment only — never on a command line, in the database or in a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from orchestrator.config import DATABASE_URL_ENV, STORE_ENV, mask_url
from orchestrator.errors import ConfigError

# Forwarded to a worker: the store's credentials. Profiles and credential files name files on this machine.
PASS_THROUGH_PREFIXES = ("SUPABASE_", "AWS_")
NOT_FORWARDED = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_PROFILE")
# Forwarded only where the launcher checks the file is there too (ssh); a fresh pod cannot have a laptop's file.
PATH_VALUED = ("AWS_CA_BUNDLE",)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")


def _remote_hint(what: str) -> str:
    return (f"{what}; a remote worker records into the same database and store as this machine: use a PostgreSQL "
            f"database both reach (e.g. Supabase, --database or ${DATABASE_URL_ENV}) and an s3:// or supabase:// "
            f"store (--store or ${STORE_ENV})")


def check_remote_reachable(database_url: str | None, store_uri: str | None, environ: Mapping[str, str] = os.environ,
                           *, worker_on_this_machine: bool = False) -> None:
    """Refuse a launch whose worker could not reach the database or the store, or would lack their credentials.

    ``database_url``/``store_uri``: what this machine uses (None: taken from ``environ``). Raises ConfigError with
    one line naming the missing variable or the unreachable location. ``worker_on_this_machine`` (an ssh target
    that is this host) lets services on localhost count as reachable.
    """
    local_hosts = () if worker_on_this_machine else LOCAL_HOSTS
    database_url = database_url or environ.get(DATABASE_URL_ENV)
    if not database_url:
        raise ConfigError(f"{DATABASE_URL_ENV} is not set", _remote_hint("a remote worker needs the database URL"))
    db = urlsplit(database_url)
    scheme = db.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        raise ConfigError(f"the tracking database is SQLite ({mask_url(database_url)}): a remote worker could not "
                          "reach it", _remote_hint("SQLite is a file on this machine"))
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"the tracking database URL has an unknown scheme {scheme!r}",
                          "use postgresql://USER:PASSWORD@HOST:PORT/DB")
    if (db.hostname or "") in local_hosts:
        raise ConfigError(f"the tracking database is on {db.hostname or 'a local socket'} "
                          f"({mask_url(database_url)}): a remote worker could not reach it",
                          _remote_hint("give a host name the worker can reach"))

    store_uri = store_uri or environ.get(STORE_ENV)
    if not store_uri:
        raise ConfigError(f"{STORE_ENV} is not set", _remote_hint("the default store is a local folder"))
    store = urlsplit(store_uri)
    if "://" not in store_uri or store.scheme == "file":
        raise ConfigError(f"the artifact store {store_uri!r} is a local folder: a remote worker could not reach it",
                          _remote_hint("checkpoints must go to a shared store"))
    if store.scheme == "s3":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if not environ.get(name):
                raise ConfigError(f"{name} is not set (the s3:// store's credentials for the remote worker)",
                                  "export it here; the launcher passes it to the worker's environment "
                                  "(AWS_PROFILE does not travel)")
        endpoint = dict(parse_qsl(store.query)).get("endpoint")
        if endpoint and (urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or "") in local_hosts:
            raise ConfigError(f"the s3 store's endpoint {endpoint} is on this machine: a remote worker could not "
                              "reach it", _remote_hint("use an endpoint the worker can reach"))
    elif store.scheme == "supabase":
        url = environ.get("SUPABASE_URL") or environ.get("SUPABASE_STORAGE_URL")
        if not url:
            raise ConfigError("SUPABASE_URL is not set (or SUPABASE_STORAGE_URL; the supabase:// store's server "
                              "for the remote worker)", "export it here; the launcher passes it to the worker")
        if not (environ.get("SUPABASE_SERVICE_ROLE_KEY") or environ.get("SUPABASE_KEY")):
            raise ConfigError("SUPABASE_SERVICE_ROLE_KEY is not set (or SUPABASE_KEY; the supabase:// store's key "
                              "for the remote worker)", "export it here; the launcher passes it to the worker")
        if (urlsplit(url).hostname or "") in local_hosts:
            raise ConfigError(f"Supabase at {url} is on this machine: a remote worker could not reach it",
                              _remote_hint("use a Supabase project the worker can reach"))
    else:
        raise ConfigError(f"the artifact store {store_uri.split('?', 1)[0]!r} has a scheme {store.scheme!r} "
                          "a remote worker cannot use", "use an s3:// or supabase:// store")


def worker_environment(database_url: str, store_uri: str, environ: Mapping[str, str] = os.environ, *,
                       forward_paths: bool = False) -> dict[str, str]:
    """The variables a remote worker gets: the database URL, the store and the storage credentials.

    ``forward_paths``: also the variables naming a file (PATH_VALUED), for a launcher that checks the file exists
    on the worker's machine (see :func:`check_worker_setup`)."""
    skipped = NOT_FORWARDED if forward_paths else NOT_FORWARDED + PATH_VALUED
    env = {k: v for k, v in sorted(environ.items())
           if k.startswith(PASS_THROUGH_PREFIXES) and k not in skipped and v}
    env[DATABASE_URL_ENV] = database_url
    env[STORE_ENV] = store_uri
    for key, value in env.items():
        if "\n" in value or "\0" in value:
            raise ConfigError(f"environment variable {key} has a line break", "it cannot be passed to a worker")
    return env


def _remote_sd_scripts_hint() -> str:
    from orchestrator.sd_scripts import pinned_commit

    return (f"pass --remote-sd-scripts PATH (a checkout of kohya-ss/sd-scripts at {pinned_commit()[:12]} on that "
            "host) and, unless it has a venv/ inside, --remote-sd-scripts-python PATH")


def check_worker_setup(sd_scripts: str | None, *, launched_by: str | None = None,
                       environ: Mapping[str, str] = os.environ) -> dict:
    """A worker's machine, checked before it claims anything: the sd-scripts checkout, the Python that runs it,
    and the files named by forwarded PATH_VALUED variables. Returns what was found (``missing_files``: the
    variables whose file is not here); raises ConfigError naming what is missing. ``launched_by="ssh"``: the
    hints name the launch's options (--remote-sd-scripts, …) instead of this machine's."""
    import subprocess

    from orchestrator.sd_scripts import SD_SCRIPTS_PYTHON_ENV, locate

    remote = launched_by == "ssh"
    try:
        found = locate(sd_scripts)
    except ConfigError as error:
        if not remote:
            raise
        raise ConfigError(error.message, _remote_sd_scripts_hint()) from None
    python_hint = ("pass --remote-sd-scripts-python PATH (the Python with sd-scripts' requirements there)" if remote
                   else f"set {SD_SCRIPTS_PYTHON_ENV} to the Python with sd-scripts' requirements")
    try:
        result = subprocess.run([found.python, "-c", "import sys; print(sys.version_info[0])"], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
    except OSError as error:
        raise ConfigError(f"the Python for sd-scripts {found.python} does not run: {error.strerror}",
                          python_hint) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the Python for sd-scripts {found.python} did not answer within 60 s", python_hint) from None
    if result.returncode != 0 or result.stdout.strip() != "3":
        detail = " ".join(result.stderr.split())[-200:] or f"exit {result.returncode}"
        raise ConfigError(f"the Python for sd-scripts {found.python} does not run: {detail}", python_hint)
    missing = {name: environ[name] for name in PATH_VALUED if environ.get(name) and not os.path.isfile(environ[name])}
    return {"ok": True, "sd_scripts": str(found.path), "commit": found.commit, "python": found.python,
            "missing_files": missing}
