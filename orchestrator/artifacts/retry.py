"""Retries with exponential backoff and full jitter within a retry budget (``ORCHESTRATOR_RETRY_SECONDS``,
default 60 s), so a server that restarts within the budget is waited for, and one that stays down is given up on
when the budget ends.

Only transient failures are retried: timeouts, dropped connections and HTTP 5xx, plus 408 and 429. Any other 4xx is
the caller's mistake (bad credentials, a missing object, a size limit) and retrying it only delays the error.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from orchestrator.errors import OrchestratorError

T = TypeVar("T")
RETRY_SECONDS_ENV = "ORCHESTRATOR_RETRY_SECONDS"
DEFAULT_BUDGET_SECONDS = 60.0

RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


def is_retryable_status(status: int | None) -> bool:
    """HTTP statuses worth another try: 5xx, 408 Request Timeout and 429 Too Many Requests."""
    return status is not None and (status >= 500 or status in RETRYABLE_CLIENT_STATUSES)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: for ``deadline`` seconds from the first attempt (the retry budget; at most ``attempts``
    attempts when set), sleeping up to ``base_delay * 2**n`` (capped) between them. The last pause is cut to what
    is left of the budget, so a server that stays unreachable is given up on after the budget, not at a random
    moment before it. ``notify`` gets one line per wait (the default prints it on stderr); ``clock`` and ``sleep``
    are the time the policy runs on (tests pass their own)."""

    attempts: int | None = None
    base_delay: float = 0.5
    max_delay: float = 5.0
    deadline: float = DEFAULT_BUDGET_SECONDS
    notify: Callable[[str], None] | None = field(default=_to_stderr, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, failures: int) -> float:
        """Full jitter: a uniform pick in [0, min(max_delay, base_delay * 2**(failures-1))]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (failures - 1)))

    def next_pause(self, failures: int, elapsed: float) -> float | None:
        """The pause before the next attempt after ``failures`` failed ones, ``elapsed`` seconds into the budget;
        None when no attempt is left."""
        if self.attempts is not None and failures >= self.attempts:
            return None
        left = self.deadline - elapsed
        if left <= 0:
            return None
        return min(self.delay(failures), left)


DEFAULT_POLICY: RetryPolicy | None = None  # tests swap in a fast one


def budget_from_env() -> float:
    """The retry budget in seconds: ``ORCHESTRATOR_RETRY_SECONDS``, else 60."""
    raw = os.environ.get(RETRY_SECONDS_ENV)
    if not raw:
        return DEFAULT_BUDGET_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise OrchestratorError(f"{RETRY_SECONDS_ENV}={raw!r} is not a number of seconds",
                                "set it to how long a store keeps retrying a failing server, e.g. 60 (0: no retry)")
    return seconds


def default_policy() -> RetryPolicy:
    """The policy stores use when given none: the budget from the environment."""
    return DEFAULT_POLICY if DEFAULT_POLICY is not None else RetryPolicy(deadline=budget_from_env())


def call_with_retries(
    action: Callable[[], T],
    *,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    on_retry: Callable[[BaseException, float, float], None] | None = None,
    progressed: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``action`` until it succeeds, fails for good, or the policy's budget (or attempts) runs out.

    ``on_retry(error, pause, seconds_left)`` is called before each pause. ``progressed()``, when given, says whether
    the failed attempt moved the transfer forward (a resumable upload that sent chunks before failing); then the
    count of attempts and the budget start again, so a long transfer over a flaky link is bounded per stretch
    without progress, not in total.
    """
    clock, sleep = policy.clock, sleep or policy.sleep
    started = clock()
    failures = 0
    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - classified just below; the rest re-raised unchanged
            if progressed is not None and progressed():
                failures, started = 0, clock()
            failures += 1
            if not retryable(error):
                raise
            elapsed = clock() - started
            pause = policy.next_pause(failures, elapsed)
            if pause is None:
                raise
            if on_retry is not None:
                on_retry(error, pause, policy.deadline - elapsed)
            sleep(pause)


def retry_line(store: str, reason: str, seconds_left: float) -> str:
    """The line shown while a store waits to try again."""
    return f"{store}: {reason}; trying again for up to {max(seconds_left, 0):.0f} s more"
