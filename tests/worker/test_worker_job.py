"""The body of a scheduled run, called directly: no scheduler, a real SQLite store, fake sync jobs.

The fakes record a run the way the real runners do (start_run ... finish_run), so these tests
check what the body adds: the lock, the skips, the failure record, backoff, metrics and logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading

import pytest

from connector.errors import TransientError
from connector.http import RequestCounter
from jobs.apply.engine import ApplyResult, Outcome
from jobs.config import load_config
from jobs.logs import JsonFormatter, _ContextFilter
from jobs.worker.metrics import Metrics
from jobs.plan import Action, Issue, Plan
from jobs.report import RunReport
from jobs.state import StateStore
from jobs.worker.job import JobContext, run_job
from jobs.worker.schedule import make_triggers

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Client:
    """Stands in for a connector client: only its request counter matters here."""

    def __init__(self) -> None:
        self.counter = RequestCounter()


class FakeJob:
    """A sync job that records its run like the runner does and then does what it is told."""

    def __init__(self, outcome: str = "in_sync", *, raises: BaseException | None = None) -> None:
        self.outcome = outcome
        self.raises = raises
        self.calls = 0
        self.seen_stop = None

    def __call__(self, config, *, webitel, creatio, store, clock, stop_requested, heartbeat, **_):
        self.calls += 1
        self.seen_stop = stop_requested
        run_id = store.start_run("users", dry_run=False, now=clock())
        webitel.counter.add("GET", "/users", 200)
        creatio.counter.add("POST", "$batch", 200)
        creatio.counter.add("GET", "Contact", 0)
        action = Action("create_contact", "Contact", "c1", "webitel_user:1")
        report = RunReport(run_id, "users", False, Plan("users", actions=(action,), conflicts=(
            Issue("duplicate_extension", "x"),) if self.outcome == "conflicts" else ()))
        report.applied = ApplyResult(outcomes=[Outcome(action, True)])
        try:
            if self.raises is not None:
                if isinstance(self.raises, TransientError):
                    report.failure = str(self.raises)
                raise self.raises
        finally:
            # As the real runner does, also when something unexpected escapes.
            store.finish_run(run_id, outcome=report.outcome, now=clock(), counts=report.counts(),
                             conflicts=len(report.plan.conflicts), errors=0,
                             report={"failure": report.failure} if report.failure else {})
        return report


@pytest.fixture
def store(tmp_path):
    with StateStore.open(tmp_path / "state.sqlite") as opened:
        yield opened


def make_context(store, job, clock, **schedule) -> JobContext:
    config = load_config(data={
        "webitel": {"url": "http://127.0.0.1:9/api", "token": "t0ken-value-1"},
        "creatio": {"url": "http://127.0.0.1:9", "username": "u", "password": "p4ssword-value"},
        "schedule": {"users": {"every_minutes": 1}, **schedule}})
    ctx = JobContext(config=config, store=store, webitel=Client(), creatio=Client(), metrics=Metrics(),
                     triggers=make_triggers(config), clock=clock, functions={"users": job})
    ctx.rescheduled = []
    ctx.reschedule = lambda name, when: ctx.rescheduled.append((name, when))
    return ctx


def sample(ctx: JobContext, name: str, **labels) -> float:
    value = ctx.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_run_is_recorded_counted_and_releases_the_lock(store):
    job, clock = FakeJob("conflicts"), Clock()
    ctx = make_context(store, job, clock)
    assert run_job("users", ctx) == "conflicts"
    [record] = store.recent_runs()
    assert record.outcome == "conflicts" and job.seen_stop == ctx.stop.is_set
    assert store.lock("sync").holder_info() is None
    assert sample(ctx, "wcsync_runs_total", job="users", outcome="conflicts") == 1
    assert sample(ctx, "wcsync_actions_total", job="users", kind="create_contact", result="applied") == 1
    assert sample(ctx, "wcsync_conflicts_total", job="users", kind="duplicate_extension") == 1
    assert sample(ctx, "wcsync_http_requests_total", system="webitel", status="200") == 1
    assert sample(ctx, "wcsync_http_requests_total", system="creatio", status="network_error") == 1
    assert sample(ctx, "wcsync_last_success_timestamp_seconds", job="users") == T0.timestamp()
    # Only the requests of the next run are added: the counters are cumulative per client.
    run_job("users", ctx)
    assert sample(ctx, "wcsync_http_requests_total", system="webitel", status="200") == 2


def test_a_taken_lock_skips_the_run_and_counts_a_lock_wait(store):
    job = FakeJob()
    ctx = make_context(store, job, Clock())
    other = store.lock("sync", holder="other-worker")
    assert other.acquire()
    assert run_job("users", ctx) == "skipped:lock"
    assert job.calls == 0 and store.recent_runs() == []
    assert sample(ctx, "wcsync_lock_waits_total", job="users") == 1
    other.release()
    assert run_job("users", ctx) == "in_sync" and job.calls == 1


def test_a_connector_failure_is_recorded_and_does_not_escape(store):
    ctx = make_context(store, FakeJob(raises=TransientError("webitel: GET /users answered 503")), Clock())
    assert run_job("users", ctx) == "failed"
    [record] = store.recent_runs()
    assert record.outcome == "failed" and "503" in record.report["failure"]
    assert sample(ctx, "wcsync_runs_total", job="users", outcome="failed") == 1
    assert sample(ctx, "wcsync_consecutive_failures", job="users") == 1
    assert store.lock("sync").holder_info() is None


def test_an_unexpected_exception_is_recorded_as_failed_not_as_what_ran_so_far(store):
    # The runner records unexpected exceptions with the outcome so far (here "in_sync"); the
    # worker corrects the record so that history and health say "failed", with the error.
    ctx = make_context(store, FakeJob(raises=KeyError("Name")), Clock())
    assert run_job("users", ctx) == "failed"
    [record] = store.recent_runs()
    assert record.outcome == "failed" and record.report["failure"] == "KeyError: 'Name'"


def test_failures_back_off_and_a_success_resets(store):
    job, clock = FakeJob(raises=TransientError("creatio: 503")), Clock()
    ctx = make_context(store, job, clock, backoff_after_failures=2, max_backoff_minutes=3)
    assert run_job("users", ctx) == "failed" and ctx.rescheduled == []
    clock.advance(60)
    assert run_job("users", ctx) == "failed"  # the second failure in a row: wait 2 intervals
    assert ctx.rescheduled == [("users", T0 + dt.timedelta(seconds=60 + 120))]
    clock.advance(60)
    assert run_job("users", ctx) == "skipped:backoff" and job.calls == 2
    assert sample(ctx, "wcsync_skipped_runs_total", job="users", reason="backoff") == 1
    clock.advance(60)
    assert run_job("users", ctx) == "failed"  # on time, fails again: 4 intervals, capped at 3 min
    assert ctx.rescheduled[-1] == ("users", clock.now + dt.timedelta(minutes=3))
    assert ctx.status("users").consecutive_failures == 3
    clock.advance(180)
    job.raises = None
    assert run_job("users", ctx) == "in_sync"
    status = ctx.status("users")
    assert status.consecutive_failures == 0 and status.backoff_until is None
    assert sample(ctx, "wcsync_consecutive_failures", job="users") == 0


def record_by_hand(store, outcome: str, when: dt.datetime, failure: str = "") -> None:
    """A run of ``run`` (the command line) in the shared history, as recorded_run leaves it."""
    run_id = store.start_run("users", dry_run=False, now=when)
    store.finish_run(run_id, outcome=outcome, now=when + dt.timedelta(seconds=5), counts={}, conflicts=0,
                     errors=0, report={"run_id": run_id, "job": "users", "outcome": outcome,
                                       **({"failure": failure} if failure else {})})


def test_the_workers_runs_are_marked_as_its_own(store):
    # However the run was recorded: by the runner, corrected after a bug, or by the worker alone.
    def unreachable(config, **_):
        raise TransientError("webitel: connection refused")

    clock = Clock()
    ctx = make_context(store, unreachable, clock)
    jobs = (FakeJob(raises=TransientError("creatio: 503")), FakeJob(raises=KeyError("Name")), unreachable)
    for job in jobs:
        ctx.functions = {"users": job}
        assert run_job("users", ctx) == "failed"
        clock.advance(60)
    assert [r.report["started_by"] for r in store.recent_runs()] == ["serve"] * 3


def test_failed_runs_by_hand_do_not_back_the_worker_off(store):
    clock = Clock()
    for minutes in range(5, 0, -1):
        record_by_hand(store, "failed", T0 - dt.timedelta(minutes=minutes), "creatio: 401")
    job = FakeJob()
    ctx = make_context(store, job, clock, backoff_after_failures=2)
    assert ctx.status("users").consecutive_failures == 0
    assert run_job("users", ctx) == "in_sync" and job.calls == 1 and ctx.rescheduled == []
    assert sample(ctx, "wcsync_skipped_runs_total", job="users", reason="backoff") == 0


def test_a_successful_run_by_hand_ends_the_workers_backoff(store):
    job, clock = FakeJob(raises=TransientError("creatio: 503")), Clock()
    ctx = make_context(store, job, clock, backoff_after_failures=2, max_backoff_minutes=10)
    run_job("users", ctx)
    clock.advance(60)
    run_job("users", ctx)
    assert ctx.status("users").in_backoff(clock.now + dt.timedelta(seconds=60))
    record_by_hand(store, "failed", clock.now + dt.timedelta(seconds=10), "creatio: 503")
    assert ctx.status("users").consecutive_failures == 2  # a failure by hand changes nothing
    record_by_hand(store, "in_sync", clock.now + dt.timedelta(seconds=30))
    clock.advance(60)
    status = ctx.status("users")
    assert status.consecutive_failures == 0 and not status.in_backoff(clock.now)
    job.raises = None
    assert run_job("users", ctx) == "in_sync" and job.calls == 3
    assert sample(ctx, "wcsync_consecutive_failures", job="users") == 0


def test_a_stopping_worker_starts_nothing(store):
    job = FakeJob()
    ctx = make_context(store, job, Clock())
    ctx.stop.set()
    assert run_job("users", ctx) == "skipped:stopping" and job.calls == 0


def test_a_dead_workers_running_record_is_marked_interrupted(store):
    store.start_run("users", dry_run=False, now=T0 - dt.timedelta(minutes=5))  # its process died
    ctx = make_context(store, FakeJob(), Clock())
    run_job("users", ctx)
    assert [r.outcome for r in store.recent_runs()] == ["in_sync", "interrupted"]


def test_the_lease_is_renewed_while_a_long_run_goes_on(store):
    # A run longer than the lease must keep the lock: the keeper renews it every lease/3.
    release = threading.Event()
    expiries = []

    def slow(config, *, store, clock, heartbeat, **_):
        run_id = store.start_run("users", dry_run=False, now=clock())
        lock = store.lock("sync")
        first = lock.holder_info()["expires_at"]
        release.wait(4)
        expiries.extend([first, lock.holder_info()["expires_at"]])
        assert heartbeat()
        store.finish_run(run_id, outcome="in_sync", now=clock(), counts={}, conflicts=0, errors=0)
        return RunReport(run_id, "users", False, Plan("users"))

    # The lease is judged by the context's clock: here the real one, since the keeper renews on a timer.
    ctx = make_context(store, slow, lambda: dt.datetime.now(dt.timezone.utc))
    ctx.config.serve.lock_lease_s = 5  # renewed every 1.7 s
    threading.Timer(2.2, release.set).start()
    assert run_job("users", ctx) == "in_sync"
    assert expiries[1] > expiries[0]


def test_run_lines_carry_run_id_and_job(store, caplog):
    ctx = make_context(store, FakeJob("conflicts"), Clock())
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter())
    caplog.handler.addFilter(_ContextFilter())
    with caplog.at_level(logging.INFO, logger="wcsync.worker"):
        run_job("users", ctx)
    [summary] = [r for r in caplog.records if "in " in r.getMessage() and r.name == "wcsync.worker"]
    line = json.loads(handler.format(summary))
    [record] = store.recent_runs()
    assert line["run_id"] == record.run_id and line["job"] == "users" and line["outcome"] == "conflicts"
    assert line["counts"]["create_contact"] == 1 and line["duration_s"] >= 0
    assert "users: conflicts in" in line["message"] and "1 conflicts" in line["message"]


def test_a_failure_before_the_run_started_is_still_recorded(store):
    def unreachable(config, **_):
        raise TransientError("webitel: connection refused")

    ctx = make_context(store, unreachable, Clock())
    assert run_job("users", ctx) == "failed"
    [record] = store.recent_runs()
    assert record.outcome == "failed" and record.report["failure"] == "webitel: connection refused"


def test_the_days_requests_and_the_budget_are_gauges():
    metrics = Metrics()
    metrics.set_requests_today({"webitel": 3, "creatio": 41}, {"creatio": None})
    assert metrics.registry.get_sample_value("wcsync_requests_today", {"system": "creatio"}) == 41
    assert metrics.registry.get_sample_value("wcsync_daily_request_budget", {"system": "creatio"}) is None
    metrics.set_requests_today({"creatio": 42}, {"creatio": 5000})
    assert metrics.registry.get_sample_value("wcsync_requests_today", {"system": "creatio"}) == 42
    assert metrics.registry.get_sample_value("wcsync_daily_request_budget", {"system": "creatio"}) == 5000
