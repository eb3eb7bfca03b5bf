"""The file:// artifact store: content addressing, verification, atomic writes."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from orchestrator.artifacts import get_artifact, open_store
from orchestrator.artifacts.base import ArtifactError


@pytest.fixture
def store(tmp_path):
    return open_store((tmp_path / "store").as_uri())


def test_put_and_get_round_trip(store, tmp_path):
    source = tmp_path / "checkpoint.safetensors"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    artifact = store.put_file(source)
    assert artifact.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert artifact.size == source.stat().st_size
    assert artifact.uri.endswith(f"/sha256/{artifact.sha256[:2]}/{artifact.sha256}")
    copy = store.get_file(artifact.uri, tmp_path / "out" / "copy.bin")
    assert copy.read_bytes() == source.read_bytes()
    assert get_artifact(artifact.uri, tmp_path / "again.bin").read_bytes() == source.read_bytes()


def test_same_content_is_stored_once(store, tmp_path):
    (tmp_path / "a").write_bytes(b"same")
    (tmp_path / "b").write_bytes(b"same")
    first, second = store.put_file(tmp_path / "a"), store.put_file(tmp_path / "b")
    assert first == second
    assert len(list(store.list())) == 1
    stored = store.local_path(first.sha256)
    assert not stat.S_IMODE(stored.stat().st_mode) & 0o222  # objects are read-only


def test_corrupt_object_is_detected_and_dest_untouched(store, tmp_path):
    (tmp_path / "a").write_bytes(b"original")
    artifact = store.put_file(tmp_path / "a")
    stored = store.local_path(artifact.sha256)
    os.chmod(stored, 0o644)
    stored.write_bytes(b"tampered")
    dest = tmp_path / "dest.bin"
    with pytest.raises(ArtifactError, match="hashes to"):
        store.get_file(artifact.uri, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


def test_missing_artifact_and_bad_uris(store, tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact"):
        store.get_file(store.uri_for("0" * 64), tmp_path / "x")
    with pytest.raises(ArtifactError, match="not a content-addressed"):
        store.get_file(f"{store.uri}/whatever.bin", tmp_path / "x")
    with pytest.raises(ArtifactError, match="no such file"):
        store.put_file(tmp_path / "missing")


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ArtifactError, match="known schemes: file"):
        open_store("ftp://example/bucket")


def test_bare_path_and_default_store(tmp_path, monkeypatch):
    assert open_store(str(tmp_path / "plain")).uri == (tmp_path / "plain").as_uri()
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    assert open_store().uri == (tmp_path / "home" / "artifacts").as_uri()


def test_delete(store, tmp_path):
    (tmp_path / "a").write_bytes(b"bye")
    artifact = store.put_file(tmp_path / "a")
    store.delete(artifact.sha256)
    assert not store.exists(artifact.sha256)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 2560, 4096 + 7])
def test_copy_hashing_copies_and_hashes_in_one_pass(size, tmp_path, monkeypatch):
    """The overlapped copy must hash every byte in order, across chunk boundaries."""
    import hashlib

    from orchestrator.artifacts import file_store

    monkeypatch.setattr(file_store, "COPY_CHUNK", 1024)
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    digest, copied = file_store.copy_hashing(source, tmp_path / "copy.bin")
    assert (digest, copied) == (hashlib.sha256(data).hexdigest(), size)
    assert (tmp_path / "copy.bin").read_bytes() == data
