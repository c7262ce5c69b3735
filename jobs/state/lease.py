"""Keeping a held run lock alive from a thread of its own while a run goes on."""

from __future__ import annotations

import logging
import threading

from jobs.logs import bind_run, unbind_run

log = logging.getLogger("wcsync.lease")


class LeaseKeeper:
    """Renews a held run lock every third of its lease, from a thread of its own, until stopped.

    Only this thread touches the lock while the run goes on (a ``RunLock`` is not meant to be
    shared between threads); the run asks ``held`` between batches.
    """

    def __init__(self, lock, *, job: str) -> None:
        self._lock = lock
        self._job = job
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job}", daemon=True)

    def held(self) -> bool:
        return not self._lost.is_set()

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        token = bind_run("", self._job)
        try:
            while not self._stop.wait(self._lock.lease_s / 3):
                try:
                    renewed = self._lock.heartbeat()
                except Exception as exc:  # a database hiccup: keep trying while the lease lasts
                    log.warning("could not renew the run lock: %s", exc)
                    continue
                if not renewed:
                    log.error("the run lock was taken over by another worker; stopping after this batch")
                    self._lost.set()
                    return
        finally:
            unbind_run(token)
