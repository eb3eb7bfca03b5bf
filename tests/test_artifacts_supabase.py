"""supabase:// against the real Supabase Storage server (v1.22.10 run locally behind a /storage/v1 gateway that
records every request, tests/services/supabase_storage.py): the exact requests the backend sends, resumable
uploads, stale upload URLs, size limits, credentials, listing, signing. The faults the real server cannot be made to
produce (injected 5xx bursts, a connection dropped mid-chunk or mid-download, stalls) run on the stand-in
(tests/standins/supabase_storage.py), and test_the_standin_answers_as_the_real_server_does checks every answer those
tests rely on against the real server. The opt-in last test runs against a hosted Supabase project when
SUPABASE_URL (or SUPABASE_STORAGE_URL) and SUPABASE_SERVICE_ROLE_KEY are set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import stat
from pathlib import Path

import pytest
from artifact_fixtures import MB, _fast_retries, _no_cloud_env, _standin_server, standin, supabase  # noqa: F401

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


def test_small_put_sends_exactly_these_requests(supabase, tmp_path):
    source = _file(tmp_path / "sample.png", 5000)
    sha = _sha(source)
    artifact = open_store(f"supabase://{BUCKET}/runs").put_file(source)
    assert artifact.uri == f"supabase://{BUCKET}/runs/{object_key(sha)}"
    assert [(r.method, r.path) for r in supabase.requests] == [
        ("GET", f"/object/info/{BUCKET}/{_name(sha)}"),  # exists? (no)
        ("GET", f"/bucket/{BUCKET}"),  # bucket? (no: 400 with statusCode 404 in the body)
        ("POST", "/bucket"),  # create it, private
        ("POST", f"/object/{BUCKET}/{_name(sha)}"),  # one multipart POST: 5000 bytes is under 6 MB
    ]
    for request in supabase.requests:
        assert request.headers["apikey"] == supabase.service_key
        assert request.headers["authorization"] == f"Bearer {supabase.service_key}"
    assert supabase.requests[2].json == {"id": BUCKET, "name": BUCKET, "public": False}
    upload = supabase.requests[3]
    assert upload.headers["x-upsert"] == "true"  # a string, as storage3 requires
    assert upload.headers["content-type"].startswith("multipart/form-data")
    stored = supabase.object(BUCKET, _name(sha))
    assert stored.data == source.read_bytes()
    assert stored.content_type == "application/octet-stream"  # not storage3's default text/plain
    assert stored.cache_control == "max-age=31536000"
    assert stored.user_metadata == {"sha256": sha}


def test_large_put_goes_through_tus_in_6mb_chunks(supabase, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 13 * MB + 5)
    sha = _sha(source)
    supabase.create_bucket(BUCKET)
    open_store(f"supabase://{BUCKET}/runs").put_file(source)
    methods = [(r.method, r.path.split("/resumable/")[0]) for r in supabase.requests]
    assert methods == [("GET", f"/object/info/{BUCKET}/{_name(sha)}"), ("GET", f"/bucket/{BUCKET}"),
                       ("POST", "/upload/resumable")] + [("PATCH", "/upload")] * 3
    create = supabase.requests[2]
    assert create.headers["tus-resumable"] == "1.0.0"
    assert create.headers["upload-length"] == str(13 * MB + 5)
    assert create.headers["x-upsert"] == "true"
    assert create.headers["apikey"] == supabase.service_key
    assert create.headers["authorization"] == f"Bearer {supabase.service_key}"
    assert create.tus_metadata == {"bucketName": BUCKET, "objectName": _name(sha),
                                   "contentType": "application/octet-stream", "cacheControl": "31536000",
                                   "metadata": json.dumps({"sha256": sha})}
    patches = supabase.requests[3:]
    assert [p.body_size for p in patches] == [6 * MB, 6 * MB, MB + 5]
    assert [p.headers["upload-offset"] for p in patches] == ["0", str(6 * MB), str(12 * MB)]
    assert all(p.headers["content-type"] == "application/offset+octet-stream" for p in patches)
    assert all(p.headers["tus-resumable"] == "1.0.0" and p.headers["x-upsert"] == "true" for p in patches)
    assert hashlib.sha256(supabase.object(BUCKET, _name(sha)).data).hexdigest() == sha
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


def test_ctrl_c_after_two_chunks_then_resume(supabase, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 20 * MB)
    sha = _sha(source)

    def interrupt_after_two_chunks(done, total):
        if done >= 12 * MB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        open_store(f"supabase://{BUCKET}").put_file(source, progress=interrupt_after_two_chunks)
    assert len(_state_files()) == 1
    supabase.requests.clear()
    open_store(f"supabase://{BUCKET}").put_file(source)
    assert [int(p.headers["upload-offset"]) for p in supabase.calls("PATCH")] == [12 * MB, 18 * MB]
    assert supabase.calls("POST", "/upload/resumable") == []
    assert hashlib.sha256(supabase.object(BUCKET, object_key(sha)).data).hexdigest() == sha


def test_dropped_connection_is_resumed_within_the_same_run(standin, tmp_path):
    source = _file(tmp_path / "lora.safetensors", 19 * MB)
    standin.drop_patch_after(1)
    open_store(f"supabase://{BUCKET}").put_file(source)
    creates, heads = standin.calls("POST", "/upload/resumable"), standin.calls("HEAD")
    assert len(creates) == 1 and len(heads) == 1
    offsets = [int(p.headers["upload-offset"]) for p in standin.calls("PATCH")]
    assert offsets == [0, 6 * MB, 6 * MB, 12 * MB, 18 * MB]  # the dropped chunk is sent again after the HEAD
    assert standin.object(BUCKET, object_key(_sha(source))).data == source.read_bytes()


@pytest.mark.parametrize("upload_id", [
    base64.urlsafe_b64encode(f"{BUCKET}/{'x' * 8}/0d7c0f8e-0000-4000-8000-000000000000".encode()).decode(),
    "Z29uZQ",
], ids=["unknown-404", "malformed-400-InvalidUploadId"])
def test_a_saved_upload_url_the_server_refuses_starts_a_new_upload(supabase, tmp_path, upload_id):
    source = _file(tmp_path / "lora.safetensors", 7 * MB)
    store = open_store(f"supabase://{BUCKET}")
    store.resumable.put(_sha(source), f"{supabase.storage_url}/upload/resumable/{upload_id.rstrip('=')}")
    store.put_file(source)
    assert [r.method for r in supabase.requests if "/upload/resumable" in r.path] == ["HEAD", "POST", "PATCH",
                                                                                     "PATCH"]
    assert _state_files() == []
    assert supabase.object(BUCKET, object_key(_sha(source))).data == source.read_bytes()


def test_a_bad_key_on_resume_keeps_the_saved_upload(supabase, tmp_path, monkeypatch):
    """The resume HEAD answers a bad key with a bodiless 400, like a malformed id: the saved URL must survive the
    failed run (the new upload's POST says it is the key), so the next run with the right key resumes."""
    source = _file(tmp_path / "lora.safetensors", 20 * MB)

    def interrupt_after_two_chunks(done, total):
        if done >= 12 * MB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        open_store(f"supabase://{BUCKET}").put_file(source, progress=interrupt_after_two_chunks)
    [saved] = _state_files()
    url = json.loads(saved.read_text())["upload_url"]
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", supabase.anon_key[:-6] + "AAAAAA")
    with pytest.raises(ArtifactError, match="refused the credentials"):
        SupabaseStore(f"supabase://{BUCKET}", retry=ONE_TRY).put_file(source)
    assert json.loads(saved.read_text())["upload_url"] == url
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", supabase.service_key)
    supabase.requests.clear()
    open_store(f"supabase://{BUCKET}").put_file(source)
    assert [int(p.headers["upload-offset"]) for p in supabase.calls("PATCH")] == [12 * MB, 18 * MB]
    assert supabase.calls("POST", "/upload/resumable") == []


def test_a_failed_resume_head_says_what_was_asked_and_that_running_again_resumes(standin, tmp_path):
    """A gateway's 502 on the HEAD comes without a body: the message says what failed, not "(502: )"."""
    source = _file(tmp_path / "lora.safetensors", 20 * MB)
    standin.drop_patch_after(1)
    with pytest.raises(ArtifactError):
        SupabaseStore(f"supabase://{BUCKET}", retry=ONE_TRY).put_file(source)
    standin.fail_next(4, status=502, method="HEAD")  # the test policy's four attempts
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}").put_file(source)
    assert failure.value.one_line() == (
        f"supabase://{BUCKET} at {standin.storage_url}: could not upload lora.safetensors: the server answered 502 "
        "with no details while asking how much of the interrupted upload it holds (TUS HEAD) (hint: a server or "
        "gateway failure: running it again resumes the upload from what the server has)")
    assert len(standin.calls("HEAD")) == 4  # retried: a 502 is transient
    assert len(_state_files()) == 1  # kept for that next run
    standin.requests.clear()
    open_store(f"supabase://{BUCKET}").put_file(source)
    assert [int(p.headers["upload-offset"]) for p in standin.calls("PATCH")] == [6 * MB, 12 * MB, 18 * MB]


def test_an_unreachable_server_is_retried_for_the_budget_with_a_line_per_wait(tmp_path, monkeypatch):
    """Nothing listens on the port: the store keeps trying for the whole budget (an injected clock) and says so."""
    from test_artifacts_support import FakeClock

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")
    clock, lines = FakeClock(), []
    store = SupabaseStore(f"supabase://{BUCKET}", retry=RetryPolicy(clock=clock, sleep=clock.sleep,
                                                                    notify=lines.append))
    with pytest.raises(ArtifactError) as failure:
        store.exists("0" * 64)
    assert sum(clock.sleeps) == pytest.approx(60.0)
    assert len(lines) == len(clock.sleeps) >= 12  # pauses of at most 5 s
    assert lines[0] == (f"supabase://{BUCKET} at http://127.0.0.1:{port}/storage/v1: the server did not answer "
                        "(ConnectError); trying again for up to 60 s more")
    assert "did not answer (ConnectError" in failure.value.one_line()


def test_an_upload_survives_a_server_restart_and_resumes_from_its_offset(supabase, tmp_path):
    """The real server is killed after the first chunk and is back a second later: the store waits (one line per
    wait), then HEADs the upload and sends only what the server does not have."""
    import threading

    source = _file(tmp_path / "lora.safetensors", 20 * MB)
    lines: list[str] = []
    restarted = threading.Event()

    def kill_after_first_chunk(done, total):
        if done >= 6 * MB and not restarted.is_set():
            restarted.set()
            running = supabase.process
            threading.Thread(target=supabase.restart, kwargs={"down_for": 1.0}).start()
            running.wait()  # the next chunk goes to a dead server

    store = SupabaseStore(f"supabase://{BUCKET}", retry=RetryPolicy(deadline=60, notify=lines.append))
    artifact = store.put_file(source, progress=kill_after_first_chunk)
    assert restarted.is_set() and lines
    assert all(line.startswith(f"supabase://{BUCKET} at {supabase.storage_url}: the server answered 502; trying "
                               "again for up to ") for line in lines), lines  # the gateway's 502 while it is down
    patches = [int(p.headers["upload-offset"]) for p in supabase.calls("PATCH")]
    assert patches[0] == 0 and patches[-3:] == [6 * MB, 12 * MB, 18 * MB]  # resumed at 6 MB, not started over
    assert len(supabase.calls("POST", "/upload/resumable")) == 1 and supabase.calls("HEAD")
    assert supabase.object(BUCKET, object_key(artifact.sha256)).data == source.read_bytes()


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
    """The first lookup is held back three times the timeout; the timeout is a whole second so that no answer of
    a busy loopback server times out by chance, and the pause before the retry is an injected one."""
    from test_artifacts_support import FakeClock

    standin.stall_next(1, 3.0, method="GET")
    clock, lines = FakeClock(), []
    store = SupabaseStore(f"supabase://{BUCKET}", timeout=1.0,
                          retry=RetryPolicy(clock=clock, sleep=clock.sleep, notify=lines.append))
    store.put_file(_file(tmp_path / "a", 100))
    assert len(standin.calls("GET", "/object/info/")) == 2
    assert len(lines) == len(clock.sleeps) == 1 and "the server did not answer (ReadTimeout)" in lines[0]


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
def test_over_the_buckets_size_limit_says_so_and_the_alternatives(supabase, tmp_path, size):
    supabase.create_bucket(BUCKET, file_size_limit=4 * MB)
    source = _file(tmp_path / "lora.safetensors", size)
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}").put_file(source)
    message = failure.value.one_line()
    assert f"could not upload lora.safetensors ({size / MB:.1f} MB): it is over the file size limit of " \
        f"bucket '{BUCKET}' (4.0 MB; 413" in message
    assert ("413 Payload too large: The object exceeded the maximum allowed size" in message if size < 6 * MB
            else "413: Maximum size exceeded" in message)
    assert "raise the bucket's file size limit" in message and "50 MB on the Free plan" in message
    assert "s3://" in message and "project's per-file" not in message
    assert len(supabase.calls("POST", "/object/")) + len(supabase.calls("POST", "/upload/")) == 1  # not retried


@pytest.mark.parametrize("size", [5 * MB, 9 * MB], ids=["rest", "tus"])
def test_over_the_projects_size_limit_says_free_plan_and_alternatives(standin, tmp_path, size):
    """The project-wide limit (500 MB on the local real server, too big for a test): the stand-in's limit plays it."""
    standin.file_size_limit = 4 * MB
    source = _file(tmp_path / "lora.safetensors", size)
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}").put_file(source)
    message = failure.value.one_line()
    assert f"could not upload lora.safetensors ({size / MB:.1f} MB): it is over the project's per-file upload size " \
        "limit" in message
    assert "Free plan caps every file at 50 MB" in message and "Pro plan" in message and "s3://" in message
    assert len(standin.calls("POST", "/object/")) + len(standin.calls("POST", "/upload/")) == 1  # not retried


def test_bad_key_is_one_line_naming_the_store_without_the_key(supabase, tmp_path, monkeypatch):
    wrong = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc"
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", wrong)
    with pytest.raises(ArtifactError) as failure:
        open_store(f"supabase://{BUCKET}/runs").put_file(_file(tmp_path / "a", 100))
    message = failure.value.one_line()
    assert message.startswith(f"supabase://{BUCKET}/runs at {supabase.url}/storage/v1: the server refused the "
                              f"credentials while trying to check bucket '{BUCKET}' (403 Unauthorized: signature "
                              "verification failed) (hint: set SUPABASE_URL")
    assert wrong not in message and "\n" not in message
    assert len(supabase.calls("GET", "/bucket/")) == 1
    with pytest.raises(ArtifactError, match="refused the credentials while trying to list objects"):
        list(open_store(f"supabase://{BUCKET}").list())


def test_missing_environment_names_the_variables(supabase, monkeypatch, tmp_path):
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    with pytest.raises(ArtifactError, match=r"^supabase://b: SUPABASE_SERVICE_ROLE_KEY or SUPABASE_KEY not set"):
        open_store("supabase://b").exists("0" * 64)
    monkeypatch.setenv("SUPABASE_KEY", supabase.service_key)  # the fallback name
    assert not open_store("supabase://b").exists("0" * 64)
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(ArtifactError, match="SUPABASE_URL not set"):
        open_store("supabase://b").exists("0" * 64)
    monkeypatch.setenv("SUPABASE_STORAGE_URL", supabase.storage_url)  # a storage server on its own
    assert not open_store("supabase://b").exists("0" * 64)


@pytest.mark.parametrize("uri", ["supabase://service_role:eyJsecret@bucket/x", "supabase://bucket/x?apikey=eyJabc",
                                 "supabase://bucket/x?token=abc"])
def test_uri_with_credentials_is_refused(uri):
    with pytest.raises(ArtifactError, match="embeds credentials") as failure:
        open_store(uri)
    assert "eyJ" not in failure.value.one_line() and "SUPABASE_SERVICE_ROLE_KEY" in failure.value.one_line()


def test_listing_pages_through_folders(supabase, tmp_path, monkeypatch):
    store = open_store(f"supabase://{BUCKET}/runs")
    artifacts = [store.put_file(_file(tmp_path / f"f{i}", 10 + i)) for i in range(5)]
    monkeypatch.setattr(SupabaseStore, "list_page", 2)
    supabase.requests.clear()
    assert list(store.list()) == sorted(artifacts, key=lambda a: a.sha256)
    first = supabase.calls("POST", "/object/list/")[0]
    assert first.json["prefix"] == "runs/sha256" and first.json["limit"] == 2 and first.json["offset"] == 0


def test_signed_url_asks_for_the_expiry(supabase, tmp_path):
    store = open_store(f"supabase://{BUCKET}")
    artifact = store.put_file(_file(tmp_path / "a", 100))
    url = store.signed_url(artifact.uri, expires=90)
    assert url.startswith(f"{supabase.storage_url}/object/sign/{BUCKET}/{object_key(artifact.sha256)}?token=")
    assert supabase.calls("POST", "/object/sign/")[0].json == {"expiresIn": "90"}


def test_delete_forgets_an_unfinished_upload(supabase, tmp_path):
    store = open_store(f"supabase://{BUCKET}")
    store.resumable.put("a" * 64, f"{supabase.storage_url}/upload/resumable/eA")
    store.delete("a" * 64)
    assert store.resumable.pending() == []
    assert supabase.calls("DELETE")[0].json == {"prefixes": [object_key("a" * 64)]}


# ---- opt-in: a real Supabase project or storage server ---------------------------------------------------------

_REAL_URL = os.environ.get("SUPABASE_STORAGE_URL") or os.environ.get("SUPABASE_URL")
_REAL_KEY = os.environ.get("SUPABASE_SERVICE_ROLE_KEY") or os.environ.get("SUPABASE_KEY")
_REAL_ENV = {name: os.environ[name] for name in ("SUPABASE_URL", "SUPABASE_STORAGE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                                                 "SUPABASE_KEY") if os.environ.get(name)}


@pytest.mark.skipif(not (_REAL_URL and _REAL_KEY), reason="set SUPABASE_URL (or SUPABASE_STORAGE_URL) and "
                    "SUPABASE_SERVICE_ROLE_KEY to run against a hosted Supabase project (the local real server runs "
                    "every other test)")
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


# ---- the stand-in answers as the real server does, for every behaviour the fault tests rely on ---------------


def _observe(storage_url: str, key: str, wrong_key: str) -> list[tuple]:
    """Raw requests of the kinds the backend sends, and what comes back of the answers the backend reads."""
    import base64

    import requests

    auth = {"apikey": key, "Authorization": f"Bearer {key}"}
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    seen: list[tuple] = []

    def note(what: str, response, *headers: str) -> None:
        json_body = response.content and response.headers.get("content-type", "").startswith("application/json")
        body = response.json() if json_body else None
        fields = {k: body[k] for k in ("statusCode", "error", "message") if isinstance(body, dict) and k in body}
        if response.status_code >= 400 and not json_body:  # TUS errors: a text body (none on a HEAD)
            fields = {"text": response.text.strip()}
        seen.append((what, response.status_code, fields, {h: response.headers.get(h) for h in headers}))

    note("bucket missing", requests.get(f"{storage_url}/bucket/parity", headers=auth, timeout=10))
    note("create bucket", requests.post(f"{storage_url}/bucket", json={"id": "parity", "name": "parity",
                                                                       "public": False}, headers=auth, timeout=10))
    note("info missing", requests.get(f"{storage_url}/object/info/parity/a/b", headers=auth, timeout=10))
    note("get missing", requests.get(f"{storage_url}/object/parity/a/b", headers=auth, timeout=10))
    note("bad key", requests.get(f"{storage_url}/bucket/parity", timeout=10,
                                 headers={"apikey": wrong_key, "Authorization": f"Bearer {wrong_key}"}))
    body = bytes(range(10))
    note("upload", requests.post(f"{storage_url}/object/parity/a/b", files={"file": ("b", body)},
                                 headers={**auth, "x-upsert": "true"}, timeout=10))
    note("upload again, no upsert", requests.post(f"{storage_url}/object/parity/a/b", files={"file": ("b", body)},
                                                  headers=auth, timeout=10))
    ranged = requests.get(f"{storage_url}/object/parity/a/b", headers={**auth, "Range": "bytes=3-"}, timeout=10)
    note("ranged get", ranged, "content-range")
    seen.append(("ranged body", ranged.content))
    metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in
                        {"bucketName": "parity", "objectName": "c", "contentType": "application/octet-stream"}.items())
    created = requests.post(f"{storage_url}/upload/resumable", timeout=10,
                            headers={**tus, "Upload-Length": "10", "Upload-Metadata": metadata, "x-upsert": "true"})
    note("tus create", created, "tus-resumable")
    location = created.headers["location"]
    seen.append(("tus location", location.startswith(f"{storage_url}/upload/resumable/")))
    note("tus head", requests.head(location, headers=tus, timeout=10), "upload-offset", "upload-length",
         "cache-control")
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    note("tus patch, wrong offset", requests.patch(location, data=body[:4], timeout=10,
                                                   headers={**patch, "Upload-Offset": "3"}))
    note("tus patch", requests.patch(location, data=body[:4], headers={**patch, "Upload-Offset": "0"}, timeout=10),
         "upload-offset")
    note("tus head, bad key", requests.head(location, timeout=10, headers={
        **tus, "apikey": wrong_key, "Authorization": f"Bearer {wrong_key}"}))
    unknown = base64.urlsafe_b64encode(b"stub/parity/c/0d7c0f8e-0000-4000-8000-000000000000").decode().rstrip("=")
    note("tus head, unknown upload", requests.head(f"{storage_url}/upload/resumable/{unknown}", headers=tus,
                                                   timeout=10))
    note("tus head, malformed id", requests.head(f"{storage_url}/upload/resumable/Z29uZQ", headers=tus, timeout=10))
    note("create small bucket", requests.post(f"{storage_url}/bucket", headers=auth, timeout=10, json={
        "id": "paritysmall", "name": "paritysmall", "public": False, "file_size_limit": 5}))
    note("upload over the bucket's limit", requests.post(f"{storage_url}/object/paritysmall/a",
                                                         files={"file": ("a", body)}, headers=auth, timeout=10))
    small = metadata.replace(base64.b64encode(b"parity").decode(), base64.b64encode(b"paritysmall").decode())
    note("tus create over the bucket's limit", requests.post(f"{storage_url}/upload/resumable", timeout=10, headers={
        **tus, "Upload-Length": "10", "Upload-Metadata": small}))
    return seen


def test_the_standin_answers_as_the_real_server_does(supabase, standin):
    wrong = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc"
    real = _observe(supabase.storage_url, supabase.service_key, wrong)
    assert _observe(standin.storage_url, standin.service_key, wrong) == real


# ---- the test server itself: absent, it is a visible skip here and a failure in CI ----------------------------


def test_an_unbuildable_server_is_a_skip_with_its_reason_here_and_a_failure_in_ci(tmp_path, monkeypatch):
    from services import supabase_storage as harness

    monkeypatch.setenv("ORCHESTRATOR_TEST_SERVICES_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("ORCHESTRATOR_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"the real Supabase Storage server is not available: building "
                       r"the Supabase Storage server failed: no Supabase Storage source at \S*nothing-here"):
        next(harness.session_server("postgresql://postgres@127.0.0.1:5432/test"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no Supabase Storage source at .*\(in CI this server must start"):
        next(harness.session_server("postgresql://postgres@127.0.0.1:5432/test"))
    script = Path(__file__).resolve().parent.parent / "tools" / "ensure-test-services.sh"
    import subprocess

    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 1
    assert "error: could not build the Supabase Storage server" in done.stderr
    monkeypatch.delenv("CI")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 0 and "the Supabase tests will be skipped" in done.stdout
