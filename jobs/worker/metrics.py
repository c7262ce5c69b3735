"""The worker's Prometheus metrics, in a private registry served at ``/metrics``.

A private ``CollectorRegistry`` (not the process-wide default) keeps the output to the worker's
own series and lets tests build as many workers as they like in one process. Metric names follow
the Prometheus conventions: ``_total`` counters, ``_seconds`` units, a ``wcsync_`` prefix.
"""

from __future__ import annotations

import datetime as dt
from typing import Mapping

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Runs last from seconds (nothing to do) to an hour (a first import of a large tenant).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


class Metrics:
    """Every series the worker exports; one instance per worker."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # The ``*_created`` series would double the output and tell nothing a worker's start time
        # does not. (A process-wide switch; this process exports nothing else.)
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("wcsync_runs", "Sync runs by job and outcome.", ["job", "outcome"], registry=r)
        self.duration = Histogram("wcsync_run_duration_seconds", "Duration of sync runs.", ["job"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.actions = Counter("wcsync_actions", "Actions carried out by runs, by kind and result.",
                               ["job", "kind", "result"], registry=r)
        self.conflicts = Counter("wcsync_conflicts", "Conflicts found by runs, by kind.", ["job", "kind"],
                                 registry=r)
        self.http = Counter("wcsync_http_requests", "HTTP requests to Webitel and Creatio, by status "
                            "(network_error: no response).", ["system", "status"], registry=r)
        self.last_success = Gauge("wcsync_last_success_timestamp_seconds",
                                  "Unix time the last successful run of a job finished.", ["job"], registry=r)
        self.lock_waits = Counter("wcsync_lock_waits", "Runs skipped because another run held the run lock.",
                                  ["job"], registry=r)
        self.failures = Gauge("wcsync_consecutive_failures", "Failed runs of a job since its last success.",
                              ["job"], registry=r)
        self.requests_today = Gauge("wcsync_requests_today", "Requests made to each system on this UTC "
                                    "day, by every worker and run sharing the state store.", ["system"],
                                    registry=r)
        self.request_budget = Gauge("wcsync_daily_request_budget", "The configured daily request budget "
                                    "([creatio] daily_request_budget), when there is one.", ["system"],
                                    registry=r)
        self.skipped = Counter("wcsync_skipped_runs", "Scheduled runs not started, by reason (lock, backoff, "
                               "still_running, missed, stopping).", ["job", "reason"], registry=r)

    def declare(self, job: str) -> None:
        """Create a job's series at zero, so that dashboards see them before the first run."""
        self.lock_waits.labels(job)
        self.failures.labels(job)
        self.duration.labels(job)

    def record_run(self, job: str, *, outcome: str, duration_s: float, actions: Mapping[tuple[str, str], int],
                   conflicts: Mapping[str, int]) -> None:
        """Count one finished run.

        Args:
            job: The job's name.
            outcome: The run's outcome (``in_sync``, ``conflicts``, ``failed``...).
            duration_s: How long it took.
            actions: Count by ``(kind, result)``, result ``applied`` or ``failed``.
            conflicts: Count by conflict kind.
        """
        self.runs.labels(job, outcome).inc()
        self.duration.labels(job).observe(duration_s)
        for (kind, result), n in actions.items():
            self.actions.labels(job, kind, result).inc(n)
        for kind, n in conflicts.items():
            self.conflicts.labels(job, kind).inc(n)

    def record_requests(self, system: str, delta: Mapping[tuple[str, str, int], int]) -> None:
        """Add a client's request counts since the last call (``RequestCounter`` snapshot deltas)."""
        by_status: dict[str, int] = {}
        for (_method, _route, status), n in delta.items():
            label = str(status) if status else "network_error"
            by_status[label] = by_status.get(label, 0) + n
        for status, n in by_status.items():
            if n > 0:
                self.http.labels(system, status).inc(n)

    def set_standing(self, job: str, *, failures: int, last_success: dt.datetime | None) -> None:
        """Update the gauges from a job's status."""
        self.failures.labels(job).set(failures)
        if last_success is not None:
            self.last_success.labels(job).set(last_success.timestamp())

    def set_requests_today(self, counts: Mapping[str, int], budgets: Mapping[str, int | None]) -> None:
        """Update the day's request counts (from the state store) and the budgets configured."""
        for system, n in counts.items():
            self.requests_today.labels(system).set(n)
        for system, budget in budgets.items():
            if budget:
                self.request_budget.labels(system).set(budget)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


def counter_delta(before: Mapping[tuple, int], after: Mapping[tuple, int]) -> dict[tuple, int]:
    """What a cumulative counter snapshot gained between two snapshots (keys absent before count 0)."""
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}
