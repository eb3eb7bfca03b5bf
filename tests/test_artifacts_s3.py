"""s3:// against moto's ThreadedMotoServer (a real HTTP S3 server on 127.0.0.1): URIs, metadata, multipart,
checksum modes, retries (through a fault-injecting loopback proxy in front of moto) and credential errors."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from artifact_fixtures import MB, _fast_retries, _no_cloud_env, moto_endpoint, s3_uri  # noqa: F401

from orchestrator.artifacts import ArtifactError, open_store
from orchestrator.artifacts.base import object_key
from orchestrator.artifacts.s3_store import S3Store


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


class FaultyProxy:
    """Forwards to moto, but answers the next N requests of a kind with an error first (a burst of 5xx)."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.faults: list[list] = []  # [method, count, status, code]
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    fault = next((f for f in proxy.faults if f[0] in (None, self.command) and f[1] > 0), None)
                    if fault:
                        fault[1] -= 1
                if fault:
                    proxy.seen.append((self.command, self.path, fault[2]))
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault[3]}</Code>"
                               "<Message>injected</Message></Error>").encode()
                    self.send_response(fault[2])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":  # a body after a HEAD answer corrupts the kept-alive connection
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                proxy.seen.append((self.command, self.path, response.status))
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, count: int, status: int = 503, code: str = "SlowDown", method: str | None = None) -> None:
        with self.lock:
            self.faults.append([method, count, status, code])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto_endpoint) -> Iterator[FaultyProxy]:
    server = FaultyProxy(moto_endpoint)
    yield server
    server.stop()


def test_uri_is_canonical_and_options_are_checked(moto_endpoint):
    store = open_store(f"s3://bucket/a/b/?region=eu-west-1&endpoint={moto_endpoint}&checksum=when_required")
    assert store.uri == f"s3://bucket/a/b?endpoint={moto_endpoint}&region=eu-west-1&checksum=when_required"
    assert store.uri_for("ab" * 32) == (f"s3://bucket/a/b/sha256/ab/{'ab' * 32}?endpoint={moto_endpoint}"
                                        "&region=eu-west-1&checksum=when_required")
    assert (store.bucket, store.prefix, store.region, store.checksum) == ("bucket", "a/b", "eu-west-1",
                                                                          "when_required")
    with pytest.raises(ArtifactError, match="unknown option.*colour.*known options: endpoint, region, checksum"):
        open_store("s3://bucket/x?colour=blue")
    with pytest.raises(ArtifactError, match="checksum='sometimes' is not one of when_supported, when_required"):
        open_store("s3://bucket/x?checksum=sometimes")


@pytest.mark.parametrize("uri", ["s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/x",
                                 "s3://bucket/x?endpoint=http://h&secret_key=wJalrXUtnFEMI",
                                 "s3://bucket/x?aws_access_key_id=AKIAEXAMPLE"])
def test_uri_with_credentials_is_refused(uri):
    with pytest.raises(ArtifactError, match="embeds credentials") as failure:
        open_store(uri)
    assert "wJalrXUtnFEMI" not in failure.value.one_line()
    assert "AWS_ACCESS_KEY_ID" in failure.value.one_line()


def test_objects_carry_their_sha256_and_go_up_in_parts(s3_uri, tmp_path):
    store = S3Store(s3_uri, upload_part_size=5 * MB)
    parts: list[int] = []
    store._client.meta.events.register("before-parameter-build.s3.UploadPart", lambda params, **_: parts.append(
        params["PartNumber"]))
    source = _file(tmp_path / "lora.safetensors", 12 * MB)
    artifact = store.put_file(source)
    assert sorted(parts) == [1, 2, 3]
    head = store._client.head_object(Bucket=store.bucket, Key=f"team/{object_key(artifact.sha256)}")
    assert head["Metadata"] == {"sha256": artifact.sha256}
    assert head["ContentType"] == "application/octet-stream"
    assert head["ContentLength"] == 12 * MB


@pytest.mark.parametrize("mode", ["when_supported", "when_required"])
def test_checksum_mode_from_the_uri(s3_uri, tmp_path, mode):
    store = open_store(f"{s3_uri}&checksum={mode}")
    sent: list[dict] = []
    store._client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(
        dict(request.headers)))
    artifact = store.put_file(_file(tmp_path / "a", 1000))
    checksum_headers = [name for name in sent[0] if name.lower().startswith("x-amz-checksum-")]
    assert bool(checksum_headers) == (mode == "when_supported")
    assert store.get_file(artifact.uri, tmp_path / "back").read_bytes() == (tmp_path / "a").read_bytes()


def test_bucket_is_created_in_the_store_region(moto_endpoint, tmp_path):
    store = open_store(f"s3://eu-bucket-{os.getpid()}?endpoint={moto_endpoint}&region=eu-central-1")
    store.put_file(_file(tmp_path / "a", 10))
    location = store._client.get_bucket_location(Bucket=store.bucket)["LocationConstraint"]
    assert location == "eu-central-1"


def test_bursts_of_5xx_are_retried_per_request(proxy, tmp_path):
    store = S3Store(f"s3://burst-{os.getpid()}/p?endpoint={proxy.url}", upload_part_size=5 * MB)
    source = _file(tmp_path / "lora.safetensors", 11 * MB)
    proxy.fail_next(2, 503, "SlowDown", method="HEAD")
    proxy.fail_next(3, 500, "InternalError", method="PUT")
    artifact = store.put_file(source)
    assert [s for _, _, s in proxy.seen].count(503) == 2 and [s for _, _, s in proxy.seen].count(500) == 3
    proxy.fail_next(1, 429, "TooManyRequests", method="GET")
    assert store.get_file(artifact.uri, tmp_path / "back").read_bytes() == source.read_bytes()


def test_4xx_is_not_retried_and_errors_are_one_line(proxy, tmp_path):
    store = open_store(f"s3://four-{os.getpid()}?endpoint={proxy.url}")
    proxy.fail_next(5, 400, "InvalidRequest", method="HEAD")
    with pytest.raises(ArtifactError) as failure:
        store.exists("0" * 64)
    object_heads = [path for method, path, _ in proxy.seen if method == "HEAD" and "/sha256/" in path]
    assert len(object_heads) == 1  # (botocore then asks the bucket's region once: not a retry)
    assert failure.value.one_line() == (f"s3://four-{os.getpid()} at {proxy.url}: could not look up an object "
                                        "(400: Bad Request) (hint: check the store URI and that the service "
                                        "answers (network, credentials), then run the command again; --debug shows "
                                        "the full error)")


def test_too_many_5xx_gives_up_after_the_policy(proxy, tmp_path):
    store = open_store(f"s3://many-{os.getpid()}?endpoint={proxy.url}")
    proxy.fail_next(50, 503, "SlowDown")
    with pytest.raises(ArtifactError, match=r"could not look up an object \(503"):
        store.put_file(_file(tmp_path / "a", 10))
    assert len(proxy.seen) == 4


def test_bad_credentials_are_one_line_naming_the_store(s3_uri, tmp_path, monkeypatch):
    from moto.core.authorization import enable_iam_authentication

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-right-secret-value")
    store = open_store(s3_uri)
    with enable_iam_authentication(), pytest.raises(ArtifactError) as failure:
        store.put_file(_file(tmp_path / "a", 10))
    message = failure.value.one_line()
    assert message.startswith(f"{s3_uri.split('?')[0]} at {s3_uri.split('endpoint=')[1].split('&')[0]}: the "
                              "server refused the credentials while trying to look up an object (403")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message
    assert "not-the-right-secret-value" not in message


def test_no_credentials_and_unreachable_endpoint(s3_uri, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ArtifactError, match="no S3 credentials found to look up an object"):
        open_store(s3_uri).exists("0" * 64)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTINGKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    with pytest.raises(ArtifactError, match="cannot reach the endpoint to look up an object"):
        open_store("s3://b?endpoint=http://127.0.0.1:9").exists("0" * 64)


def test_presigned_url_and_listing_other_keys(s3_uri, tmp_path):
    import requests

    store = open_store(s3_uri)
    artifact = store.put_file(_file(tmp_path / "a", 100))
    store._client.put_object(Bucket=store.bucket, Key="team/sha256/notes.txt", Body=b"not an artifact")
    store._client.put_object(Bucket=store.bucket, Key="elsewhere/x", Body=b"outside the prefix")
    assert [a.sha256 for a in store.list()] == [artifact.sha256]
    url = store.signed_url(artifact.uri, expires=60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert "test-secret-access-key-do-not-show" not in url
    assert requests.get(url, timeout=10).content == (tmp_path / "a").read_bytes()
    assert hashlib.sha256(requests.get(url, timeout=10).content).hexdigest() == artifact.sha256
