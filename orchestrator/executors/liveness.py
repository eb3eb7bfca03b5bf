"""Runs whose orchestrator died: they stop beating, and the next command that looks at runs marks them lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from orchestrator.executors.local import HEARTBEAT_SECONDS

# several missed beats, so a busy machine's late heartbeat is not taken for a dead process
STALE_AFTER_SECONDS = HEARTBEAT_SECONDS * 6


def mark_stale_runs_lost(store, on_lost: Callable[[str, float], None] | None = None, *,
                         now: datetime | None = None) -> list[str]:
    """Mark lost every running run without a heartbeat for STALE_AFTER_SECONDS; returns their ids.

    ``on_lost(run_id, silent_seconds)`` is called for each, e.g. to tell the user. ``now``: the time to judge by
    (default: now; tests pass a later time instead of waiting).
    """
    lost = store.mark_lost(timedelta(seconds=STALE_AFTER_SECONDS), now=now)
    for run_id in lost:
        if on_lost:
            on_lost(run_id, STALE_AFTER_SECONDS)
    return list(lost)
