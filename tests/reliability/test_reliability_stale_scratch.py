"""What a SIGKILLed process leaves (snapshot scratch folders in TMPDIR, partial objects in a file:// store) is
swept by later runs — only when stale: unlocked by any live process and older than the grace period. Tested with a
real second process that holds its scratch path and is then killed with SIGKILL."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from fault_helpers import kill_and_reap, noise_png, start_python

from orchestrator.artifacts import open_store
from orchestrator.datasets import take_snapshot
from orchestrator.datasets.snapshot import sweep_stale_scratch
from orchestrator.scratch import GRACE_SECONDS, owned_scratch_dir, sweep_stale
from orchestrator.tracking.store import TrackingStore

OLD = time.time() - GRACE_SECONDS - 60


def age(path: Path, when: float = OLD) -> None:
    os.utime(path, (when, when))


@pytest.fixture
def tmpdir_here(tmp_path: Path, monkeypatch) -> Path:
    scratch = tmp_path / "TMPDIR"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


HOLD_SCRATCH = """
import sys, time
from orchestrator.scratch import owned_scratch_dir
with owned_scratch_dir("orchestrator-snapshot-", {dir!r}) as path:
    (path / "archive.tar").write_bytes(b"x" * 4096)
    print(path, flush=True)
    time.sleep(120)
"""


def test_a_killed_snapshots_scratch_folder_is_swept_and_a_live_ones_never(tmpdir_here: Path):
    live, live_path = start_python(HOLD_SCRATCH.format(dir=str(tmpdir_here)))
    doomed, doomed_path = start_python(HOLD_SCRATCH.format(dir=str(tmpdir_here)))
    try:
        for path in (live_path, doomed_path):
            age(Path(path))
        assert sweep_stale_scratch() == []  # both owners alive: both kept, however old
        kill_and_reap(doomed)
        assert sweep_stale_scratch() == [Path(doomed_path)]
        assert not Path(doomed_path).exists() and (Path(live_path) / "archive.tar").is_file()
    finally:
        kill_and_reap(live)


def test_only_old_unowned_scratch_of_ours_is_swept(tmpdir_here: Path):
    young = tmpdir_here / "orchestrator-snapshot-young"  # e.g. just created, not locked yet: within the grace
    young.mkdir()
    legacy = tmpdir_here / "orchestrator-snapshot-legacy"  # left by a version that did not lock: only its age says
    (legacy / "sub").mkdir(parents=True)
    age(legacy)
    other = tmpdir_here / "orchestrator-eval-old"  # another command's scratch: not this sweep's
    other.mkdir()
    age(other)
    target = tmpdir_here / "elsewhere"
    target.mkdir()
    link = tmpdir_here / "orchestrator-snapshot-link"
    link.symlink_to(target)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    with owned_scratch_dir("orchestrator-snapshot-") as mine:  # this process's own, old: kept
        age(mine)
        assert sweep_stale_scratch() == [legacy]
        assert mine.is_dir()
    assert young.is_dir() and other.is_dir() and target.is_dir() and link.is_symlink()


def test_a_snapshot_sweeps_what_a_killed_one_left(tmpdir_here: Path, tmp_path: Path):
    killed, path = start_python(HOLD_SCRATCH.format(dir=str(tmpdir_here)))
    age(Path(path))
    kill_and_reap(killed)
    dataset = tmp_path / "ds" / "1_x"
    noise_png(dataset / "a.png", 16)
    (dataset / "a.txt").write_text("pixel art\n")
    with TrackingStore(f"sqlite:///{tmp_path / 'db.sqlite'}") as tracking:
        take_snapshot(tmp_path / "ds", tracking=tracking, artifacts=open_store(str(tmp_path / "store")))
    assert list(tmpdir_here.iterdir()) == []


HOLD_PARTIAL = """
import time
from orchestrator.artifacts import open_store
store = open_store({store!r})
partial, fd = store.open_partial({sha!r})
import os; os.write(fd, b"half an object")
print(partial, flush=True)
time.sleep(120)
"""


def test_partial_objects_of_killed_puts_are_swept_by_a_later_put(tmp_path: Path):
    root = tmp_path / "store"
    live, live_partial = start_python(HOLD_PARTIAL.format(store=str(root), sha="ab" + "1" * 62))
    doomed, doomed_partial = start_python(HOLD_PARTIAL.format(store=str(root), sha="ab" + "2" * 62))
    try:
        kill_and_reap(doomed)
        for path in (live_partial, doomed_partial):
            age(Path(path))
        young = root / "sha256" / "cd" / (".cd" + "3" * 62 + ".partial-1")  # within the grace: kept
        young.parent.mkdir(parents=True)
        young.write_bytes(b"x")
        store = open_store(str(root))
        artifact = store.put_file(noise_png(tmp_path / "a.png", 16))  # a later, successful put
        assert store.exists(artifact.sha256)
        assert not Path(doomed_partial).exists()
        assert Path(live_partial).read_bytes() == b"half an object" and young.exists()
        assert [a.sha256 for a in store.list()] == [artifact.sha256]  # partials are never listed as objects
    finally:
        kill_and_reap(live)


def test_a_sweep_never_fails_its_command(tmp_path: Path):
    assert sweep_stale(tmp_path / "missing", lambda name: True) == []
    assert open_store(str(tmp_path / "never-written")).sweep_partials() == []
