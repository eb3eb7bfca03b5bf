"""Progress of one transfer: a caller's callback, or a rich progress bar on stderr when stderr is a terminal.

Backends report ``(done_bytes, total_bytes)``; ``total_bytes`` may be ``None`` until the backend knows the size.
Reports are monotonic and thread-safe (multipart transfers report from several threads).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressCallback = Callable[[int, "int | None"], None]


class Reporter:
    """What backends call: ``report(done, total)`` or ``report.advance(n)``."""

    def __init__(self, sink: ProgressCallback | None, total: int | None) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self.done = 0
        self.total = total

    def __call__(self, done: int, total: int | None = None) -> None:
        with self._lock:
            if total is not None:
                self.total = total
            self.done = done
            done_now, total_now = self.done, self.total
        if self._sink is not None:
            self._sink(done_now, total_now)

    def advance(self, amount: int) -> None:
        with self._lock:
            self.done += amount
            done_now, total_now = self.done, self.total
        if self._sink is not None:
            self._sink(done_now, total_now)

    def restart(self) -> None:
        """A transfer starting over (a retried download): the bar goes back to zero."""
        with self._lock:
            self.done = 0
            total_now = self.total
        if self._sink is not None:
            self._sink(0, total_now)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def transfer_progress(description: str, total: int | None, callback: ProgressCallback | None) -> Iterator[Reporter]:
    """A reporter for one transfer: to ``callback`` when given, else a rich bar when stderr is a terminal."""
    if callback is not None or not _stderr_is_terminal():
        yield Reporter(callback, total)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_now: int | None) -> None:
            bar.update(task, completed=done, total=total_now)

        yield Reporter(update, total)
