"""The single retry policy for both systems, built on tenacity.

Three parts, each testable alone:

- ``RetryPolicy``: frozen settings (attempts, waits, total deadline).
- ``should_retry``: a pure predicate over an error and whether the request is idempotent.
- ``call_with_retry``: one tenacity ``Retrying`` that honours ``Retry-After`` (seconds or an
  HTTP date), backs off exponentially with jitter otherwise, and takes an injected ``sleep`` so
  tests never wait.

What is retried: connection failures, timeouts, 429, 500, 502, 503 and 504. Never another 4xx. A
request that may already have been processed (a read timeout, a 5xx) is retried only when it is
idempotent: a read, a PATCH/PUT/DELETE by id, or a create that carries our own client-chosen id.
A 429 or a refused connection means the server did nothing, so even a plain create is retried.
500 is in the list although the foundation issue names only 502/503/504: proxies and both
servers answer passing faults with 500, and the one deterministic 500 we know (Creatio's
duplicate key) is classified as ``Conflict`` before this policy sees it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, TypeVar

import tenacity

from .errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request.

    Attributes:
        max_attempts: attempts in all, the first included.
        base_wait_s: first back-off; doubles each attempt.
        max_wait_s: cap on one wait, also on a server's Retry-After.
        total_s: give up when the next wait would pass this many seconds since the first attempt.
        jitter: the wait is multiplied by a random factor in ``[1 - jitter, 1]``.
    """

    max_attempts: int = 5
    base_wait_s: float = 0.5
    max_wait_s: float = 30.0
    total_s: float = 120.0
    jitter: float = 0.5


def should_retry(error: BaseException, *, idempotent: bool) -> bool:
    """Whether ``error`` deserves another attempt (pure).

    Args:
        error: what the attempt raised.
        idempotent: whether repeating the request cannot do harm.
    """
    if not isinstance(error, TransientError) or getattr(error, "exhausted", False):
        return False  # an error that already came out of a retry loop (a login's) is final here
    return idempotent or not error.maybe_processed


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_wait(policy: RetryPolicy, attempt: int, error: BaseException | None,
                 rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    A server's Retry-After wins (capped at ``max_wait_s``); otherwise exponential with jitter.
    """
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), policy.max_wait_s)
    raw = min(policy.base_wait_s * (2 ** (attempt - 1)), policy.max_wait_s)
    return raw * (1 - policy.jitter * rand())


def call_with_retry(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
    describe: str = "",
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or the policy's bounds are reached.

    Args:
        attempt: one try; raises a ``ConnectorError`` on failure.
        policy: the bounds.
        idempotent: see ``should_retry``.
        sleep: injected so tests do not wait.
        clock: monotonic seconds, for the total deadline.
        rand: jitter source in ``[0, 1)``.
        describe: a short label for log lines (method and route, never a URL with a query).

    Raises:
        The last error once no more attempts are allowed.
    """
    started = clock()

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return backoff_wait(policy, state.attempt_number, error, rand)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        error = state.outcome.exception() if state.outcome else None
        retries = getattr(error, "RETRIES", {}).get(getattr(error, "reason", None))
        if retries is not None and state.attempt_number > retries:
            return True
        next_wait = backoff_wait(policy, state.attempt_number, error, lambda: 0.0)
        return clock() - started + next_wait > policy.total_s

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info("retrying %s after attempt %d: %s (waiting %.2fs)", describe, state.attempt_number,
                 error, state.next_action.sleep if state.next_action else 0.0)

    retrying = tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception(lambda e: should_retry(e, idempotent=idempotent)),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientError as exc:
        # Retried as far as this loop allows: an outer loop (the request a login serves) must not
        # multiply the attempts.
        exc.exhausted = True
        raise
