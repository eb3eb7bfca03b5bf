"""Servers and stores for the artifact tests (imported by tests/test_artifacts_*.py).

- S3: moto's ThreadedMotoServer, a real HTTP S3 server on 127.0.0.1 (one per test module), a fresh bucket per test.
- Supabase: the real Supabase Storage server (tests/services/supabase_storage.py, one per session, behind a
  ``/storage/v1`` gateway) emptied for every test; the stand-in of tests/standins/supabase_storage.py only for the
  faults the real server cannot be made to produce.
Retries are made fast (milliseconds) so fault tests stay quick.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
from standins.supabase_storage import SupabaseStorageStandIn

from orchestrator.artifacts import retry

MB = 1024 * 1024
FAST = retry.RetryPolicy(attempts=4, base_delay=0.005, max_delay=0.02, deadline=30)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "DEFAULT_POLICY", FAST)


@pytest.fixture(autouse=True)
def _no_cloud_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No credentials or config from the developer's environment leak into a test."""
    for name in ("SUPABASE_URL", "SUPABASE_STORAGE_URL", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-access-key-do-not-show")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_uri(moto_endpoint: str) -> str:
    """A store URI on a bucket no other test uses (the store creates it on first upload)."""
    return f"s3://ckpt-{secrets.token_hex(4)}/team?endpoint={moto_endpoint}&region=us-east-1"


@pytest.fixture(scope="module")
def _standin_server() -> Iterator[SupabaseStorageStandIn]:
    with SupabaseStorageStandIn() as server:
        yield server


@pytest.fixture
def supabase(supabase_storage_server, monkeypatch: pytest.MonkeyPatch, _no_cloud_env: None):
    """The real Supabase Storage server, emptied, with SUPABASE_URL (its gateway) and SUPABASE_SERVICE_ROLE_KEY set."""
    supabase_storage_server.reset()
    monkeypatch.setenv("SUPABASE_URL", supabase_storage_server.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", supabase_storage_server.service_key)
    return supabase_storage_server


@pytest.fixture
def standin(_standin_server: SupabaseStorageStandIn, monkeypatch: pytest.MonkeyPatch,
            _no_cloud_env: None) -> SupabaseStorageStandIn:
    """The Supabase Storage stand-in (for injected faults only), emptied, with SUPABASE_URL and
    SUPABASE_SERVICE_ROLE_KEY pointing at it."""
    _standin_server.reset()
    _standin_server.file_size_limit = 50 * MB
    monkeypatch.setenv("SUPABASE_URL", _standin_server.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", _standin_server.service_key)
    return _standin_server
