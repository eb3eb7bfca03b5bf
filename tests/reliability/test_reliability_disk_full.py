"""A full disk (a real 1 MB tmpfs) wherever the library writes: one DiskFullError naming the place, with a hint,
and nothing half-written (no partial object, no scratch folder, no half-materialized DEST, nothing recorded)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from fault_helpers import noise_png, small_tmpfs

from orchestrator.artifacts import open_store
from orchestrator.datasets import materialize_snapshot, take_snapshot
from orchestrator.errors import DiskFullError, OrchestratorError
from orchestrator.tracking.store import TrackingStore


@pytest.fixture
def full_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "small") as mount:
        yield mount


@pytest.fixture
def sqlite_store(tmp_path: Path):
    with TrackingStore(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        yield store


def big_dataset(root: Path, images: int = 6) -> Path:
    """A DreamBooth folder of incompressible images, ~2.9 MB: more than the small disk holds."""
    for index in range(images):
        noise_png(root / "1_noise" / f"{index}.png")
        (root / "1_noise" / f"{index}.txt").write_text(f"pixel art, noise {index}\n")
    return root


def assert_disk_full(error: DiskFullError, place: Path) -> None:
    assert isinstance(error, OrchestratorError) and error.path.startswith(str(place))
    line = error.one_line()
    assert f"no space left on the device holding {place}" in line and "(hint: free space there" in line
    assert "data recorded before is safe" in line


def test_store_put_onto_a_full_disk(full_disk: Path, tmp_path: Path):
    store = open_store(str(full_disk / "store"))
    kept = store.put_file(noise_png(tmp_path / "small.png", 100))  # fits: 30 KB
    with pytest.raises(DiskFullError) as caught:
        store.put_file(noise_png(tmp_path / "big.png", 800))  # ~1.9 MB
    assert_disk_full(caught.value, full_disk / "store")
    assert [a.sha256 for a in store.list()] == [kept.sha256]  # the earlier object is intact, no half object
    assert not [p for p in (full_disk / "store").rglob("*") if ".partial-" in p.name]


def test_store_get_onto_a_full_disk(full_disk: Path, tmp_path: Path):
    store = open_store(str(tmp_path / "store"))
    artifact = store.put_file(noise_png(tmp_path / "big.png", 800))
    with pytest.raises(DiskFullError) as caught:
        store.get_file(artifact.uri, full_disk / "out" / "big.png")
    assert_disk_full(caught.value, full_disk / "out")
    assert list((full_disk / "out").iterdir()) == []  # neither the file nor its partial


def test_snapshot_archive_onto_a_full_tmpdir(full_disk: Path, tmp_path: Path, sqlite_store, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    artifacts = open_store(str(tmp_path / "store"))
    with pytest.raises(DiskFullError) as caught:
        take_snapshot(big_dataset(tmp_path / "ds"), tracking=sqlite_store, artifacts=artifacts)
    assert_disk_full(caught.value, full_disk)
    assert "orchestrator-snapshot-" in caught.value.path
    assert sqlite_store.list_snapshots() == [] and list(artifacts.list()) == []
    assert list(full_disk.iterdir()) == []  # the scratch folder is gone


def test_materialize_onto_a_full_disk(full_disk: Path, tmp_path: Path, sqlite_store):
    artifacts = open_store(str(tmp_path / "store"))
    take_snapshot(big_dataset(tmp_path / "ds"), tracking=sqlite_store, artifacts=artifacts, label="noise")
    dest = full_disk / "dataset"
    with pytest.raises(DiskFullError) as caught:
        materialize_snapshot("noise", dest, tracking=sqlite_store, artifacts=artifacts)
    assert_disk_full(caught.value, full_disk)
    assert list(full_disk.iterdir()) == []  # no DEST, no staging folder, no archive copy

    # --force onto an existing DEST: a full disk leaves the old contents as they were.
    shutil.rmtree(tmp_path / "ds")
    (dest / "mine").mkdir(parents=True)
    (dest / "mine" / "keep.txt").write_text("mine")
    with pytest.raises(DiskFullError):
        materialize_snapshot("noise", dest, tracking=sqlite_store, artifacts=artifacts, force=True)
    assert [p.name for p in full_disk.iterdir()] == ["dataset"]
    assert (dest / "mine" / "keep.txt").read_text() == "mine" and len(list(dest.rglob("*"))) == 2


def test_other_os_errors_are_not_called_a_full_disk(tmp_path: Path):
    from orchestrator.errors import disk_full_names

    with pytest.raises(FileNotFoundError), disk_full_names(tmp_path):
        open(tmp_path / "missing" / "x", "rb")


def test_materialize_that_fills_the_disk_while_extracting(tmp_path: Path, sqlite_store):
    artifacts = open_store(str(tmp_path / "store"))
    taken = take_snapshot(big_dataset(tmp_path / "ds"), tracking=sqlite_store, artifacts=artifacts, label="noise")
    assert 2 * 1024 * 1024 < taken.snapshot.archive_bytes < 4 * 1024 * 1024  # the archive fits, its files do not
    with small_tmpfs(tmp_path / "medium", "4m") as disk:
        with pytest.raises(DiskFullError) as caught:
            materialize_snapshot("noise", disk / "dataset", tracking=sqlite_store, artifacts=artifacts)
        assert_disk_full(caught.value, disk)
        assert "materializing snapshot" in caught.value.one_line()
        assert list(disk.iterdir()) == []
