"""Helpers of the reliability suite: a small real filesystem that fills up, and a real second process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image


@contextmanager
def small_tmpfs(path: Path, size: str = "1m", options: str = "") -> Iterator[Path]:
    """A real ``size`` tmpfs mounted on ``path`` (needs root / CAP_SYS_ADMIN; skips with the reason otherwise);
    ``options`` adds mount options (``ro``, ``nr_inodes=16``)."""
    path.mkdir(parents=True, exist_ok=True)
    mount_options = ",".join(filter(None, [f"size={size}", options]))
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", mount_options, "tmpfs", str(path)],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot mount a tmpfs to fill up: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def noise_png(path: Path, size: int = 400) -> Path:
    """An incompressible PNG (about size*size*3 bytes): fills a small disk quickly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(path)
    return path


def start_python(code: str, *, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start a second Python process running ``code``; returns it and the first line it prints (its ready signal)."""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **(env or {})})
    line = process.stdout.readline().strip()
    if not line:
        process.kill()
        raise AssertionError(f"the second process did not start: {process.stderr.read()}")
    return process, line


def kill_and_reap(process: subprocess.Popen) -> None:
    process.kill()  # SIGKILL: no finally, no atexit, as the OOM killer does it
    process.wait(timeout=30)
    time.sleep(0.05)
