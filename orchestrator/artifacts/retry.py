"""Retries with exponential backoff and full jitter, bounded in attempts and in total time.

Only transient failures are retried: timeouts, dropped connections and HTTP 5xx, plus 408 and 429. Any other 4xx is
the caller's mistake (bad credentials, a missing object, a size limit) and retrying it only delays the error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


def is_retryable_status(status: int | None) -> bool:
    """HTTP statuses worth another try: 5xx, 408 Request Timeout and 429 Too Many Requests."""
    return status is not None and (status >= 500 or status in RETRYABLE_CLIENT_STATUSES)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, sleeping up to ``base_delay * 2**n`` (capped) between them."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 15.0
    deadline: float = 300.0  # seconds from the first attempt after which no new attempt starts

    def delay(self, failures: int) -> float:
        """Full jitter: a uniform pick in [0, min(max_delay, base_delay * 2**(failures-1))]."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (failures - 1)))


DEFAULT_POLICY = RetryPolicy()


def default_policy() -> RetryPolicy:
    """The policy stores use when given none (tests swap ``DEFAULT_POLICY`` for a fast one)."""
    return DEFAULT_POLICY


def call_with_retries(
    action: Callable[[], T],
    *,
    retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    on_retry: Callable[[BaseException, int], None] | None = None,
    progressed: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action`` until it succeeds, fails for good, or the policy's attempts or deadline run out.

    ``progressed()``, when given, says whether the failed attempt moved the transfer forward (a resumable upload
    that sent chunks before failing); then the count of attempts and the deadline start again, so a long transfer
    over a flaky link is bounded per stretch without progress, not in total.
    """
    started = time.monotonic()
    failures = 0
    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - classified just below; the rest re-raised unchanged
            if progressed is not None and progressed():
                failures, started = 0, time.monotonic()
            failures += 1
            if not retryable(error) or failures >= policy.attempts:
                raise
            pause = policy.delay(failures)
            if time.monotonic() - started + pause > policy.deadline:
                raise
            if on_retry is not None:
                on_retry(error, failures)
            sleep(pause)
