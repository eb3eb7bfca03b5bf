"""What a user does to a recorded run, whatever launched it: cancel it (requeue is TrackingStore.requeue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.tracking.entities import RunRecord

# the statuses a cancel can still stop
CANCELLABLE = ("planned", "queued", "running")


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
