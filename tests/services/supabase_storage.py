"""The REAL Supabase Storage server (supabase/storage v1.22.10, built from ../shared/services/) for the tests, behind
a ``/storage/v1`` gateway on loopback, as a hosted project looks.

- Build: ``tools/build-supabase-storage.sh`` (once per version, cached outside the repository, under a lock).
- Database: a fresh database ``storage_test_<pid>_<hex>`` on the local PostgreSQL, with the cluster-wide roles
  anon, authenticated, service_role and authenticator made as the server's DB_INSTALL_ROLES migration makes them
  (which fails when they exist, as they do while another run's server is up). Teardown drops the database,
  and the roles only when no other test run's storage database is left (PostgreSQL itself refuses to drop a role
  that another database still has grants for, which covers a run that starts meanwhile).
- Keys: a fresh HS256 secret per run; ``service_key`` and ``anon_key`` are JWTs with ``role`` service_role / anon.
- :class:`Gateway`: a reverse proxy that serves the server under ``/storage/v1`` (everything else is a 404, as the
  hosted gateway answers "no Route matched") and sets ``X-Forwarded-Prefix``/``-Host``/``-Proto``, so TUS upload
  URLs come back with the prefix. It records every request the way the stand-in does (:attr:`requests`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from standins.supabase_storage import Recorded

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-supabase-storage.sh"
PREFIX = "/storage/v1"
ROLES = ("anon", "authenticated", "service_role", "authenticator")
DB_PREFIX = "storage_test_"
_SETUP_LOCK = 0x5B5E5701  # pg advisory lock: one run at a time creates roles (migrations) or drops them
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
               "content-length", "host", "date", "server"}  # the last two: the gateway sends its own


class ServiceUnavailable(Exception):
    """The server could not be built or started here (the message says why)."""


def _jwt(secret: str, claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build() -> Path:
    """The server's build directory (built on first use; later calls return at once)."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceUnavailable(f"building the Supabase Storage server failed: {result.stderr.strip()[-1500:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class StoredView:
    """An object as the server holds it (read back through its API)."""

    data: bytes
    content_type: str
    cache_control: str
    user_metadata: dict | None


class SupabaseStorageServer:
    """One server process, its database and its gateway. ``url`` plays SUPABASE_URL (the gateway);
    ``storage_url`` is ``url + /storage/v1``; ``direct_url`` is the server itself (the API at ``/``)."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.database = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        self.secret = secrets.token_urlsafe(32)
        now = int(time.time())
        self.service_key = _jwt(self.secret, {"role": "service_role", "iat": now, "exp": now + 86400})
        self.anon_key = _jwt(self.secret, {"role": "anon", "iat": now, "exp": now + 86400})
        self.files = Path(tempfile.mkdtemp(prefix="supabase-storage-files-"))
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.gateway: Gateway | None = None
        self.log = self.files.parent / f"{self.files.name}.log"
        self.started_in = 0.0

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def _admin(self) -> sa.Engine:
        return sa.create_engine(make_url(self.pg_url).set(drivername="postgresql+psycopg"),
                                isolation_level="AUTOCOMMIT")

    def start(self) -> SupabaseStorageServer:
        started = time.monotonic()
        root = build()
        engine = self._admin()
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{self.database}"'))
                connection.execute(sa.text(f"SELECT pg_advisory_lock({_SETUP_LOCK})"))  # one run at a time
                try:
                    _drop_abandoned_databases(connection)
                    self._install_roles(connection)
                finally:
                    connection.execute(sa.text(f"SELECT pg_advisory_unlock({_SETUP_LOCK})"))
            self._spawn(root)
        except Exception:
            self.stop()
            raise
        finally:
            engine.dispose()
        self.gateway = Gateway(self.direct_url).start()
        self.started_in = time.monotonic() - started
        return self

    def _install_roles(self, admin: sa.Connection) -> None:
        """What the server's migration does with DB_INSTALL_ROLES=true, done here because that migration fails when
        the roles exist (another test run's server, on the same PostgreSQL, made them): the roles where missing,
        then the new database's storage schema and its grants."""
        existing = set(admin.execute(sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:r)"),
                                     {"r": list(ROLES)}).scalars())
        for role, options in (("anon", "NOLOGIN NOINHERIT"), ("authenticated", "NOLOGIN NOINHERIT"),
                              ("service_role", "NOLOGIN NOINHERIT BYPASSRLS"), ("authenticator", "LOGIN NOINHERIT")):
            if role not in existing:
                admin.execute(sa.text(f"CREATE ROLE {role} {options}"))
        for role in ("anon", "authenticated", "service_role", make_url(self.pg_url).username or "postgres"):
            admin.execute(sa.text(f'GRANT "{role}" TO authenticator'))
        engine = sa.create_engine(make_url(self.pg_url).set(drivername="postgresql+psycopg", database=self.database))
        roles = f"{make_url(self.pg_url).username or 'postgres'}, anon, authenticated, service_role"
        try:
            with engine.begin() as connection:
                connection.execute(sa.text("CREATE SCHEMA storage"))
                connection.execute(sa.text(f"GRANT USAGE ON SCHEMA storage TO {roles}"))
                for kind in ("TABLES", "FUNCTIONS", "SEQUENCES"):
                    connection.execute(sa.text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA storage GRANT ALL ON {kind} TO "
                                               f"{roles}"))
        finally:
            engine.dispose()

    def _spawn(self, root: Path) -> None:
        database_url = make_url(self.pg_url).set(database=self.database).render_as_string(hide_password=False)
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
            "NODE_ENV": "development", "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(self.port),
            "SERVER_ADMIN_PORT": str(_free_port()), "SERVER_REGION": "local", "TENANT_ID": "stub",
            "AUTH_JWT_SECRET": self.secret, "AUTH_JWT_ALGORITHM": "HS256",
            "ANON_KEY": self.anon_key, "SERVICE_KEY": self.service_key,
            "DATABASE_URL": database_url, "DB_INSTALL_ROLES": "false",  # see _install_roles "DB_ANON_ROLE": "anon",
            "DB_SERVICE_ROLE": "service_role", "DB_AUTHENTICATED_ROLE": "authenticated",
            "DB_SUPER_USER": make_url(self.pg_url).username or "postgres", "DB_ALLOW_MIGRATION_REFRESH": "true",
            "STORAGE_BACKEND": "file", "STORAGE_FILE_BACKEND_PATH": str(self.files),
            "FILE_STORAGE_BACKEND_PATH": str(self.files),
            "STORAGE_S3_BUCKET": "stub",  # even with the file backend: without it DELETE is a 500
            "STORAGE_FILE_ETAG_ALGORITHM": "md5",
            "UPLOAD_FILE_SIZE_LIMIT": str(500 * 1024 * 1024),
            "UPLOAD_FILE_SIZE_LIMIT_STANDARD": str(50 * 1024 * 1024),  # the hosted free plan's 50 MB
            "TUS_URL_PATH": "/upload/resumable", "TUS_URL_EXPIRY_MS": "3600000", "TUS_PART_SIZE": "50",
            "REQUEST_ALLOW_X_FORWARDED_PATH": "true", "IMAGE_TRANSFORMATION_ENABLED": "false",
            "RATE_LIMITER_ENABLED": "false", "PG_QUEUE_ENABLE": "false", "DEFAULT_METRICS_ENABLED": "false",
            "LOG_LEVEL": "warn",
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["node", "dist/start/server.js"], cwd=root, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceUnavailable(f"the Supabase Storage server exited ({self.process.returncode}): "
                                         f"{self.log.read_text(errors='replace')[-1500:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/status")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise ServiceUnavailable(f"the Supabase Storage server did not answer within 60 s: "
                                 f"{self.log.read_text(errors='replace')[-1500:]}")

    def restart(self, down_for: float = 0.0) -> None:
        """Kill the server (no graceful shutdown: what a crash or a redeploy does), wait, start it again on the
        same port, database and files."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        time.sleep(down_for)
        self._spawn(build())

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # nothing to keep: its database and files go next
            self.process.wait()
        engine = self._admin()
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
                connection.execute(sa.text(f"SELECT pg_advisory_lock({_SETUP_LOCK})"))
                try:
                    others = connection.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE :p"),
                                                {"p": f"{DB_PREFIX}%"}).scalar()
                    if not others:
                        for role in ROLES:
                            try:
                                connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
                            except sa.exc.DBAPIError:  # another database still has grants for it
                                pass
                finally:
                    connection.execute(sa.text(f"SELECT pg_advisory_unlock({_SETUP_LOCK})"))
        finally:
            engine.dispose()
        shutil.rmtree(self.files, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> SupabaseStorageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses -----------------------------------------------------------------------------------------

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def storage_url(self) -> str:
        return f"{self.url}{PREFIX}"

    # ---- what the tests look at and set up -----------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        assert self.gateway is not None
        return self.gateway.requests

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path.startswith(path))]

    def api(self, method: str, path: str, *, body: bytes | dict | None = None, headers: dict | None = None,
            key: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request straight to the server (not recorded): (status, lower-case headers, body)."""
        sent = {"Authorization": f"Bearer {key or self.service_key}", "apikey": key or self.service_key,
                **(headers or {})}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def create_bucket(self, name: str, *, file_size_limit: int | None = None) -> None:
        body: dict = {"id": name, "name": name, "public": False}
        if file_size_limit is not None:
            body["file_size_limit"] = file_size_limit
        status, _, answer = self.api("POST", "/bucket", body=body)
        assert status == 200, answer

    def object(self, bucket: str, name: str) -> StoredView | None:
        path = f"{quote(bucket)}/{quote(name)}"
        status, _, info = self.api("GET", f"/object/info/{path}")
        if status != 200:
            return None
        meta = json.loads(info)
        status, _, data = self.api("GET", f"/object/{path}")
        assert status == 200, data
        return StoredView(data, meta.get("content_type") or "", meta.get("cache_control") or "", meta.get("metadata"))

    def reset(self) -> None:
        """No buckets, no objects, no recorded requests."""
        engine = sa.create_engine(make_url(self.pg_url).set(drivername="postgresql+psycopg", database=self.database))
        try:
            with engine.begin() as connection:
                connection.execute(sa.text("TRUNCATE storage.buckets CASCADE"))
        finally:
            engine.dispose()
        for child in self.files.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        self.requests.clear()


def _drop_abandoned_databases(admin: sa.Connection) -> None:
    """Databases of earlier runs on this host that died before their teardown: the process named in the database's
    name is gone and nobody is connected to it."""
    for name in admin.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p AND datname NOT IN "
                                      "(SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)"),
                              {"p": f"{DB_PREFIX}%"}).scalars():
        pid = name[len(DB_PREFIX):].split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            admin.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))


class Gateway:
    """``/storage/v1/*`` → the server at ``/``, with the forwarding headers a hosted project's gateway sets."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[Recorded] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Gateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    gateway._forward(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        return Handler

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        if not (parts.path == PREFIX or parts.path.startswith(PREFIX + "/")):
            _send(handler, 404, {"content-type": "application/json"},
                  b'{"message":"no Route matched with those values"}')
            return
        below = parts.path[len(PREFIX):] or "/"
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.requests.append(_record(handler.command, unquote(below), parts.query, headers, body))
        host = headers.get("host", self.url.split("//", 1)[1])
        forwarded = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        forwarded.update({"Host": host, "X-Forwarded-Host": host.split(":")[0], "X-Forwarded-Proto": "http",
                          "X-Forwarded-Port": host.split(":")[1] if ":" in host else "80",
                          "X-Forwarded-Prefix": PREFIX})
        if body or handler.command in ("POST", "PUT", "PATCH"):
            forwarded["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            target = below + (f"?{parts.query}" if parts.query else "")
            try:
                upstream.request(handler.command, target, body=body, headers=forwarded)
                response = upstream.getresponse()
            except OSError:  # the server is down (a test restarts it): a gateway answers 502
                _send(handler, 502, {"content-type": "text/plain"}, b"upstream connect error")
                return
            answer = {k.lower(): v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            if handler.command == "HEAD":
                _send(handler, response.status, {**answer, "content-length": response.getheader("content-length")
                                                 or "0"}, b"")
                return
            total = response.getheader("content-length")
            if total is None:  # chunked upstream: pass it on whole
                _send(handler, response.status, answer, response.read())
                return
            handler.send_response(response.status)
            for name, value in answer.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", total)
            handler.end_headers()
            while block := response.read(1024 * 1024):
                handler.wfile.write(block)
        finally:
            upstream.close()


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        if name != "content-length":
            handler.send_header(name, value)
    handler.send_header("Content-Length", headers.get("content-length") if handler.command == "HEAD"
                        else str(len(body)))
    handler.end_headers()
    if body and handler.command != "HEAD":
        handler.wfile.write(body)


def _record(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Recorded:
    record = Recorded(method, path, parse_qs(query), headers, len(body))
    if method == "POST" and path.rstrip("/") == "/upload/resumable":
        record.tus_metadata = {}
        for pair in filter(None, headers.get("upload-metadata", "").split(",")):
            key, _, value = pair.strip().partition(" ")
            record.tus_metadata[key] = base64.b64decode(value).decode() if value else ""
    if headers.get("content-type", "").startswith("application/json") and body:
        try:
            record.json = json.loads(body)
        except ValueError:
            pass
    return record


def session_server(pg_url: str) -> Iterator[SupabaseStorageServer]:
    """The session fixture's body: the server, or a skip (a failure in CI, CI=true) saying why it is absent."""
    import pytest

    try:
        server = SupabaseStorageServer(pg_url).start()
    except (ServiceUnavailable, OSError, sa.exc.DBAPIError) as error:
        reason = f"the real Supabase Storage server is not available: {' '.join(str(error).split())[:600]}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (in CI this server must start)")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()
