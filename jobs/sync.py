"""``run``: one sync cycle with the run lock held, the clients and store built from the config."""

from __future__ import annotations

from .config import AppConfig
from .lease import LeaseKeeper
from .state import LockBusy
from .progress import Progress
from .report import RunReport
from .runner import run_users
from .runner_licenses import run_licenses
from .wiring import creatio_client, state_store, webitel_client


JOBS = {"users": run_users, "licenses": run_licenses}


def run_once(config: AppConfig, *, dry_run: bool = False, jobs: tuple[str, ...] = ("users", "licenses"),
             progress: Progress | None = None, webitel=None, creatio=None) -> list[RunReport]:
    """Run the given jobs once, in order. A dry run takes no lock (it writes nothing to the systems)."""
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    reports: list[RunReport] = []
    with state_store(config) as store, (progress or Progress()) as shown:
        lock = store.lock("sync")
        if not dry_run and not lock.acquire():
            raise LockBusy(lock.name, lock.holder_info())
        try:
            if dry_run:
                for job in jobs:
                    reports.append(JOBS[job](config, webitel=webitel, creatio=creatio, store=store, dry_run=True,
                                             progress=shown))
            else:
                # The lease is renewed from a thread, so a long read phase cannot outlive it.
                with LeaseKeeper(lock, job="run") as keeper:
                    for job in jobs:
                        reports.append(JOBS[job](config, webitel=webitel, creatio=creatio, store=store,
                                                 dry_run=False, progress=shown, heartbeat=keeper.held))
        finally:
            if not dry_run:
                lock.release()
    return reports
