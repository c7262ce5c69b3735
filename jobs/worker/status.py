"""A job's standing, derived from the shared run history: last outcome, failures in a row, backoff.

Pure functions over ``RunRecord`` lists (newest first) and an explicit ``now``. Working from the
state store's history rather than from one process's memory means that every worker sharing a
configuration agrees: a run made by another worker (or by ``run``) counts, and a restart does not
forget a failing streak.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from jobs.state import RunRecord

# Outcomes of a run that did its job (conflicts are left for an administrator, not a fault).
SUCCESS = frozenset({"in_sync", "conflicts"})
# Outcomes that count towards backoff; a tripped guard stays tripped until someone acts.
FAILURE = frozenset({"failed", "guard_tripped"})
# A run stopped by a shutdown or a lost lock says nothing about the job's health, and a run still
# going has no outcome yet: both are passed over.
NEUTRAL = frozenset({"interrupted", "running"})


@dataclass(frozen=True)
class BackoffPolicy:
    """When a failing job's attempts are spaced out.

    Attributes:
        after_failures: Failures in a row before backoff starts.
        max_s: The longest gap between attempts.
    """

    after_failures: int = 3
    max_s: float = 3600.0

    def delay_s(self, failures: int, interval_s: float) -> float:
        """The wait after the latest failure before the next attempt, or 0 for "on schedule".

        The ``after_failures``-th failure in a row doubles the job's interval, each further one
        doubles it again, up to ``max_s``; never shorter than the schedule itself would wait.
        """
        if failures < self.after_failures:
            return 0.0
        exponent = min(failures - self.after_failures + 1, 32)  # 2**32 intervals is past any cap
        return max(min(interval_s * 2 ** exponent, self.max_s), 0.0)


@dataclass(frozen=True)
class JobStatus:
    """Where one job stands.

    Attributes:
        job: The job's name.
        last_outcome: Outcome of the latest run that ended (interrupted runs passed over).
        last_run_at: When that run started.
        last_success_at: When the latest successful run finished.
        last_error: The failure message of the latest run, if it failed.
        consecutive_failures: Failed runs since the latest success.
        running_since: Start of a run still going, if any.
        backoff_s: The current backoff delay (0: on schedule).
        backoff_until: No attempt before this time (None: on schedule).
    """

    job: str
    last_outcome: str | None = None
    last_run_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_error: str = ""
    consecutive_failures: int = 0
    running_since: dt.datetime | None = None
    backoff_s: float = 0.0
    backoff_until: dt.datetime | None = None

    def in_backoff(self, now: dt.datetime, *, slack_s: float = 1.0) -> bool:
        """Whether an attempt at ``now`` would come too early (``slack_s`` absorbs timer jitter)."""
        return self.backoff_until is not None and now < self.backoff_until - dt.timedelta(seconds=slack_s)


def job_status(job: str, runs: Sequence[RunRecord], *, interval_s: float,
               policy: BackoffPolicy) -> JobStatus:
    """Summarise a job's recent runs (newest first; dry runs and other jobs are ignored).

    The backoff is counted from the *start* of the latest failure, so an interval-triggered
    attempt exactly ``2**k`` intervals later is on time however long the failing run took.
    """
    mine = [r for r in runs if r.job == job and not r.dry_run]
    running = next((r.started_at for r in mine if r.outcome == "running"), None)
    ended = [r for r in mine if r.outcome not in NEUTRAL]
    failures = 0
    for run in ended:
        if run.outcome in SUCCESS:
            break
        if run.outcome in FAILURE:
            failures += 1
    success = next((r for r in ended if r.outcome in SUCCESS), None)
    last = ended[0] if ended else None
    delay = policy.delay_s(failures, interval_s)
    return JobStatus(
        job=job, last_outcome=last.outcome if last else None, last_run_at=last.started_at if last else None,
        last_success_at=(success.finished_at or success.started_at) if success else None,
        last_error=_failure_text(last) if last is not None and last.outcome in FAILURE else "",
        consecutive_failures=failures, running_since=running, backoff_s=delay,
        backoff_until=(ended[0].started_at + dt.timedelta(seconds=delay)) if delay else None)


def health(status: JobStatus, *, now: dt.datetime, interval_s: float, worker_started_at: dt.datetime,
           next_attempt: dt.datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether a job is healthy, and a JSON-ready explanation.

    Healthy: the latest run that ended succeeded (or ended with conflicts), and the latest success
    is no older than twice the job's interval. A worker that just started gets the same window to
    make its first run, so a fresh deployment is not reported unhealthy before it could run.
    """
    window = dt.timedelta(seconds=2 * interval_s) if interval_s != float("inf") else None
    since = max(filter(None, (status.last_success_at, worker_started_at)))
    fresh = window is None or now - since <= window
    if status.last_outcome is not None and status.last_outcome not in SUCCESS:
        ok, reason = False, f"the last run ended {status.last_outcome}" + (
            f": {status.last_error}" if status.last_error else "")
    elif not fresh:
        what = (f"the last successful run finished at {_iso(status.last_success_at)}"
                if status.last_success_at else "no run has succeeded yet")
        ok, reason = False, f"{what}, more than twice the interval ({_span(2 * interval_s)}) ago"
    elif status.last_outcome is None:
        ok, reason = True, "waiting for the first run"
    else:
        ok, reason = True, f"the last run ended {status.last_outcome}"
    body = {"healthy": ok, "reason": reason, "last_outcome": status.last_outcome,
            "last_run_at": _iso(status.last_run_at), "last_success_at": _iso(status.last_success_at),
            "consecutive_failures": status.consecutive_failures, "running_since": _iso(status.running_since),
            "interval_s": interval_s if window is not None else None,
            "backoff_s": status.backoff_s, "backoff_until": _iso(status.backoff_until),
            "next_attempt": _iso(next_attempt)}
    if status.last_error:
        body["last_error"] = status.last_error
    return ok, body


def _failure_text(run: RunRecord) -> str:
    report = run.report or {}
    if report.get("failure"):
        return str(report["failure"])
    # A tripped guard is reported among the conflicts (kinds like "deactivation_cap").
    guards = [c for c in report.get("conflicts") or [] if str(c.get("kind", "")).endswith("_cap")]
    return str(guards[0].get("message", "")) if guards else ""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"
