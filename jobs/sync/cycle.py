"""One cycle: the ONLY path that takes the run lock, keeps its lease and marks stale runs.

``run`` (``run_once``), the scheduled worker (``jobs.worker.job``) and ``demo`` all go through
``held_run_lock``, so "a run whose process died is marked interrupted by the next run" holds
whichever of them comes next, and every run is held to the same configured lease.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Callable, Iterator, Mapping

from connector.errors import LockBusy

from jobs.config import AppConfig
from jobs.plan import Issue
from jobs.progress import Progress
from jobs.report import RunReport
from jobs.state.lease import LeaseKeeper
from jobs.sync.licenses import run_licenses
from jobs.sync.one_user import sync_user
from jobs.sync.recording import utcnow
from jobs.sync.users import run_users
from jobs.wiring import creatio_client, remembered_odata_root, state_store, webitel_client

log = logging.getLogger(__name__)

JOBS = {"users": run_users, "licenses": run_licenses}
LOCK_NAME = "sync"  # one run at a time per configuration, whoever starts it


@contextmanager
def held_run_lock(store, config: AppConfig, *, job: str,
                  clock: Callable[[], datetime] = utcnow) -> Iterator[LeaseKeeper]:
    """Hold the run lock for one cycle: taken, stale runs marked, lease renewed, released.

    Yields:
        The lease keeper: ``keeper.held()`` turns False when the lease was lost (another worker
        took over), and the run stops after the batch in flight.

    Raises:
        LockBusy: another run holds the lock.
    """
    lock = store.lock(LOCK_NAME, lease_s=config.serve.lock_lease_s, clock=clock)
    if not lock.acquire():
        raise LockBusy(lock.name, lock.holder_info())
    try:
        # Holding the lock, any run still marked "running" belongs to a process that died.
        stale = store.mark_stale_runs(now=clock(), older_than_s=0)
        if stale:
            log.warning("%s: marked %d run(s) left running by a stopped process as interrupted", job, stale)
        with LeaseKeeper(lock, job=job) as keeper:
            yield keeper
    finally:
        try:
            lock.release()
        except Exception as exc:  # the lease runs out on its own; say so and go on
            log.warning("%s: could not release the run lock (%s); its lease will expire", job, exc)


def _note_dependency(earlier: list[RunReport], report: RunReport) -> RunReport:
    """A dry run's licences plan cannot see the records the users plan would create: say so."""
    if report.job != "licenses" or not earlier:
        return report
    users = earlier[-1]
    pending = sum(1 for a in users.plan.actions if a.kind in ("create_record", "link_record"))
    if not pending:
        return report
    note = Issue(
        "depends_on_users_job",
        f"this plan was made before the users job's {pending} planned record "
        "links; the grants of those users are not in it, and a real run plans them after the import",
    )
    report.plan = replace(report.plan, warnings=(*report.plan.warnings, note))
    return report


def mark_abandoned_runs(store, *, clock: Callable[[], datetime] = utcnow) -> int:
    """Mark runs left "running" by a process that died, when no run is live (the lock is free).

    For read-only views (``history``): they take the lock for a moment only, and leave it alone
    when a run holds it (then "running" may well be true).
    """
    lock = store.lock(LOCK_NAME, clock=clock)
    if not lock.acquire():
        return 0
    try:
        return store.mark_stale_runs(now=clock(), older_than_s=0)
    finally:
        lock.release()


def run_once(
    config: AppConfig,
    *,
    dry_run: bool = False,
    jobs: tuple[str, ...] = ("users", "licenses"),
    progress: Progress | None = None,
    webitel=None,
    creatio=None,
    stop_requested: Callable[[], bool] = lambda: False,
    approve: Mapping[str, int] | None = None,
    user: str | None = None,
    run_id: str | None = None,
    full: bool = False,
) -> list[RunReport]:
    """Run the given jobs once, in order. A dry run takes no lock (it writes nothing to the systems).

    Args:
        stop_requested: turns True when the run should stop (a signal): the job in progress stops
            after its batch in flight and is recorded as interrupted; later jobs do not start.
        approve: this run's approvals over the safety caps (``{"deactivations": N}``,
            ``{"revocations": N}``), recorded with the run.
        user: sync only this Webitel user (a username or an id), both directions, on demand
            (``jobs.sync.one_user``); ``jobs`` is then not used.
        run_id: the id of the first job's run (an API answers with it before the run starts).
        full: read everything even when an incremental cycle is due (``run --full``).

    Raises:
        LockBusy: a run that writes found another run in progress.
    """
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    reports: list[RunReport] = []
    with state_store(config) as store, remembered_odata_root(store, creatio), progress or Progress() as shown:
        if user is not None:
            if dry_run:
                return [sync_user(config, user, webitel=webitel, creatio=creatio, store=store, dry_run=True,
                                  run_id=run_id)]
            with held_run_lock(store, config, job="user"):
                return [sync_user(config, user, webitel=webitel, creatio=creatio, store=store, run_id=run_id,
                                  stop_requested=stop_requested)]
        if dry_run:
            for job in jobs:
                report = JOBS[job](
                    config,
                    webitel=webitel,
                    creatio=creatio,
                    store=store,
                    dry_run=True,
                    full=full,
                    progress=shown,
                    run_id=run_id if not reports else None,
                )
                reports.append(_note_dependency(reports, report))
            return reports
        with held_run_lock(store, config, job="run") as keeper:
            for job in jobs:
                if stop_requested():
                    break
                reports.append(
                    JOBS[job](
                        config,
                        webitel=webitel,
                        creatio=creatio,
                        store=store,
                        dry_run=False,
                        full=full,
                        progress=shown,
                        heartbeat=keeper.held,
                        stop_requested=stop_requested,
                        approve=approve,
                        run_id=run_id if not reports else None,
                    )
                )
    return reports
