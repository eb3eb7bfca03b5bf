"""Serving the review UI: where it may listen (loopback, or anywhere with an access token) and the uvicorn server."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from orchestrator.config import data_dir
from orchestrator.errors import ConfigError

TOKEN_ENV = "ORCHESTRATOR_UI_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Anything but loopback needs an access token: the pages show every run, the forms change them."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to serve the UI on {host}: it is not a loopback address and no token is set",
                          f"pass --token or set {TOKEN_ENV}, or bind 127.0.0.1")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def default_cache_dir() -> Path:
    """Verified copies of fetched artifacts, keyed by sha256 (never stale), in the per-user data directory."""
    return data_dir() / "ui-cache"


def build_server(database_url: str | None, *, host: str, port: int, token: str | None = None,
                 cache_dir: Path | None = None):
    """A uvicorn server for the app (not started): ``.run()`` blocks, tests run it in a thread."""
    import uvicorn

    from orchestrator.ui.app import create_app

    check_bind(host, token)
    app = create_app(database_url, cache_dir=cache_dir or default_cache_dir(), token=token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)
