"""Where things live: the per-user data directory, the database URL and the default artifact store.

Precedence for every setting: command-line option > environment variable > built-in default. Nothing here reads
secrets into anything that is stored or printed; use :func:`mask_url` before showing a URL.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DATABASE_URL_ENV = "ORCHESTRATOR_DATABASE_URL"
HOME_ENV = "ORCHESTRATOR_HOME"
STORE_ENV = "ORCHESTRATOR_STORE"


def data_dir() -> Path:
    """The per-user data directory (``$ORCHESTRATOR_HOME``, else ``$XDG_DATA_HOME/orchestrator``)."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "orchestrator"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'orchestrator.db'}"


def default_store_uri() -> str:
    return (data_dir() / "artifacts").as_uri()


@dataclass(frozen=True)
class Settings:
    database_url: str
    store_uri: str

    @classmethod
    def resolve(cls, database_url: str | None = None, store_uri: str | None = None) -> "Settings":
        return cls(
            database_url=database_url or os.environ.get(DATABASE_URL_ENV) or default_database_url(),
            store_uri=store_uri or os.environ.get(STORE_ENV) or default_store_uri(),
        )


# user:password@ inside any URL-looking text; the password is replaced, the user kept so errors stay useful.
_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s'\"]+")


def mask_url(text: str) -> str:
    """Hide passwords in a URL, or in any message that may quote one (driver errors do)."""
    text = _CREDENTIALS_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _PASSWORD_PARAM.sub(r"\1***", text)
