"""An orchestrator killed with SIGKILL (as the OOM killer does) while its trainer runs: the trainer, in a process
group of its own, must not live on holding the GPU. A real orchestrator process runs the stand-in trainer
(tests/standins/fake_sd_scripts_trainer.py, which also forks a worker); after the kill the trainer and its worker
are gone within a bound and the run ends ``lost`` by the heartbeat staleness rule."""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fault_helpers import kill_and_reap, start_python

from orchestrator.artifacts import open_store
from orchestrator.executors.liveness import STALE_AFTER_SECONDS, mark_stale_runs_lost
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.tracking.entities import NewRun
from orchestrator.tracking.session import utcnow

STANDIN = Path(__file__).resolve().parents[1] / "standins" / "fake_sd_scripts_trainer.py"
BOUND_SECONDS = 30  # the watchdog sends SIGTERM at once; a hang guard, not a measurement

# The local executor running the stand-in trainer, which hangs in its second epoch, beating every half second.
ORCHESTRATOR = """
import os, sys
from pathlib import Path
from orchestrator.artifacts import open_store
from orchestrator.executors.local import LocalTrainerRun, TrainerCommand
from orchestrator.tracking.store import TrackingStore

db_url, artifacts_uri, run_id, work, standin, child_pid_file = sys.argv[1:]
work = Path(work)
command = TrainerCommand(
    argv=[sys.executable, standin, "--mode", "hang", "--spawn-child", child_pid_file],
    env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output", logging_dir=work / "logs",
    log_file=work / "train.log")
trainer = LocalTrainerRun(TrackingStore(db_url), open_store(artifacts_uri), run_id, command, heartbeat_seconds=0.5)
print("ready", flush=True)
trainer.run()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead for our purposes
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_trainer_dies_with_its_sigkilled_orchestrator_and_the_run_ends_lost(store, db_url, tmp_path):
    run = store.create_run(NewRun(name="killed-orchestrator", status="running", max_epochs=2))
    work = tmp_path / "work"
    work.mkdir()
    child_pid_file = tmp_path / "child.pid"
    code = ORCHESTRATOR.replace("sys.argv[1:]", repr([db_url, (tmp_path / "artifacts").as_uri(), run.id, str(work),
                                                     str(STANDIN), str(child_pid_file)]))
    orchestrator, _ = start_python(code)
    try:
        _wait_for(lambda: any(e.epoch == 2 for e in store.events(run.id, kind="epoch_start")), 60,
                  "the trainer's second epoch")
        trainers = [p for p in _children(orchestrator.pid) if "fake_sd_scripts_trainer" in _command_line(p)]
        assert len(trainers) == 1
        trainer, trainer_worker = trainers[0], int(child_pid_file.read_text())
        assert _alive(trainer) and _alive(trainer_worker)
        assert store.mark_lost(timedelta(seconds=5)) == []  # beating: not lost while its orchestrator lives
    except BaseException:
        kill_and_reap(orchestrator)
        raise
    kill_and_reap(orchestrator)  # SIGKILL: no handler, no finally, nothing cleaned up
    _wait_for(lambda: not _alive(trainer) and not _alive(trainer_worker), BOUND_SECONDS,
              "the orphaned trainer and its worker to stop")

    assert store.get_run(run.id).status == "running"  # nobody has looked yet
    # the staleness rule as every command applies it, judged a little more than its threshold after the kill
    later = utcnow() + timedelta(seconds=STALE_AFTER_SECONDS + 1)
    assert mark_stale_runs_lost(store, now=later) == [run.id]
    assert store.get_run(run.id).status == "lost"


def test_a_trainer_that_ends_normally_leaves_no_watchdog_behind(store, tmp_path):
    run = store.create_run(NewRun(name="normal", status="running", max_epochs=1))
    work = tmp_path / "w"
    work.mkdir()
    command = TrainerCommand(
        argv=[sys.executable, str(STANDIN), "--epochs", "1", "--steps", "2"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=work, output_dir=work / "output",
        logging_dir=work / "logs", log_file=work / "train.log")
    outcome = LocalTrainerRun(store, open_store((tmp_path / "a").as_uri()), run.id, command).run()
    assert outcome.status == "succeeded"
    watchdogs = [p for p in _children(os.getpid()) if "trainer_watchdog" in _command_line(p) and _alive(p)]
    assert watchdogs == []
