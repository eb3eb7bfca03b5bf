"""Stops a trainer whose orchestrator died: run as its own small process beside the trainer.

The trainer runs in a process group of its own (so that cancelling stops every worker it forks), which also means
that when the orchestrator is killed outright (SIGKILL, the OOM killer) nothing stops it: it is re-parented and keeps
the GPU. This process is started by the orchestrator with the read end of a pipe on stdin whose only writer is the
orchestrator. It reads the trainer's process group id, then waits. The orchestrator writes ``done`` once the trainer
has ended; end of file without it means the orchestrator is gone, and the whole group gets SIGTERM, then SIGKILL
after a grace period. The run itself then ends ``lost`` by the heartbeat rule.

Standard library only, and started with ``python -I -S``: it must start fast and depend on nothing.

    python -I -S trainer_watchdog.py GRACE_SECONDS  < pipe
"""

import os
import signal
import sys
import time

DONE = b"done"


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to the group; False once the group has no process left."""
    try:
        os.killpg(group, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # the id now belongs to someone else's group: not ours to stop


def main(argv: list[str]) -> int:
    grace = float(argv[1])
    received = b""
    while chunk := os.read(0, 4096):
        received += chunk
    group_line, _, rest = received.partition(b"\n")
    if not group_line.strip().isdigit() or rest.strip() == DONE:
        return 0  # no trainer was started, or it ended while its orchestrator was there to see it
    group = int(group_line)
    if not _signal_group(group, signal.SIGTERM):
        return 0
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if not _signal_group(group, 0):
            return 0
    _signal_group(group, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the orchestrator, which cancels
    sys.exit(main(sys.argv))
