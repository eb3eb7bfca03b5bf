"""The local executor: runs sd-scripts in its own process group and records what it does as it does it.

While the trainer runs, this module
- keeps the full console output in the run's log file (stored as an artifact at the end),
- turns epoch starts, tqdm progress and ``saving checkpoint:`` lines into run events,
- registers each checkpoint (sha256, size, ss_* metadata) and puts it in the artifact store once it is complete,
- beats the run's heartbeat so that another command can tell a dead orchestrator (the run becomes ``lost``),
- keeps a watchdog process beside the trainer (trainer_watchdog.py) that stops the trainer's whole process group
  if this process dies without ending it (SIGKILL, the OOM killer), so that no orphan keeps the GPU.
At the end it reads the TensorBoard events into per-step loss and sets the final status: failed on a non-zero exit,
failed also on exit 0 without any checkpoint (sd-scripts does that when it finds no images), cancelled on Ctrl-C /
SIGTERM (the trainer's whole process group is stopped; checkpoints written so far are kept), else succeeded.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.artifacts.base import ArtifactStore, sha256_file
from orchestrator.errors import InputError
from orchestrator.kohya import safetensors_meta, tfevents
from orchestrator.kohya.trainer_log import (
    CheckpointSaved,
    EpochStarted,
    NotableLine,
    Progress,
    TrainerEvent,
    TrainerLogParser,
)
from orchestrator.tracking.store import TrackingStore

HEARTBEAT_SECONDS = 10.0
PROGRESS_EVENT_SECONDS = 15.0
STOP_GRACE_SECONDS = 20.0
_EPOCH_IN_NAME = re.compile(r"-(\d{6})\.safetensors$")
WATCHDOG_SCRIPT = Path(__file__).with_name("trainer_watchdog.py")


@dataclass(frozen=True)
class TrainerCommand:
    """What to run: argv and environment (built by a pure function elsewhere) and the run's work directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    output_dir: Path  # where sd-scripts writes checkpoints (absolute)
    logging_dir: Path  # where it writes TensorBoard events (absolute)
    log_file: Path


@dataclass
class RunOutcome:
    status: str
    exit_code: int | None
    checkpoints: list[str] = field(default_factory=list)
    error_summary: str | None = None
    training_steps: int = 0
    wall_seconds: float = 0.0
    first_step_seconds: float | None = None


class SampleScorer(Protocol):
    """Scores the trainer's sample images (orchestrator.evaluation.on_train.TrainingSampleScorer)."""

    def collect(self, *, finished_before: int | None) -> int: ...


class Cancelled(Exception):
    """Raised inside the monitor when the user or a signal asked the run to stop."""


class LocalTrainerRun:
    """One trainer process and its bookkeeping. Call :meth:`run`; call :meth:`cancel` from a signal handler."""

    def __init__(
        self,
        store: TrackingStore,
        artifacts: ArtifactStore,
        run_id: str,
        command: TrainerCommand,
        *,
        on_event: Callable[[TrainerEvent], None] | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        sample_scorer: SampleScorer | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.run_id = run_id
        self.command = command
        self.on_event = on_event or (lambda event: None)
        self.heartbeat_seconds = heartbeat_seconds
        self.parser = TrainerLogParser()
        self._process: subprocess.Popen[bytes] | None = None
        self._cancel = threading.Event()
        self._pending_checkpoints: list[Path] = []
        self._registered: set[str] = set()
        self._last_progress_event = 0.0
        self._epoch_losses: dict[int, float] = {}
        self._started = 0.0
        self._first_step_at: float | None = None
        self.sample_scorer = sample_scorer

    # -- control ------------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the run to stop (safe to call from a signal handler)."""
        self._cancel.set()
        self._signal_group(signal.SIGTERM)

    def _signal_group(self, signum: int) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        command = self.command
        command.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        guard = OrphanGuard.start(STOP_GRACE_SECONDS)
        if guard is None:
            self.store.record_event(self.run_id, "log", message="trainer watchdog not started: if this process is "
                                    "killed, stop the trainer's process group by hand")
        try:
            self._process = subprocess.Popen(
                command.argv,
                cwd=command.cwd,
                env=command.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we stop the trainer and every worker it forks
            )
        except OSError as error:
            if guard is not None:
                guard.release(trainer_ended=True)
            summary = f"could not start the trainer {command.argv[0]!r}: {error.strerror}"
            self.store.set_status(self.run_id, "failed", error_summary=summary)
            raise InputError(summary, "check the sd-scripts location and its Python (SD_SCRIPTS_PYTHON)") from None
        if guard is not None:
            guard.watch(self._process.pid)  # its process group's id: start_new_session made it the leader
        try:
            exit_code = self._monitor()
        finally:
            # a trainer still running here has lost its monitor (an error above): the watchdog stops it
            if guard is not None:
                guard.release(trainer_ended=self._process.poll() is not None)
        return self._finish(exit_code)

    def _monitor(self) -> int:
        """Follow the trainer's output until it ends; returns its exit code."""
        assert self._process is not None and self._process.stdout is not None
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with open(self.command.log_file, "ab") as log:
            while True:
                chunk = os.read(self._process.stdout.fileno(), 65536)
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                for event in self.parser.feed(decoder.decode(chunk)):
                    self._handle(event)
            for event in self.parser.feed(decoder.decode(b"", final=True)) + self.parser.close():
                self._handle(event)
        return self._wait()

    def _wait(self) -> int:
        assert self._process is not None
        try:
            return self._process.wait(timeout=STOP_GRACE_SECONDS if self._cancel.is_set() else None)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            return self._process.wait()

    def _heartbeat_loop(self) -> None:
        while self._process is not None and self._process.poll() is None:
            try:
                if self.store.heartbeat(self.run_id) == "cancelled" and not self._cancel.is_set():
                    self.cancel()  # `runs cancel` from another process or machine
            except Exception:  # noqa: BLE001 - a missed beat must not kill the run; the next one may get through
                pass
            self._cancel.wait(self.heartbeat_seconds)
            if self._cancel.is_set():
                # keep stopping: a trainer that ignores SIGTERM gets SIGKILL after the grace period
                deadline = time.monotonic() + STOP_GRACE_SECONDS
                while self._process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                self._signal_group(signal.SIGKILL)
                return

    # -- events -------------------------------------------------------------------------------------------------

    def _handle(self, event: TrainerEvent) -> None:
        self.on_event(event)
        if isinstance(event, EpochStarted):
            self._register_pending()
            self._record_epoch_end(event.epoch - 1)
            self._score_samples(finished_before=event.epoch)
            self.store.record_event(self.run_id, "epoch_start", epoch=event.epoch,
                                    message=f"epoch {event.epoch}/{event.total}")
        elif isinstance(event, Progress):
            if event.step > 0 and self._first_step_at is None:
                self._first_step_at = time.monotonic()
            if event.epoch is not None and event.average_loss is not None:
                self._epoch_losses[event.epoch] = event.average_loss
            now = time.monotonic()
            if now - self._last_progress_event >= PROGRESS_EVENT_SECONDS or event.step == event.total:
                self._last_progress_event = now
                self.store.record_event(
                    self.run_id, "progress", epoch=event.epoch, step=event.step, loss=event.average_loss,
                    data={"total_steps": event.total, "it_per_s": event.it_per_s,
                          "total_epochs": self.parser.total_epochs},
                )
        elif isinstance(event, CheckpointSaved):
            # The line is printed before the file is written: register it once the trainer has moved on.
            self._register_pending()
            self._pending_checkpoints.append(self._resolve(event.path))
        elif isinstance(event, NotableLine):
            self.store.record_event(self.run_id, "log", epoch=self.parser.epoch, message=event.text[:2000])

    def _record_epoch_end(self, epoch: int) -> None:
        if epoch >= 1:
            self.store.record_event(self.run_id, "epoch", epoch=epoch, loss=self._epoch_losses.get(epoch),
                                    message=f"epoch {epoch} ended")

    def _score_samples(self, *, finished_before: int | None) -> None:
        """On-train evaluation: score the sample images of the epochs that have ended. A scoring failure is
        recorded and ends scoring; training goes on."""
        if self.sample_scorer is None:
            return
        try:
            self.sample_scorer.collect(finished_before=finished_before)
        except Exception as error:  # noqa: BLE001 - evaluation must never stop the training
            self.sample_scorer = None
            self.store.record_event(self.run_id, "log", message=f"on-train evaluation stopped: {error}"[:2000])

    def _resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.command.cwd / candidate

    def _register_pending(self) -> None:
        pending, self._pending_checkpoints = self._pending_checkpoints, []
        for path in pending:
            self._register(path)

    def _register(self, path: Path) -> None:
        if not path.is_file() or str(path) in self._registered:
            return
        try:
            metadata = safetensors_meta.read_metadata(path) if path.suffix == ".safetensors" else {}
        except InputError as error:  # half-written or not a safetensors file: say so, keep going
            self.store.record_event(self.run_id, "log", message=f"checkpoint not registered: {error}")
            return
        sha256, size = sha256_file(path)
        artifact = self.artifacts.put_file(path, sha256=sha256)
        epoch = _int(metadata.get("ss_epoch"))
        if epoch is None and (match := _EPOCH_IN_NAME.search(path.name)):
            epoch = int(match[1])
        self.store.add_checkpoint(
            self.run_id, uri=artifact.uri, sha256=sha256, size_bytes=size, epoch=epoch,
            step=_int(metadata.get("ss_steps")),
            metadata={"file_name": path.name, **safetensors_meta.decoded_metadata(metadata)},
        )
        self._registered.add(str(path))

    # -- the end ------------------------------------------------------------------------------------------------

    def _finish(self, exit_code: int) -> RunOutcome:
        self._register_pending()
        # Anything written that the log did not announce (or announced in a line we did not see) counts too.
        if self.command.output_dir.is_dir():
            for path in sorted(self.command.output_dir.glob("*.safetensors")):
                self._register(path)
        if self.parser.epoch and exit_code == 0 and not self._cancel.is_set():
            # the last epoch ended only if the trainer did; a crash or a stop mid-epoch ended no epoch
            self._record_epoch_end(self.parser.epoch)
        self._score_samples(finished_before=None)
        steps = self._record_training_steps()
        log_artifact = self.artifacts.put_file(self.command.log_file) if self.command.log_file.exists() else None
        wall = time.monotonic() - self._started
        outcome = RunOutcome(
            status="succeeded", exit_code=exit_code, checkpoints=sorted(self._registered), training_steps=steps,
            wall_seconds=wall,
            first_step_seconds=(self._first_step_at - self._started) if self._first_step_at else None,
        )
        if self._cancel.is_set():
            outcome.status = "cancelled"
            outcome.error_summary = "stopped on request (Ctrl-C / SIGTERM / runs cancel)"
        elif exit_code != 0:
            outcome.status = "failed"
            outcome.error_summary = f"sd-scripts exited with {exit_code}:\n{self.parser.error_summary()}"
        elif not self._registered:
            outcome.status = "failed"
            outcome.error_summary = (
                "sd-scripts exited 0 but wrote no checkpoint (it does that when it finds no images):\n"
                + self.parser.error_summary()
            )
        self.store.update_run(self.run_id, log_uri=log_artifact.uri if log_artifact else None)
        if outcome.status == "cancelled" and self.store.get_run(self.run_id).status == "cancelled":
            self.store.update_run(self.run_id, exit_code=exit_code)  # `runs cancel` set the status already
        else:
            self.store.set_status(self.run_id, outcome.status, exit_code=exit_code,
                                  error_summary=outcome.error_summary)
        return outcome

    def _record_training_steps(self) -> int:
        scalars = tfevents.read_log_dir(self.command.logging_dir) if self.command.logging_dir.is_dir() else []
        by_step: dict[int, dict[str, float]] = {}
        wall: dict[int, float] = {}
        for scalar in scalars:
            by_step.setdefault(scalar.step, {})[scalar.tag] = scalar.value
            wall[scalar.step] = scalar.wall_time
        rows = []
        for step, values in sorted(by_step.items()):
            loss = values.get("loss/current")
            if loss is None and "loss/average" not in values:
                continue  # epoch-level series (logged with the epoch as step) are not per-step rows
            rows.append({
                "step": step, "loss": loss, "average_loss": values.get("loss/average"),
                "learning_rate": next((v for k, v in values.items() if k.startswith("lr/")), None),
                "wall_time": wall.get(step), "epoch": None,
            })
        if rows:
            self.store.record_training_steps(self.run_id, rows)
        return len(rows)


class OrphanGuard:
    """The watchdog process of one trainer (trainer_watchdog.py): it holds the read end of a pipe whose only writer is
    this process, and stops the trainer's process group when the pipe closes before :meth:`release` said the trainer
    ended, which is what the kernel does for us when this process dies, however it dies."""

    def __init__(self, process: subprocess.Popen[bytes], write_end: int) -> None:
        self._process = process
        self._write_end: int | None = write_end

    @classmethod
    def start(cls, grace_seconds: float) -> OrphanGuard | None:
        """Start the watchdog (before the trainer, so that the two are never apart for more than one write);
        None where it cannot start."""
        read_end, write_end = os.pipe()  # both ends non-inheritable: the trainer never holds the write end
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(WATCHDOG_SCRIPT), str(grace_seconds)],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's signals are for the orchestrator, not for its watchdog
            )
        except OSError:
            os.close(write_end)
            return None
        finally:
            os.close(read_end)
        return cls(process, write_end)

    def watch(self, process_group: int) -> None:
        self._write(f"{process_group}\n".encode())

    def release(self, *, trainer_ended: bool) -> None:
        """Close the pipe: with ``trainer_ended`` the watchdog just exits, else it stops the trainer."""
        if self._write_end is None:
            return
        if trainer_ended:
            self._write(b"done")
        os.close(self._write_end)
        self._write_end = None
        if trainer_ended:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # it exits on its own; the interpreter reaps it later

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._write_end, data)  # type: ignore[arg-type]
        except OSError:
            pass  # the watchdog is gone (killed by hand): the trainer runs on unguarded, as it did before


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
