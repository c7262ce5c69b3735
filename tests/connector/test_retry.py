"""The retry policy, tested without sleeping."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from connector import errors
from connector.retry import RetryPolicy, backoff_wait, call_with_retry, parse_retry_after, should_retry


@pytest.mark.parametrize(
    "error, idempotent, expected",
    [
        (errors.TransientError("read timeout", maybe_processed=True), True, True),
        (errors.TransientError("read timeout", maybe_processed=True), False, False),
        (errors.TransientError("refused", maybe_processed=False), False, True),
        (errors.RateLimited("slow down"), False, True),
        (errors.BadRequest("bad"), True, False),
        (errors.Conflict("dup", field="extension"), True, False),
        (errors.AuthError("no"), True, False),
        (errors.NotFound("gone"), True, False),
        (ValueError("not ours"), True, False),
    ],
)
def test_should_retry_truth_table(error, idempotent, expected):
    assert should_retry(error, idempotent=idempotent) is expected


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_backoff_exponential_with_jitter_and_retry_after_cap():
    policy = RetryPolicy(base_wait_s=1, max_wait_s=10, jitter=0.5)
    assert [backoff_wait(policy, n, None, lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert backoff_wait(policy, 2, None, lambda: 1.0) == 1.0  # full jitter halves the wait
    assert backoff_wait(policy, 1, errors.RateLimited("x", retry_after=3), lambda: 0.0) == 3
    assert backoff_wait(policy, 1, errors.RateLimited("x", retry_after=99), lambda: 0.0) == 10


def test_gives_up_after_max_attempts_and_reraises_last_error():
    slept, calls = [], []

    def attempt():
        calls.append(1)
        raise errors.TransientError(f"fail {len(calls)}")

    with pytest.raises(errors.TransientError, match="fail 3"):
        call_with_retry(attempt, policy=RetryPolicy(max_attempts=3, base_wait_s=1, jitter=0), idempotent=True,
                        sleep=slept.append)
    assert len(calls) == 3
    assert slept == [1, 2]


def test_total_deadline_stops_before_a_wait_that_would_pass_it():
    clock = iter([0.0, 0.0, 5.0, 9.5]).__next__
    slept = []

    def attempt():
        raise errors.RateLimited("busy", retry_after=4)

    with pytest.raises(errors.RateLimited):
        call_with_retry(attempt, policy=RetryPolicy(max_attempts=10, total_s=10), idempotent=False,
                        sleep=slept.append, clock=clock)
    assert slept == [4, 4]


def test_success_after_transient_failures_returns_value():
    outcomes = [errors.TransientError("503"), errors.RateLimited("429", retry_after=0), "done"]

    def attempt():
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(attempt, policy=RetryPolicy(), idempotent=True, sleep=lambda s: None) == "done"


def test_an_unreachable_server_is_retried_little_and_a_login_does_not_multiply_it():
    from connector.errors import Unreachable

    def failing(reason):
        calls = []

        def attempt():
            calls.append(1)
            raise Unreachable("nope", reason=reason, maybe_processed=False)
        return calls, attempt

    policy = RetryPolicy(max_attempts=5, base_wait_s=0, max_wait_s=0)
    for reason, attempts in (("refused", 3), ("dns", 3), ("tls", 1), ("timeout", 5)):
        calls, attempt = failing(reason)
        with pytest.raises(Unreachable):
            call_with_retry(attempt, policy=policy, idempotent=True, sleep=lambda s: None)
        assert len(calls) == attempts, reason
    # A login's own loop gave up: the request it served must not start the login's loop again.
    login_calls, login = failing("refused")
    outer = []

    def request():
        outer.append(1)
        call_with_retry(login, policy=policy, idempotent=True, sleep=lambda s: None)

    with pytest.raises(Unreachable):
        call_with_retry(request, policy=policy, idempotent=True, sleep=lambda s: None)
    assert (len(outer), len(login_calls)) == (1, 3)
