"""Scratch files and folders that a killed process leaves behind, and the sweep that removes the stale ones.

A process that is SIGKILLed (the OOM killer, ``kill -9``, a closed laptop lid) runs no ``finally``: its temporary
snapshot archive (up to hundreds of MB in TMPDIR) or its half-copied store object stays. So the owner of a scratch
path holds an exclusive ``flock(2)`` on it for as long as it works on it; the kernel drops that lock when the owner
dies, however it dies, whatever PID namespace it ran in, and a reused PID does not inherit it. A sweep removes a
path only when both hold:

* nobody holds its lock (it can take the lock itself, without waiting), and
* it is older than :data:`GRACE_SECONDS` (covers the instant between creating a path and locking it, and scratch
  paths written by versions of the tool that did not lock them yet: a live writer keeps touching its file).

So a live process's scratch path is never removed, however old.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GRACE_SECONDS = 600.0


@contextmanager
def owned_scratch_dir(prefix: str, directory: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A fresh temporary folder, locked while the block runs and removed after it (like TemporaryDirectory)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)  # after the removal: a sweep never sees it unlocked while it still exists


def lock_owned_file(fd: int) -> None:
    """Mark the file open on ``fd`` as owned by this process until ``fd`` is closed (or the process dies)."""
    fcntl.flock(fd, fcntl.LOCK_EX)


def sweep_stale(directory: str | os.PathLike[str], is_scratch, *, grace: float = GRACE_SECONDS,
                now: float | None = None) -> list[Path]:
    """Remove the stale scratch entries of ``directory`` whose names ``is_scratch(name)`` accepts; returns them.

    Only this user's own entries are considered, links are never followed, and any error on one entry (it vanished,
    it is not ours) leaves that entry alone: a sweep is housekeeping and never fails the command that runs it.
    """
    removed: list[Path] = []
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not is_scratch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (is_dir or stat.S_ISREG(info.st_mode)) or info.st_uid != os.getuid() or now - info.st_mtime < grace:
            continue
        if _remove_if_unowned(Path(entry.path), info, is_dir):
            removed.append(Path(entry.path))
    return removed


def _remove_if_unowned(path: Path, info: os.stat_result, is_dir: bool) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if is_dir else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live owner holds it
        if os.fstat(fd).st_ino != info.st_ino:
            return False  # replaced since we looked
        if is_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return not path.exists()
    finally:
        os.close(fd)
