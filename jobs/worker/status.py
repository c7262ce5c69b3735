"""A job's standing, derived from the shared run history: last outcome, failures in a row, backoff.

Pure functions over ``RunRecord`` lists (newest first) and an explicit ``now``.

Which runs count. The history is shared by every worker of a configuration and by the commands an
administrator types (``run``, ``demo``). A *failure* counts towards backoff and health only when a
worker started the run: five failed ``run``s while someone fixes a password must neither delay the
next scheduled run nor turn ``/healthz`` to 503. A *success* counts whoever made it: it shows that
both systems are reachable again, so it ends a failing streak.

The worker tells its runs apart by a mark it adds to their record (``started_by`` in the report,
written by ``jobs.worker.job``), rather than by counting its own failures in memory: the history
stays the one source, so workers sharing a configuration still agree, a restarted worker still
remembers its failing streak, and ``/healthz`` can say who started the latest run. Runs recorded
without the mark (by hand, or before the mark existed) do not count against the worker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from jobs.state import RunRecord

# Outcomes of a run that did its job (conflicts are left for an administrator, not a fault).
SUCCESS = frozenset({"in_sync", "conflicts"})
# Outcomes that count towards backoff; a refused run (a safety cap) stays refused until someone
# acts. "guard_tripped" is what older records call a refused run.
FAILURE = frozenset({"failed", "refused", "guard_tripped"})
# A run stopped by a shutdown or a lost lock says nothing about the job's health, and a run still
# going has no outcome yet: both are passed over.
NEUTRAL = frozenset({"interrupted", "running"})
# The mark in the report of every run the worker started: ``report[STARTED_BY] == WORKER``.
STARTED_BY, WORKER = "started_by", "serve"


def started_by_worker(run: RunRecord) -> bool | None:
    """True for a run a worker started, False for one started by hand, None when the run cannot say.

    A run whose process died before recording how it ended has no report, and so no mark.
    """
    if run.report is None:
        return None
    return run.report.get(STARTED_BY) == WORKER


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
        last_outcome: Outcome of the latest run that counts (see the module): a worker's, or a
            success by anyone; interrupted runs passed over.
        last_run_at: When that run started.
        last_success_at: When the latest successful run finished.
        last_error: The failure message of that run, if it failed.
        consecutive_failures: Failed runs started by a worker since the latest success.
        running_since: Start of a run still going, if any.
        backoff_s: The current backoff delay (0: on schedule).
        backoff_until: No attempt before this time (None: on schedule).
        latest: The latest run that ended, whoever started it and however it ended.
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
    latest: RunRecord | None = None

    def in_backoff(self, now: dt.datetime, *, slack_s: float = 1.0) -> bool:
        """Whether an attempt at ``now`` would come too early (``slack_s`` absorbs timer jitter)."""
        return self.backoff_until is not None and now < self.backoff_until - dt.timedelta(seconds=slack_s)


def job_status(job: str, runs: Sequence[RunRecord], *, interval_s: float,
               policy: BackoffPolicy) -> JobStatus:
    """Summarise a job's recent runs (newest first; dry runs and other jobs are ignored).

    Failures count only when a worker started the run; successes whoever did (see the module).
    The backoff is counted from the *start* of the latest failure, so an interval-triggered
    attempt exactly ``2**k`` intervals later is on time however long the failing run took.
    """
    mine = [r for r in runs if r.job == job and not r.dry_run]
    running = next((r.started_at for r in mine if r.outcome == "running"), None)
    ended = [r for r in mine if r.outcome != "running"]
    counted = [r for r in ended
               if r.outcome not in NEUTRAL and (r.outcome in SUCCESS or started_by_worker(r))]
    failures = 0
    for run in counted:
        if run.outcome in SUCCESS:
            break
        if run.outcome in FAILURE:
            failures += 1
    success = next((r for r in counted if r.outcome in SUCCESS), None)
    last = counted[0] if counted else None
    delay = policy.delay_s(failures, interval_s)
    return JobStatus(
        job=job, last_outcome=last.outcome if last else None, last_run_at=last.started_at if last else None,
        last_success_at=(success.finished_at or success.started_at) if success else None,
        last_error=_failure_text(last) if last is not None and last.outcome in FAILURE else "",
        consecutive_failures=failures, running_since=running, backoff_s=delay,
        backoff_until=(last.started_at + dt.timedelta(seconds=delay)) if delay else None,
        latest=ended[0] if ended else None)


def health(status: JobStatus, *, now: dt.datetime, interval_s: float, worker_started_at: dt.datetime,
           next_attempt: dt.datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether a job is healthy, and a JSON-ready explanation.

    Healthy: the latest run that counts (see the module) succeeded (or ended with conflicts), and
    the latest success is no older than twice the job's interval. A worker that just started gets
    the same window to make its first run, so a fresh deployment is not reported unhealthy before
    it could run. ``last_run`` says what the latest run was, counted or not: who started it and
    how it ended.
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
    latest = status.latest
    if latest is not None and latest.outcome in FAILURE and started_by_worker(latest) is False:
        reason += f"; a later run started by hand ended {latest.outcome}, which does not count here"
    body = {"healthy": ok, "reason": reason, "last_outcome": status.last_outcome,
            "last_run_at": _iso(status.last_run_at), "last_success_at": _iso(status.last_success_at),
            "consecutive_failures": status.consecutive_failures, "running_since": _iso(status.running_since),
            "interval_s": interval_s if window is not None else None,
            "backoff_s": status.backoff_s, "backoff_until": _iso(status.backoff_until),
            "next_attempt": _iso(next_attempt), "last_run": _last_run(latest)}
    if status.last_error:
        body["last_error"] = status.last_error
    return ok, body


def _last_run(run: RunRecord | None) -> dict[str, Any] | None:
    """The latest run for ``/healthz``; ``manual`` is None when the run cannot say who started it."""
    if run is None:
        return None
    by_worker = started_by_worker(run)
    out = {"run_id": run.run_id, "started_at": _iso(run.started_at), "outcome": run.outcome,
           "manual": None if by_worker is None else not by_worker}
    if run.outcome in FAILURE:
        out["error"] = _failure_text(run)
    return out


def _failure_text(run: RunRecord) -> str:
    report = run.report or {}
    if report.get("failure"):
        return str(report["failure"])
    refused = report.get("refused")
    if isinstance(refused, dict) and refused.get("message"):
        return str(refused["message"])
    # Older records list a tripped guard among the conflicts (kinds like "deactivation_cap").
    guards = [c for c in report.get("conflicts") or [] if str(c.get("kind", "")).endswith("_cap")]
    return str(guards[0].get("message", "")) if guards else ""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"
