"""The body of one scheduled run: lock, run the sync job, record, count, log. Never raises.

``run_job(name, context)`` is a plain function: the scheduler calls it, and so do the tests,
without any scheduler. The run lock, its lease and the marking of stale runs are the cycle's
(``jobs.sync.cycle.held_run_lock``, the same path as ``run``); the worker adds the backoff, the
stop flag passed down and the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from apscheduler.triggers.base import BaseTrigger

from connector.errors import LockBusy, SyncError

from jobs.config import AppConfig
from jobs.logs import bind_run, unbind_run
from jobs.worker.metrics import Metrics, counter_delta
from jobs.state.lease import LeaseKeeper
from jobs.sync.cycle import held_run_lock
from jobs.sync.recording import utcnow
from jobs.worker.schedule import SYNC_JOBS, interval_s
from jobs.worker.status import STARTED_BY, WORKER, BackoffPolicy, JobStatus, job_status

log = logging.getLogger("wcsync.worker")
HISTORY_WINDOW = 50  # runs read to judge a job; backoff is capped long before 50 failures


@dataclass
class JobContext:
    """What every run of the worker shares: config, clients, store, metrics and the stop flag.

    Attributes:
        reschedule: Asks the scheduler to make a job's next attempt at a given time (backoff).
        functions: The sync job functions by name (``SYNC_JOBS``; tests substitute their own).
    """

    config: AppConfig
    store: Any
    webitel: Any
    creatio: Any
    metrics: Metrics
    triggers: Mapping[str, BaseTrigger]
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utcnow
    reschedule: Callable[[str, datetime], None] = lambda job, at: None
    functions: Mapping[str, Callable] = field(default_factory=lambda: dict(SYNC_JOBS))

    @property
    def policy(self) -> BackoffPolicy:
        s = self.config.schedule
        return BackoffPolicy(after_failures=s.backoff_after_failures, max_s=s.max_backoff_minutes * 60)

    def status(self, job: str, now: datetime | None = None) -> JobStatus:
        """The job's standing from the shared run history (failures by hand left out, see ``status``)."""
        now = now or self.clock()
        runs = self.store.recent_runs(HISTORY_WINDOW, job=job)
        return job_status(job, runs, interval_s=interval_s(self.triggers[job], now), policy=self.policy)


class _RunTracker:
    """The state store as the sync job sees it, remembering the id of the run it starts.

    It also marks the run's record as the worker's (``status.STARTED_BY`` in its report): the
    mark is what tells the worker's failures, which back it off, from failures of runs by hand.
    """

    def __init__(self, store) -> None:
        self._store = store
        self.run_id: str | None = None

    def start_run(self, *args: Any, **kwargs: Any) -> str:
        self.run_id = self._store.start_run(*args, **kwargs)
        return self.run_id

    def finish_run(self, run_id: str, *, report: dict | None = None, **kwargs: Any) -> None:
        self._store.finish_run(run_id, report={**(report or {}), STARTED_BY: WORKER}, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run_job(name: str, ctx: JobContext) -> str:
    """Run sync job ``name`` once, unless stopping, backing off or locked out.

    Returns:
        The run's outcome (``in_sync``, ``conflicts``, ``failed``...) or ``skipped:<reason>``.
    """
    token = bind_run("", name)
    try:
        if ctx.stop.is_set():
            ctx.metrics.skipped.labels(name, "stopping").inc()
            return "skipped:stopping"
        return _run_guarded(name, ctx)
    except Exception:  # the store itself failed (reading history, the lock): nothing recorded
        log.exception("%s: the run could not be started or recorded", name)
        ctx.metrics.runs.labels(name, "failed").inc()
        return "failed"
    finally:
        unbind_run(token)


def _run_guarded(name: str, ctx: JobContext) -> str:
    now = ctx.clock()
    status = ctx.status(name, now)
    if status.in_backoff(now):
        log.info("%s: backing off after %d failed runs in a row; next attempt at %s", name,
                 status.consecutive_failures, f"{status.backoff_until:%Y-%m-%d %H:%M:%S %Z}")
        ctx.metrics.skipped.labels(name, "backoff").inc()
        ctx.reschedule(name, status.backoff_until)
        return "skipped:backoff"
    try:
        with held_run_lock(ctx.store, ctx.config, job=name, clock=ctx.clock) as keeper:
            outcome = _run_locked(name, ctx, keeper)
    except LockBusy as busy:
        holder = busy.holder or {}
        log.info("%s: skipped, another run holds the run lock (%s on host %s, since %s)", name,
                 holder.get("holder", "?"), holder.get("host", "?"), holder.get("acquired_at", "?"))
        ctx.metrics.lock_waits.labels(name).inc()
        ctx.metrics.skipped.labels(name, "lock").inc()
        return "skipped:lock"
    _after_run(name, ctx)
    return outcome


def _run_locked(name: str, ctx: JobContext, keeper: LeaseKeeper) -> str:
    tracker = _RunTracker(ctx.store)
    before = {system: client.counter.snapshot() for system, client in _clients(ctx)}
    started = time.monotonic()
    report, error = None, None
    try:
        report = ctx.functions[name](ctx.config, webitel=ctx.webitel, creatio=ctx.creatio, store=tracker,
                                     clock=ctx.clock, stop_requested=ctx.stop.is_set, heartbeat=keeper.held)
    except SyncError as exc:  # expected: the runner recorded the failed run
        error = exc
        if tracker.run_id is None:  # ... unless it failed before it could start one
            tracker.run_id = _record_failure(ctx, name, None, exc)
    except Exception as exc:  # a bug: make sure history says "failed", with the error, not what ran so far
        error = exc
        tracker.run_id = _record_failure(ctx, name, tracker.run_id, exc)
    duration = time.monotonic() - started
    for system, client in _clients(ctx):
        ctx.metrics.record_requests(system, counter_delta(before[system], client.counter.snapshot()))
    if report is None:
        expected = isinstance(error, SyncError)
        token = bind_run(tracker.run_id or "", name)
        try:
            # A traceback only for the unexpected: an unreachable server needs no stack to explain.
            log.error("%s: failed after %.1f s: %s", name, duration, error, exc_info=not expected,
                      extra={"fields": {"outcome": "failed", "duration_s": round(duration, 3)}})
        finally:
            unbind_run(token)
        ctx.metrics.record_run(name, outcome="failed", duration_s=duration, actions={}, conflicts={})
        return "failed"
    _log_summary(report, duration)
    ctx.metrics.record_run(name, outcome=report.outcome, duration_s=duration, actions=_action_counts(report),
                           conflicts=_conflict_counts(report))
    return report.outcome


def _after_run(name: str, ctx: JobContext) -> None:
    """Update the gauges and, when the job is failing, space out its next attempt."""
    now = ctx.clock()
    status = ctx.status(name, now)
    ctx.metrics.set_standing(name, failures=status.consecutive_failures, last_success=status.last_success_at)
    if status.backoff_until is not None and status.backoff_until > now:
        log.warning("%s: %d failed runs in a row; next attempt not before %s (backoff %s)", name,
                    status.consecutive_failures, f"{status.backoff_until:%Y-%m-%d %H:%M:%S %Z}",
                    timedelta(seconds=round(status.backoff_s)))
        ctx.reschedule(name, status.backoff_until)


def _record_failure(ctx: JobContext, name: str, run_id: str | None, exc: BaseException) -> str | None:
    """Record run ``run_id`` (a new one if None) as failed with ``exc``; returns its id."""
    # The runner's own wording for connector failures; the exception's type for anything else.
    failure = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
    now = ctx.clock()
    try:
        run_id = run_id or ctx.store.start_run(name, dry_run=False, now=now)
        ctx.store.finish_run(run_id, outcome="failed", now=now, counts={}, conflicts=0, errors=1,
                             report={"run_id": run_id, "job": name, "outcome": "failed", "failure": failure,
                                     STARTED_BY: WORKER})
    except Exception:
        log.exception("%s: could not record the failed run", name)
    return run_id


def _clients(ctx: JobContext) -> list[tuple[str, Any]]:
    return [(system, client) for system, client in (("webitel", ctx.webitel), ("creatio", ctx.creatio))
            if hasattr(client, "counter")]


def _action_counts(report) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for outcome in report.applied.outcomes if report.applied else ():
        key = (outcome.action.kind, "applied" if outcome.ok else "failed")
        counts[key] = counts.get(key, 0) + 1
    return counts


def _conflict_counts(report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issue in report.plan.conflicts:
        counts[issue.kind] = counts.get(issue.kind, 0) + 1
    return counts


def summary_text(counts: Mapping[str, int]) -> str:
    """The counts of a run in words: changes by kind, what was written, what is left for an admin."""
    meta = ("applied", "failed", "planned", "conflicts", "warnings", "errors")
    kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items()) if n and k not in meta)
    parts = [f"changes: {kinds}" if kinds else "nothing to change"]
    if "applied" in counts:
        parts.append(f"written {counts['applied']}, failed {counts.get('failed', 0)}")
    parts += [f"{counts[k]} {k}" for k in ("conflicts", "errors", "warnings") if counts.get(k)]
    return "; ".join(parts)


def _log_summary(report, duration: float) -> None:
    """One line per run: outcome, counts, duration (JSON fields as well under ``--log-format json``)."""
    counts = report.counts()
    level = logging.INFO if report.outcome in ("in_sync", "conflicts") else logging.WARNING
    token = bind_run(report.run_id, report.job)
    try:
        log.log(level, "%s: %s in %.1f s; %s", report.job, report.outcome.replace("_", " "), duration,
                summary_text(counts),
                extra={"fields": {"outcome": report.outcome, "counts": counts,
                                  "duration_s": round(duration, 3)}})
    finally:
        unbind_run(token)
