"""supabase:// against the Storage stand-in (tests/standins/supabase_storage.py): the exact requests the backend
sends, resumable uploads, retries, size limits, credentials. The last test runs against a real Supabase project or
storage server when SUPABASE_URL (or SUPABASE_STORAGE_URL) and SUPABASE_SERVICE_ROLE_KEY are set.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

import pytest
from artifact_fixtures import MB, _fast_retries, _no_cloud_env, _standin_server, standin  # noqa: F401

from orchestrator.artifacts import ArtifactError, open_store
from orchestrator.artifacts.base import object_key
from orchestrator.artifacts.retry import RetryPolicy
from orchestrator.artifacts.supabase_store import SupabaseStore
from orchestrator.config import data_dir

BUCKET = "checkpoints"
ONE_TRY = RetryPolicy(attempts=1)


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(sha256: str) -> str:
    return f"runs/{object_key(sha256)}"


def _state_files() -> list[Path]:
    return sorted((data_dir() / "uploads").rglob("*.json")) if (data_dir() / "uploads").exists() else []


def test_small_put_sends_exactly_these_requests(standin, tmp_path):
    source = _file(tmp_path / "sample.png", 5000)
    sha = _sha(source)
    artifact = open_store(f"supabase://{BUCKET}/runs").put_file(source)
    assert artifact.uri == f"supabase://{BUCKET}/runs/{object_key(sha)}"
    assert [(r.method, r.path) for r in standin.requests] == [
        ("GET", f"/object/info/{BUCKET}/{_name(sha)}"),  # exists? (no)
        ("GET", f"/bucket/{BUCKET}"),  # bucket? (no: 400 with statusCode 404 in the body)
        ("POST", "/bucket"),  # create it, private
        ("POST", f"/object/{BUCKET}/{_name(sha)}"),  # one multipart POST: 5000 bytes is under 6 MB
    ]
    for request in standin.requests:
        assert request.headers["apikey"] == standin.service_key
        assert request.headers["authorization"] == f"Bearer {standin.service_key}"
    assert standin.requests[2].json == {"id": BUCKET, "name": BUCKET, "public": False}
    upload = standin.requests[3]
    assert upload.headers["x-upsert"] == "true"  # a string, as storage3 requires
    assert upload.headers["content-type"].startswith("multipart/form-data")
    stored = standin.object(BUCKET, _name(sha))
    assert stored.data == source.read_bytes()
    assert stored.content_type == "application/octet-stream"  # not storage3's default text/plain
    assert stored.cache_control == "max-age=31536000"
    assert stored.user_metadata == {"sha256": sha}


def test_large_put_goes_through_tus_in_6mb_chunks(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 13 * MB + 5)
    sha = _sha(source)
    standin.buckets[BUCKET] = {}
    standin.bucket_meta[BUCKET] = {"id": BUCKET, "name": BUCKET, "owner": "", "public": False,
                                   "file_size_limit": None, "allowed_mime_types": None,
                                   "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    open_store(f"supabase://{BUCKET}/runs").put_file(source)
    methods = [(r.method, r.path.split("/resumable/")[0]) for r in standin.requests]
    assert methods == [("GET", f"/object/info/{BUCKET}/{_name(sha)}"), ("GET", f"/bucket/{BUCKET}"),
                       ("POST", "/upload/resumable")] + [("PATCH", "/upload")] * 3
    create = standin.requests[2]
    assert create.headers["tus-resumable"] == "1.0.0"
    assert create.headers["upload-length"] == str(13 * MB + 5)
    assert create.headers["x-upsert"] == "true"
    assert create.headers["apikey"] == standin.service_key
    assert create.headers["authorization"] == f"Bearer {standin.service_key}"
    assert create.tus_metadata == {"bucketName": BUCKET, "objectName": _name(sha),
                                   "contentType": "application/octet-stream", "cacheControl": "31536000",
                                   "metadata": json.dumps({"sha256": sha})}
    patches = standin.requests[3:]
    assert [p.body_size for p in patches] == [6 * MB, 6 * MB, MB + 5]
    assert [p.headers["upload-offset"] for p in patches] == ["0", str(6 * MB), str(12 * MB)]
    assert all(p.headers["content-type"] == "application/offset+octet-stream" for p in patches)
    assert all(p.headers["tus-resumable"] == "1.0.0" and p.headers["x-upsert"] == "true" for p in patches)
    assert hashlib.sha256(standin.object(BUCKET, _name(sha)).data).hexdigest() == sha
    assert _state_files() == []  # the saved upload URL is gone once the upload completes


def test_interrupted_40mb_upload_resumes_from_the_server_offset(standin, tmp_path):
    """The connection dies during the third chunk; the next run sends HEAD, then only the chunks still missing."""
    source = _file(tmp_path / "lora-40mb.safetensors", 40 * MB)
    sha = _sha(source)
    standin.drop_patch_after(2)
    with pytest.raises(ArtifactError) as failure:
        SupabaseStore(f"supabase://{BUCKET}/runs", retry=ONE_TRY).put_file(source)
    assert failure.value.one_line().startswith(f"supabase://{BUCKET}/runs at {standin.url}/storage/v1: could not "
                                               "upload lora-40mb.safetensors: the server did not answer")
    assert "resumes when run again" in failure.value.one_line()
    [state] = _state_files()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert saved["sha256"] == sha and saved["store"] == f"supabase://{BUCKET}/runs"
    assert saved["upload_url"].startswith(f"{standin.url}/storage/v1/upload/resumable/")
    assert len(standin.calls("POST", "/upload/resumable")) == 1
    assert standin.object(BUCKET, _name(sha)) is None

    standin.requests.clear()
    artifact = SupabaseStore(f"supabase://{BUCKET}/runs", retry=ONE_TRY).put_file(source)  # a new run
    assert [(r.method, r.path.split("/resumable/")[0]) for r in standin.requests] == [
        ("GET", f"/object/info/{BUCKET}/{_name(sha)}"), ("GET", f"/bucket/{BUCKET}"), ("HEAD", "/upload"),
    ] + [("PATCH", "/upload")] * 5
    patches = standin.calls("PATCH")
    assert [int(p.headers["upload-offset"]) for p in patches] == [12 * MB, 18 * MB, 24 * MB, 30 * MB, 36 * MB]
    assert sum(p.body_size for p in patches) == 28 * MB
    assert standin.requests[2].path == saved["upload_url"].split("/storage/v1")[1]
    assert hashlib.sha256(standin.object(BUCKET, _name(sha)).data).hexdigest() == sha == artifact.sha256
    assert _state_files() == []


def test_ctrl_c_after_two_chunks_then_resume(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 20 * MB)
    sha = _sha(source)

    def interrupt_after_two_chunks(done, total):
        if done >= 12 * MB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        open_store(f"supabase://{BUCKET}").put_file(source, progress=interrupt_after_two_chunks)
    assert len(_state_files()) == 1
    standin.requests.clear()
    open_store(f"supabase://{BUCKET}").put_file(source)
    assert [int(p.headers["upload-offset"]) for p in standin.calls("PATCH")] == [12 * MB, 18 * MB]
    assert standin.calls("POST", "/upload/resumable") == []
    assert hashlib.sha256(standin.object(BUCKET, object_key(sha)).data).hexdigest() == sha


def test_dropped_connection_is_resumed_within_the_same_run(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 19 * MB)
    standin.drop_patch_after(1)
    open_store(f"supabase://{BUCKET}").put_file(source)
    creates, heads = standin.calls("POST", "/upload/resumable"), standin.calls("HEAD")
    assert len(creates) == 1 and len(heads) == 1
    offsets = [int(p.headers["upload-offset"]) for p in standin.calls("PATCH")]
    assert offsets == [0, 6 * MB, 6 * MB, 12 * MB, 18 * MB]  # the dropped chunk is sent again after the HEAD
    assert standin.object(BUCKET, object_key(_sha(source))).data == source.read_bytes()


def test_expired_upload_url_starts_a_new_upload(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 7 * MB)
    store = open_store(f"supabase://{BUCKET}")
    store.resumable.put(_sha(source), f"{standin.storage_url}/upload/resumable/Z29uZQ")
    store.put_file(source)
    assert [r.method for r in standin.requests if "/upload/resumable" in r.path] == ["HEAD", "POST", "PATCH",
                                                                                    "PATCH"]
    assert _state_files() == []


def test_bursts_of_server_errors_are_retried(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 13 * MB)
    standin.fail_next(2, status=503, method="GET", path="/object/info/")
    standin.fail_next(3, status=502, method="PATCH", after=1)  # the gateway fails the 2nd chunk three times
    standin.fail_next(1, status=429, method="POST", path="/upload/resumable")
    artifact = open_store(f"supabase://{BUCKET}").put_file(source)
    assert len(standin.calls("GET", "/object/info/")) == 3
    assert len(standin.calls("POST", "/upload/resumable")) == 2
    offsets = [int(p.headers["upload-offset"]) for p in standin.calls("PATCH")]
    assert offsets == [0] + [6 * MB] * 4 + [12 * MB]
    standin.fail_next(2, status=500, method="GET", path="/object/")
    assert open_store(f"supabase://{BUCKET}").get_file(artifact.uri, tmp_path / "back").read_bytes() == \
        source.read_bytes()


def test_errors_in_json_bodies_of_400s_are_read_for_their_real_status(standin, tmp_path):
    """A 400 whose body says statusCode 503 is retried; one whose body says 403 is not."""
    body = json.dumps({"statusCode": "503", "error": "DatabaseTimeout", "message": "timeout acquiring a "
                       "connection"}).encode()
    standin.fail_next(2, status=400, body=body, method="GET", path="/object/info/")
    source = _file(tmp_path / "a", 100)
    open_store(f"supabase://{BUCKET}").put_file(source)
    assert len(standin.calls("GET", "/object/info/")) == 3

    standin.requests.clear()
    body = json.dumps({"statusCode": "403", "error": "Unauthorized", "message": "new row violates row-level "
                       "security policy"}).encode()
    standin.fail_next(1, status=400, body=body, method="POST", path="/object/")
    with pytest.raises(ArtifactError, match=r"refused the credentials .*\(403 Unauthorized: new row violates"):
        open_store(f"supabase://{BUCKET}").put_file(_file(tmp_path / "b", 100))
    assert len(standin.calls("POST", "/object/")) == 1  # 4xx: no retry


def test_too_many_errors_give_one_line_naming_the_store(standin, tmp_path):
    standin.fail_next(10, status=503, method="GET")
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}/runs").put_file(_file(tmp_path / "a", 100))
    message = failure.value.one_line()
    assert message == (f"supabase://{BUCKET}/runs at {standin.url}/storage/v1: could not look up an object "
                       "(503: upstream connect error) (hint: check the store URI and that the service answers "
                       "(network, credentials), then run the command again; --debug shows the full error)")
    assert len(standin.calls("GET")) == 4  # the policy's four attempts


def test_timeouts_are_retried(standin, tmp_path):
    standin.stall_next(1, 1.0, method="GET")
    store = SupabaseStore(f"supabase://{BUCKET}", timeout=0.3)
    store.put_file(_file(tmp_path / "a", 100))
    assert len(standin.calls("GET", "/object/info/")) == 2


def test_dropped_download_resumes_with_a_range_request(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 9 * MB)
    store = open_store(f"supabase://{BUCKET}")
    artifact = store.put_file(source)
    standin.requests.clear()
    standin.cut_next_download(3 * MB)
    assert store.get_file(artifact.uri, tmp_path / "back").read_bytes() == source.read_bytes()
    gets = standin.calls("GET", f"/object/{BUCKET}/")
    assert [g.headers.get("range") for g in gets] == [None, f"bytes={3 * MB}-"]


@pytest.mark.parametrize("size", [5 * MB, 9 * MB], ids=["rest", "tus"])
def test_over_the_size_limit_says_free_plan_and_alternatives(standin, tmp_path, size):
    standin.file_size_limit = 4 * MB
    source = _file(tmp_path / "lora.safetensors", size)
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}").put_file(source)
    message = failure.value.one_line()
    assert f"could not upload lora.safetensors ({size / MB:.1f} MB): it is over the project's per-file size limit" \
        in message
    assert ("413 Payload too large: The object exceeded the maximum allowed size" in message if size < 6 * MB
            else "413: Maximum size exceeded" in message)
    assert "Free plan caps every file at 50 MB" in message and "Pro plan" in message and "s3://" in message
    assert len(standin.calls("POST", "/object/")) + len(standin.calls("POST", "/upload/")) == 1  # not retried


def test_bad_key_is_one_line_naming_the_store_without_the_key(standin, tmp_path, monkeypatch):
    wrong = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc"
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", wrong)
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}/runs").put_file(_file(tmp_path / "a", 100))
    message = failure.value.one_line()
    assert message.startswith(f"supabase://{BUCKET}/runs at {standin.url}/storage/v1: the server refused the "
                              f"credentials while trying to check bucket '{BUCKET}' (403 Unauthorized: signature "
                              "verification failed) (hint: set SUPABASE_URL")
    assert wrong not in message and "\n" not in message
    assert len(standin.calls("GET", "/bucket/")) == 1
    with pytest.raises(ArtifactError, match="refused the credentials while trying to list objects"):
        list(open_store(f"supabase://{BUCKET}").list())


def test_missing_environment_names_the_variables(standin, monkeypatch, tmp_path):
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    with pytest.raises(ArtifactError, match=r"^supabase://b: SUPABASE_SERVICE_ROLE_KEY or SUPABASE_KEY not set"):
        open_store("supabase://b").exists("0" * 64)
    monkeypatch.setenv("SUPABASE_KEY", standin.service_key)  # the fallback name
    assert not open_store("supabase://b").exists("0" * 64)
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(ArtifactError, match="SUPABASE_URL not set"):
        open_store("supabase://b").exists("0" * 64)
    monkeypatch.setenv("SUPABASE_STORAGE_URL", standin.storage_url)  # a storage server on its own
    assert not open_store("supabase://b").exists("0" * 64)


@pytest.mark.parametrize("uri", ["supabase://service_role:eyJsecret@bucket/x", "supabase://bucket/x?apikey=eyJabc",
                                 "supabase://bucket/x?token=abc"])
def test_uri_with_credentials_is_refused(uri):
    with pytest.raises(ArtifactError, match="embeds credentials") as failure:
        open_store(uri)
    assert "eyJ" not in failure.value.one_line() and "SUPABASE_SERVICE_ROLE_KEY" in failure.value.one_line()


def test_listing_pages_through_folders(standin, tmp_path, monkeypatch):
    store = open_store(f"supabase://{BUCKET}/runs")
    artifacts = [store.put_file(_file(tmp_path / f"f{i}", 10 + i)) for i in range(5)]
    monkeypatch.setattr(SupabaseStore, "list_page", 2)
    standin.requests.clear()
    assert list(store.list()) == sorted(artifacts, key=lambda a: a.sha256)
    first = standin.calls("POST", "/object/list/")[0]
    assert first.json["prefix"] == "runs/sha256" and first.json["limit"] == 2 and first.json["offset"] == 0


def test_signed_url_asks_for_the_expiry(standin, tmp_path):
    store = open_store(f"supabase://{BUCKET}")
    artifact = store.put_file(_file(tmp_path / "a", 100))
    url = store.signed_url(artifact.uri, expires=90)
    assert url.startswith(f"{standin.storage_url}/object/sign/{BUCKET}/{object_key(artifact.sha256)}?token=")
    assert standin.calls("POST", "/object/sign/")[0].json == {"expiresIn": "90"}


def test_delete_forgets_an_unfinished_upload(standin, tmp_path):
    store = open_store(f"supabase://{BUCKET}")
    store.resumable.put("a" * 64, f"{standin.storage_url}/upload/resumable/eA")
    store.delete("a" * 64)
    assert store.resumable.pending() == []
    assert standin.calls("DELETE")[0].json == {"prefixes": [object_key("a" * 64)]}


# ---- opt-in: a real Supabase project or storage server ---------------------------------------------------------

_REAL_URL = os.environ.get("SUPABASE_STORAGE_URL") or os.environ.get("SUPABASE_URL")
_REAL_KEY = os.environ.get("SUPABASE_SERVICE_ROLE_KEY") or os.environ.get("SUPABASE_KEY")
_REAL_ENV = {name: os.environ[name] for name in ("SUPABASE_URL", "SUPABASE_STORAGE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                                                 "SUPABASE_KEY") if os.environ.get(name)}


@pytest.mark.skipif(not (_REAL_URL and _REAL_KEY), reason="set SUPABASE_URL (or SUPABASE_STORAGE_URL) and "
                    "SUPABASE_SERVICE_ROLE_KEY to run against a real Supabase project or storage server")
def test_real_supabase_storage(tmp_path, monkeypatch):
    for name, value in _REAL_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = os.environ.get("ORCHESTRATOR_TEST_SUPABASE_BUCKET", "orchestrator-test")
    uri = f"supabase://{bucket}/pytest-{secrets.token_hex(4)}"
    store = open_store(uri)
    small, large = _file(tmp_path / "small.bin", 3000), _file(tmp_path / "large.bin", 13 * MB + 7)
    try:
        def interrupt_after_two_chunks(done, total):
            if done >= 12 * MB:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.put_file(large, progress=interrupt_after_two_chunks)
        assert store.resumable.pending() == [_sha(large)]
        seen: list[int] = []
        big = open_store(uri).put_file(large, progress=lambda done, total: seen.append(done))
        assert seen[0] == 12 * MB  # resumed at the server's offset
        assert store.resumable.pending() == []
        tiny = store.put_file(small)
        assert store.exists(big.sha256) and store.exists(tiny.sha256)
        assert sorted(a.sha256 for a in store.list()) == sorted([big.sha256, tiny.sha256])
        assert store.get_file(big.uri, tmp_path / "back").read_bytes() == large.read_bytes()
        import requests

        assert requests.get(store.signed_url(tiny.uri, expires=60), timeout=30).content == small.read_bytes()
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", _REAL_KEY[:-4] + "AAAA")
        monkeypatch.delenv("SUPABASE_KEY", raising=False)
        with pytest.raises(ArtifactError, match="refused the credentials"):
            list(open_store(uri).list())
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", _REAL_KEY)
    finally:
        for artifact in list(open_store(uri).list()):
            store.delete(artifact.sha256)
