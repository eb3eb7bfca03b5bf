"""The local executor against a stand-in trainer process (real process group, signals, files, tfevents).

The stand-in (tests/standins/fake_sd_scripts_trainer.py) prints what sd-scripts prints; the real trainer is run by
tests/test_sd_scripts_integration.py where sd-scripts is available.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.artifacts import open_store
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.kohya.trainer_log import EpochStarted
from orchestrator.tracking.entities import NewRun

STANDIN = Path(__file__).resolve().parent / "standins" / "fake_sd_scripts_trainer.py"


def _command(work: Path, *args: str) -> TrainerCommand:
    work.mkdir(parents=True, exist_ok=True)
    return TrainerCommand(
        argv=[sys.executable, str(STANDIN), *args], env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work,
        output_dir=work / "output", logging_dir=work / "logs", log_file=work / "train.log",
    )


@pytest.fixture
def artifacts(tmp_path):
    return open_store((tmp_path / "artifacts").as_uri())


def _running_run(store):
    return store.create_run(NewRun(name="exec", status="running", max_epochs=2))


def test_successful_run_registers_checkpoints_events_and_steps(store, artifacts, tmp_path):
    run = _running_run(store)
    seen = []
    outcome = LocalTrainerRun(store, artifacts, run.id, _command(tmp_path / "work", "--epochs", "2", "--steps", "3"),
                              on_event=seen.append).run()
    assert outcome.status == "succeeded" and outcome.exit_code == 0
    record = store.get_run(run.id)
    assert record.status == "succeeded" and record.exit_code == 0
    checkpoints = store.checkpoints(run.id)
    assert [(c.epoch, c.step, c.metadata["file_name"]) for c in checkpoints] == [
        (1, 3, "punks-000001.safetensors"), (2, 6, "punks.safetensors")]
    for checkpoint in checkpoints:
        copy = artifacts.get_file(checkpoint.uri, tmp_path / "check" / f"{checkpoint.epoch}.safetensors")
        assert copy.stat().st_size == checkpoint.size_bytes
        assert checkpoint.metadata["ss_seed"] == "42"
        assert checkpoint.metadata["ss_tag_frequency"] == {"10_punk": {"pixel art": 4}}
    epochs = store.events(run.id, kind="epoch")
    assert [(e.epoch, round(e.loss, 4)) for e in epochs] == [(1, round(0.9 / 3, 4)), (2, round(0.9 / 6, 4))]
    assert [e.epoch for e in store.events(run.id, kind="epoch_start")] == [1, 2]
    steps = store.training_steps(run.id)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0]["loss"] == pytest.approx(1.0) and steps[0]["learning_rate"] == pytest.approx(1e-4)
    assert outcome.training_steps == 6
    log = artifacts.get_file(record.log_uri, tmp_path / "log.txt").read_text()
    assert "saving checkpoint: output/punks.safetensors" in log
    assert any(isinstance(e, EpochStarted) for e in seen)
    assert outcome.first_step_seconds is not None and outcome.first_step_seconds <= outcome.wall_seconds


def test_crash_marks_failed_with_the_last_lines(store, artifacts, tmp_path):
    run = _running_run(store)
    outcome = LocalTrainerRun(store, artifacts, run.id, _command(tmp_path / "w", "--mode", "crash")).run()
    record = store.get_run(run.id)
    assert (outcome.status, record.status, record.exit_code) == ("failed", "failed", 3)
    assert "CUDA out of memory" in record.error_summary and "exited with 3" in record.error_summary
    assert len(store.checkpoints(run.id)) == 1  # epoch 1 was saved before the crash and is kept
    # the crash came in epoch 2: epoch 1 ended, epoch 2 did not (issue 21, item 8)
    assert [e.epoch for e in store.events(run.id, kind="epoch")] == [1]
    assert [e.epoch for e in store.events(run.id, kind="epoch_start")] == [1, 2]
    assert any("CUDA out of memory" in (e.message or "") for e in store.events(run.id, kind="log"))


def test_exit_zero_without_checkpoint_is_a_failure(store, artifacts, tmp_path):
    run = _running_run(store)
    outcome = LocalTrainerRun(store, artifacts, run.id, _command(tmp_path / "w", "--mode", "no_checkpoint")).run()
    record = store.get_run(run.id)
    assert outcome.exit_code == 0 and record.status == "failed"
    assert "wrote no checkpoint" in record.error_summary and "No data found" in record.error_summary


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_stops_the_whole_process_group_and_keeps_checkpoints(store, artifacts, tmp_path):
    run = _running_run(store)
    child_pid_file = tmp_path / "child.pid"
    second_epoch = threading.Event()
    trainer = LocalTrainerRun(
        store, artifacts, run.id,
        _command(tmp_path / "w", "--mode", "hang", "--spawn-child", str(child_pid_file)),
        on_event=lambda e: second_epoch.set() if isinstance(e, EpochStarted) and e.epoch == 2 else None,
    )
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", trainer.run()))
    thread.start()
    assert second_epoch.wait(30)
    child_pid = int(child_pid_file.read_text())
    assert _alive(child_pid)
    trainer.cancel()
    thread.join(60)
    assert not thread.is_alive()
    assert result["outcome"].status == "cancelled"
    assert store.get_run(run.id).status == "cancelled"
    assert [c.epoch for c in store.checkpoints(run.id)] == [1]
    assert [e.message for e in store.events(run.id, kind="epoch")] == ["epoch 1 ended"]  # stopped inside epoch 2
    deadline = time.time() + 10
    while _alive(child_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child_pid), "the trainer's child process survived the cancel"


def test_trainer_that_cannot_start_fails_the_run(store, artifacts, tmp_path):
    from orchestrator.errors import InputError

    run = _running_run(store)
    command = _command(tmp_path / "w")
    command = TrainerCommand(argv=["/nonexistent/python"], env={}, cwd=command.cwd, output_dir=command.output_dir,
                             logging_dir=command.logging_dir, log_file=command.log_file)
    with pytest.raises(InputError, match="could not start the trainer"):
        LocalTrainerRun(store, artifacts, run.id, command).run()
    assert store.get_run(run.id).status == "failed"


_KILLED_ORCHESTRATOR = """
import sys
from orchestrator.artifacts import open_store
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.tracking.store import TrackingStore
from pathlib import Path
url, store_uri, run_id, work, standin = sys.argv[1:6]
work = Path(work)
command = TrainerCommand(argv=[sys.executable, standin, "--mode", "hang"], env={}, cwd=work,
                         output_dir=work / "output", logging_dir=work / "logs", log_file=work / "train.log")
LocalTrainerRun(TrackingStore(url), open_store(store_uri), run_id, command, heartbeat_seconds=0.2).run()
"""


def test_killed_orchestrator_leaves_a_run_that_the_next_command_marks_lost(store, db_url, artifacts, tmp_path):
    run = _running_run(store)
    (tmp_path / "w").mkdir()
    orchestrator = subprocess.Popen([sys.executable, "-c", _KILLED_ORCHESTRATOR, db_url, artifacts.uri, run.id,
                                     str(tmp_path / "w"), str(STANDIN)], start_new_session=True)
    # Wait until the trainer is up and the orchestrator has beaten at least once (the deadline only bounds a hang).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            (tmp_path / "w" / "output").exists() and store.get_run(run.id).heartbeat_at > run.heartbeat_at):
        time.sleep(0.05)
    os.killpg(orchestrator.pid, signal.SIGKILL)  # the orchestrator and its trainer die without a word
    orchestrator.wait()
    last_beat = store.get_run(run.id).heartbeat_at
    assert last_beat > run.heartbeat_at and store.get_run(run.id).status == "running"
    # Judged at times just before and just after the timeout, not by waiting for it to pass.
    assert store.mark_lost(timedelta(seconds=1), now=last_beat + timedelta(seconds=0.9)) == []
    assert store.get_run(run.id).status == "running"
    assert store.mark_lost(timedelta(seconds=1), now=last_beat + timedelta(seconds=1.1)) == [run.id]
    assert store.get_run(run.id).status == "lost"
    _kill_processes_in(tmp_path / "w")  # the trainer had its own session: it outlived the orchestrator


def _kill_processes_in(work: Path) -> None:
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == work:
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            pass


def test_runs_cancel_from_another_process_stops_the_trainer(store, db_url, artifacts, tmp_path):
    """`runs cancel` only writes the database; the executor sees it at its next heartbeat and stops the group."""
    from click.testing import CliRunner

    from orchestrator.cli import cli

    run = _running_run(store)
    second_epoch = threading.Event()
    trainer = LocalTrainerRun(
        store, artifacts, run.id, _command(tmp_path / "w", "--mode", "hang"), heartbeat_seconds=0.2,
        on_event=lambda e: second_epoch.set() if isinstance(e, EpochStarted) and e.epoch == 2 else None,
    )
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", trainer.run()))
    thread.start()
    assert second_epoch.wait(30)
    cancel = CliRunner().invoke(cli, ["--database", db_url, "runs", "cancel", run.id], catch_exceptions=False)
    assert cancel.exit_code == 0, cancel.output
    thread.join(60)
    assert not thread.is_alive(), "the trainer kept running after runs cancel"
    assert result["outcome"].status == "cancelled"
    record = store.get_run(run.id)
    assert record.status == "cancelled" and record.exit_code is not None
    assert [c.epoch for c in store.checkpoints(run.id)] == [1]
