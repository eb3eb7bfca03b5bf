"""What a user does to a recorded run, whatever launched it: cancel it, follow it, send it back to work."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.tracking.entities import RunEvent, RunRecord

# the statuses a cancel can still stop
CANCELLABLE = ("planned", "queued", "running")
ENDED = ("succeeded", "failed", "cancelled", "lost")


def cancel_run(store, run_ref: str) -> RunRecord:
    """Cancel a run (by id, prefix or name) and return it as recorded after.

    The process training it sees the status at its next heartbeat and stops the trainer; a RunPod run's pod is
    terminated here and its cost recorded. A run that has already ended is returned unchanged.
    """
    run = store.get_run(run_ref)
    if run.remote_kind == "runpod" and run.remote_id:
        from orchestrator.executors.runpod import cancel_runpod_run  # only RunPod runs need its client

        run = cancel_runpod_run(store, run)
    if run.status in CANCELLABLE:
        run = store.set_status(run.id, "cancelled", message="cancelled by `runs cancel`")
    return run


@dataclass(frozen=True)
class Followed:
    run: RunRecord
    timed_out: bool


def follow_run(store, run_ref: str, *, on_event: Callable[[RunEvent], None],
               on_lost: Callable[[str, float], None] | None = None, interval: float = 2.0,
               timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep, now: Callable[[], datetime] | None = None) -> Followed:
    """Follow a run from the database until it ends (or ``timeout`` s pass): each new event goes to ``on_event``.

    A run whose worker stopped beating is marked lost by the same rule as `runs list` (and so ends the follow).
    ``clock``/``sleep``/``now`` are the time sources (tests pass their own instead of waiting).
    """
    from orchestrator.executors.liveness import mark_stale_runs_lost

    deadline = clock() + timeout if timeout else None
    last = 0
    run = store.get_run(run_ref)
    while True:
        mark_stale_runs_lost(store, on_lost=on_lost, now=now() if now else None)
        for event in store.events(run.id, after_id=last):
            last = event.id
            on_event(event)
        run = store.get_run(run.id)
        if run.status in ENDED:
            return Followed(run, timed_out=False)
        if deadline is not None and clock() > deadline:
            return Followed(run, timed_out=True)
        sleep(interval)


def original_target(store, run: RunRecord) -> str:
    """Where a run was sent: ``ssh://…`` (its host), ``runpod`` or ``queue[:NAME]``."""
    if run.remote_kind == "ssh" and run.remote_id:
        return run.remote_id
    if run.remote_kind == "runpod":
        return "runpod"
    return f"queue:{run.queue}" if run.queue else "queue"


def _last_remote_event(store, run_id: str, action: str) -> dict:
    for event in reversed(store.events(run_id, kind="remote")):
        if (event.data or {}).get("action") == action:
            return dict(event.data)
    return {}


def requeue_run(store, run_ref: str, *, on: str | None = None, database_url: str | None = None,
                store_uri: str | None = None, ssh_options: Sequence[str] = (), accept_new_host_key: bool = False,
                claim_timeout: float | None = None, on_line: Callable[[str], None] | None = None,
                environ: Mapping[str, str] = os.environ) -> RunRecord:
    """Put a lost, failed or cancelled run back to work as a new attempt, on ``on`` or where it ran before.

    ``ssh://…``: the host is checked, then a worker is started there again (with the remote orchestrator,
    sd-scripts and Python of the run's last SSH launch; ``ssh_options`` are not recorded and are given again).
    ``runpod``: a pod is created again (the GPU type, image and cloud of its last pod). ``queue[:NAME]``: it waits
    for `orchestrator worker`. Returns the run as recorded then.
    """
    from orchestrator.errors import InputError

    run = store.get_run(run_ref)
    if run.status not in ("lost", "failed", "cancelled"):
        store.requeue(run.id)  # refuses with the reason
    target = on or original_target(store, run)
    if target.startswith("ssh:"):
        from orchestrator.executors.ssh import CLAIM_TIMEOUT_SECONDS, SshLauncher, parse_target, start_over_ssh

        before = _last_remote_event(store, run.id, "ssh_started")
        launcher = SshLauncher(parse_target(target), options=ssh_options,
                               remote_orchestrator=before.get("remote_orchestrator") or "orchestrator",
                               accept_new_host_key=accept_new_host_key)
        return start_over_ssh(store, lambda: store.requeue(run.id), launcher, database_url=database_url,
                              store_uri=store_uri, remote_sd_scripts=before.get("remote_sd_scripts"),
                              remote_sd_scripts_python=before.get("remote_sd_scripts_python"),
                              claim_timeout=claim_timeout or CLAIM_TIMEOUT_SECONDS, on_line=on_line,
                              environ=environ)
    if target == "runpod":
        from orchestrator.executors.runpod import check_runpod_launch, launch_on_runpod

        check_runpod_launch(database_url, store_uri, environ)
        before = _last_remote_event(store, run.id, "created")
        queued = store.requeue(run.id)
        settings = {k: before[k] for k in ("gpu_type", "image", "cloud_type", "disk_gb") if before.get(k)}
        if "gpu_type" not in settings and run.gpu_type:
            settings["gpu_type"] = run.gpu_type
        missing = [k for k in ("gpu_type", "image") if k not in settings]
        if missing:
            raise InputError(f"run {run.id} has no recorded RunPod {' and '.join(missing)}",
                             "launch the spec again with `orchestrator launch SPEC --on runpod --gpu … --image …`")
        return launch_on_runpod(store, queued, environ=environ, wait=False, database_url=database_url,
                                store_uri=store_uri, on_status=on_line, **settings)
    kind, _, queue = target.partition(":")
    if kind != "queue":
        raise InputError(f"--on {target!r} is not a target a run can be requeued on",
                         "use queue[:NAME], ssh://USER@HOST[:PORT] or runpod")
    queued = store.requeue(run.id)
    if queue or run.remote_kind:
        queued = store.update_run(run.id, queue=queue or None, remote_kind=None, remote_id=None)
    return queued
