"""One contract, every backend: file://, s3:// on moto's real S3 server, supabase:// on the real Supabase Storage
server (v1.22.10 run locally behind a /storage/v1 gateway, tests/services/supabase_storage.py).

Each backend must put, get (verified, atomically), skip known content, list, delete, sign and report progress the
same way. With SUPABASE_URL (or SUPABASE_STORAGE_URL) and SUPABASE_SERVICE_ROLE_KEY set, the same contract also runs
on that Supabase project ("supabase-hosted").
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from artifact_fixtures import MB, _fast_retries, _no_cloud_env, moto_endpoint, s3_uri, supabase  # noqa: F401

from orchestrator.artifacts import ArtifactError, ArtifactNotFoundError, get_artifact, open_store
from orchestrator.artifacts.base import ArtifactStore, object_key


@dataclass
class Backend:
    name: str
    store: ArtifactStore
    corrupt: Callable[[str], None]  # replace an object's bytes behind the store's back
    uploads: Callable[[], int]  # how many object writes the server has seen
    mislabel: Callable[[str], None] | None = None  # put other bytes there, with another recorded sha256


def _file_backend(tmp_path: Path) -> Backend:
    store = open_store((tmp_path / "store").as_uri())
    written: list[str] = []
    original = store._upload

    def counting_upload(*args, **kwargs):
        written.append(args[1])
        return original(*args, **kwargs)

    store._upload = counting_upload

    def corrupt(sha256: str) -> None:
        path = store.local_path(sha256)
        os.chmod(path, 0o644)
        path.write_bytes(b"tampered")

    return Backend("file", store, corrupt, lambda: len(written))


def _s3_backend(uri: str) -> Backend:
    from orchestrator.artifacts.s3_store import S3Store

    store = S3Store(uri, upload_part_size=5 * MB)  # 5 MB: S3's smallest part, so 7 MB files go multipart
    writes: list[str] = []
    for operation in ("PutObject", "CreateMultipartUpload"):
        store._client.meta.events.register(f"before-call.s3.{operation}", lambda **kw: writes.append(kw["model"].name))

    def corrupt(sha256: str) -> None:
        store._client.put_object(Bucket=store.bucket, Key=store._key(sha256), Body=b"tampered",
                                 Metadata={"sha256": sha256})

    def mislabel(sha256: str) -> None:
        store._client.put_object(Bucket=store.bucket, Key=store._key(sha256), Body=b"other bytes",
                                 Metadata={"sha256": "0" * 64})

    return Backend("s3", store, corrupt, lambda: len(writes), mislabel)


_HOSTED_ENV = {name: os.environ[name] for name in ("SUPABASE_URL", "SUPABASE_STORAGE_URL",
                                                   "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY") if os.environ.get(name)}
_HOSTED = bool(({"SUPABASE_URL", "SUPABASE_STORAGE_URL"} & set(_HOSTED_ENV))
               and ({"SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY"} & set(_HOSTED_ENV)))
BACKENDS = ["file", "s3", "supabase"] + (["supabase-hosted"] if _HOSTED else [])


def _supabase_backend(name: str, uri: str) -> Backend:
    """A supabase:// store on a real server: the local one (emptied per test) or the project the environment
    names (a fresh prefix, emptied afterwards). Objects are tampered with through the API, as anyone could."""
    store = open_store(uri)
    writes: list[str] = []
    original = store._upload

    def counting_upload(*args, **kwargs):
        writes.append(args[1])
        return original(*args, **kwargs)

    store._upload = counting_upload

    def replace(sha256: str, body: bytes, recorded: str) -> None:
        store._files.upload(store._object_name(sha256), body, {"content-type": "application/octet-stream",
                                                              "upsert": "true", "metadata": {"sha256": recorded}})

    return Backend(name, store, lambda sha: replace(sha, b"tampered", sha), lambda: len(writes),
                   lambda sha: replace(sha, b"other bytes", "0" * 64))


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, monkeypatch) -> Iterator[Backend]:
    if request.param == "file":
        yield _file_backend(tmp_path)
    elif request.param == "s3":
        yield _s3_backend(request.getfixturevalue("s3_uri"))
    elif request.param == "supabase":
        request.getfixturevalue("supabase")
        yield _supabase_backend("supabase", "supabase://checkpoints/team")
    else:
        for name, value in _HOSTED_ENV.items():
            monkeypatch.setenv(name, value)
        bucket = os.environ.get("ORCHESTRATOR_TEST_SUPABASE_BUCKET", "orchestrator-test")
        hosted = _supabase_backend("supabase-hosted", f"supabase://{bucket}/contract-{secrets.token_hex(4)}")
        yield hosted
        for artifact in list(hosted.store.list()):
            hosted.store.delete(artifact.sha256)


def _write(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("size", [0, 1000, 7 * MB + 3], ids=["empty", "small", "multi-chunk"])
def test_put_get_round_trip(backend: Backend, tmp_path: Path, size: int) -> None:
    source = _write(tmp_path / "checkpoint.safetensors", size)
    artifact = backend.store.put_file(source)
    assert artifact.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert artifact.size == size
    root = backend.store.uri.split("?")[0]
    assert artifact.uri.split("?")[0] == f"{root}/sha256/{artifact.sha256[:2]}/{artifact.sha256}"
    assert backend.store.exists(artifact.sha256)
    copy = backend.store.get_file(artifact.uri, tmp_path / "out" / "copy.bin")
    assert copy.read_bytes() == source.read_bytes()
    assert get_artifact(artifact.uri, tmp_path / "again.bin").read_bytes() == source.read_bytes()


def test_known_content_is_uploaded_once(backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"same bytes")
    (tmp_path / "b").write_bytes(b"same bytes")
    first = backend.store.put_file(tmp_path / "a")
    assert backend.uploads() == 1
    second = backend.store.put_file(tmp_path / "b")
    again = backend.store.put_file(tmp_path / "a", sha256=first.sha256)
    assert first == second == again
    assert backend.uploads() == 1
    assert [a.sha256 for a in backend.store.list()] == [first.sha256]


def test_list_exists_delete(backend: Backend, tmp_path: Path) -> None:
    assert list(backend.store.list()) == []
    artifacts = [backend.store.put_file(_write(tmp_path / f"f{i}", 100 + i)) for i in range(4)]
    listed = list(backend.store.list())
    assert listed == sorted(artifacts, key=lambda a: a.sha256)
    victim = artifacts[0]
    backend.store.delete(victim.sha256)
    assert not backend.store.exists(victim.sha256)
    assert victim not in list(backend.store.list())
    backend.store.delete(victim.sha256)  # deleting what is gone is no error
    assert not backend.store.exists("0" * 64)


def test_corrupt_object_is_refused_and_dest_untouched(backend: Backend, tmp_path: Path) -> None:
    artifact = backend.store.put_file(_write(tmp_path / "a", 2048))
    backend.corrupt(artifact.sha256)
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"previous content")
    with pytest.raises(ArtifactError, match="hashes to"):
        backend.store.get_file(artifact.uri, dest)
    assert dest.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


def test_missing_artifact_and_bad_uris(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no such artifact"):
        backend.store.get_file(backend.store.uri_for("0" * 64), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ArtifactError, match="not a content-addressed"):
        backend.store.get_file(f"{backend.store.uri.split('?')[0]}/whatever.bin", tmp_path / "x")
    with pytest.raises(ArtifactError, match="no such file"):
        backend.store.put_file(tmp_path / "missing")
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_progress_callback_reports_every_byte(backend: Backend, tmp_path: Path) -> None:
    source = _write(tmp_path / "big.bin", 7 * MB + 11)
    seen_up: list[tuple[int, int | None]] = []
    artifact = backend.store.put_file(source, progress=lambda done, total: seen_up.append((done, total)))
    assert seen_up[-1] == (source.stat().st_size, source.stat().st_size)
    assert [d for d, _ in seen_up] == sorted(d for d, _ in seen_up)
    seen_down: list[tuple[int, int | None]] = []
    backend.store.get_file(artifact.uri, tmp_path / "down.bin", progress=lambda d, t: seen_down.append((d, t)))
    assert seen_down[-1] == (artifact.size, artifact.size)
    nothing: list[object] = []
    backend.store.put_file(source, progress=nothing.append)  # known content: nothing to transfer
    assert nothing == []


def test_signed_url_fetches_the_object(backend: Backend, tmp_path: Path) -> None:
    source = _write(tmp_path / "sample.png", 4096)
    artifact = backend.store.put_file(source)
    url = backend.store.signed_url(artifact.uri, expires=120)
    if backend.name == "file":
        assert url.startswith("file:///") and Path(url[len("file://"):]).read_bytes() == source.read_bytes()
    else:
        response = requests.get(url, timeout=10)  # no credentials: the URL carries its own authorization
        assert response.status_code == 200 and response.content == source.read_bytes()
    with pytest.raises(ArtifactNotFoundError):
        backend.store.signed_url(backend.store.uri_for("1" * 64))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "file"], indirect=True)  # file:// has no metadata
def test_object_with_foreign_metadata_is_replaced(backend: Backend, tmp_path: Path) -> None:
    """An object at the right key whose recorded hash does not match is not trusted: a put writes it again."""
    assert backend.mislabel is not None
    source = _write(tmp_path / "a", 3000)
    artifact = backend.store.put_file(source)
    backend.mislabel(artifact.sha256)
    assert not backend.store.exists(artifact.sha256)
    backend.store.put_file(source)
    assert backend.store.exists(artifact.sha256)
    assert backend.store.get_file(artifact.uri, tmp_path / "back").read_bytes() == source.read_bytes()
