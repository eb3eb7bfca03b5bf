"""Faults the CLI's last line of defence meets: a full disk, a disk out of inodes, a read-only file system (real
tmpfs mounts, through CliRunner), and a reader that closes the pipe early (a real pipe into `head`).

Where the library names the fault itself (DiskFullError) these never reach the catch-all; `dataset example` writes
without such a guard, so it is the command used here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_helpers import small_tmpfs

from orchestrator.cli import cli
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.store import TrackingStore

HANG_GUARD_SECONDS = 120


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output
    return lines[0]


def test_a_full_disk_is_one_line_with_a_hint(tmp_path):
    with small_tmpfs(tmp_path / "full", "64k") as full:
        line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(full / "example")]))
    assert "no space left on the device" in line
    assert "(hint: free space there or choose another location; what was recorded before this is safe" in line


def test_a_disk_out_of_inodes_names_the_path(tmp_path):
    with small_tmpfs(tmp_path / "inodes", "1m", "nr_inodes=16") as full:
        filler = full / "filler"
        filler.mkdir()
        with pytest.raises(OSError):  # take every inode there is
            for n in range(100):
                (filler / str(n)).touch()
        target = full / "example"
        line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(target)]))
    assert line.startswith(f"Error: {target}") and "no space left on the device" in line
    assert "(hint: free space there or choose another location; what was recorded before this is safe" in line


def test_a_read_only_file_system_names_the_path(tmp_path):
    with small_tmpfs(tmp_path / "ro", "64k", "ro") as read_only:
        target = read_only / "example"
        line = _error_line(CliRunner().invoke(cli, ["dataset", "example", str(target)]))
    assert line.startswith(f"Error: {target}") and "read-only" in line and "(hint: choose a writable location" in line


@pytest.fixture
def chatty_run(tmp_path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'tracking.db'}"
    with TrackingStore(url) as store:  # enough output that it cannot all sit in the pipe's buffer
        run = store.create_run(NewRun(name="chatty", notes="a long note\n" * 200_000))
    return url, run.id


def _orchestrator(url: str, *args: str, stdout) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--database", url, *args], stdout=stdout,
                            stderr=subprocess.PIPE)


def test_output_piped_into_head_ends_quietly(chatty_run):
    url, run_id = chatty_run
    writer = _orchestrator(url, "runs", "show", run_id, stdout=subprocess.PIPE)
    reader = subprocess.Popen(["head", "-c", "100"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # the reader holds the only read end: when it exits, the pipe is broken
    head, _ = reader.communicate(timeout=HANG_GUARD_SECONDS)
    _, err = writer.communicate(timeout=HANG_GUARD_SECONDS)
    assert head.startswith(b"id") and len(head) == 100
    assert err.decode() == ""  # no "Error: unexpected BrokenPipeError", no "Exception ignored" at exit
    assert writer.returncode == 141  # 128 + SIGPIPE, as a tool stopped by the closed pipe reports


@pytest.mark.parametrize("first_output", ["click", "rich"])
def test_output_into_a_reader_already_gone_ends_quietly(chatty_run, first_output):
    """The first write meets the closed pipe: through click.echo (`runs show`'s fields) or through rich, which
    handles a closed pipe on its own with SystemExit(1) (`runs list`'s table)."""
    url, run_id = chatty_run
    read_end, write_end = os.pipe()
    reader = subprocess.Popen(["head", "-c", "0"], stdin=read_end)
    os.close(read_end)
    reader.wait(HANG_GUARD_SECONDS)  # gone before the orchestrator writes a byte
    args = ["runs", "show", run_id] if first_output == "click" else ["runs", "list"]
    writer = _orchestrator(url, *args, stdout=write_end)
    os.close(write_end)
    _, err = writer.communicate(timeout=HANG_GUARD_SECONDS)
    assert err.decode() == ""
    assert writer.returncode == 141
