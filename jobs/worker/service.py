"""``serve``: the scheduled worker. APScheduler 3.x triggers the runs; the state store's lock decides.

APScheduler is used only as an in-process timer: a ``BlockingScheduler`` with the memory job store,
jobs rebuilt from ``[schedule]`` at every start (explicit ids, ``replace_existing``), one
``max_instances``, late runs coalesced. A one-thread pool runs the jobs, so within one worker the
users and licences jobs follow each other instead of racing for the lock. Across processes and
hosts, the run lock in the state store is the guarantee: a run that finds it taken is skipped.

Stopping (SIGTERM, SIGINT): no new runs; the run in progress finishes its batch in flight, is
recorded as interrupted and gives the lock back; the worker exits 0. Past ``[serve]
stop_timeout_s`` (or on a second signal) it exits 1 at once and the run is marked interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Iterator

from apscheduler.events import (EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED,
                                JobExecutionEvent, JobSubmissionEvent)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from connector.errors import ConfigError

from jobs import exit_codes
from jobs.config import AppConfig
from jobs.logs import bind_run, register_secrets, scrub, unbind_run
from jobs.worker.metrics import Metrics
from jobs.sync.recording import utcnow
from jobs.worker.console.access import Access
from jobs.worker.console.ops import ConsoleOps
from jobs.worker.http import StatusServer
from jobs.worker.job import JobContext, run_job
from jobs.worker.schedule import SYNC_JOBS, interval_s, job_id, make_triggers, schedule_timezone
from jobs.worker.status import health

log = logging.getLogger("wcsync.worker")


class Worker:
    """The scheduled worker for one configuration.

    Args:
        config: The configuration (``[schedule]``, ``[serve]`` and the connections).
        store: The state store; default: opened from ``[state] url`` (and closed at the end).
        webitel: The Webitel client; default: built from the config.
        creatio: The Creatio client; default: built from the config.
        clock: The wall clock (tests may pass their own).
        functions: Sync job functions by name; default ``SYNC_JOBS``.

    Raises:
        ConfigError: A schedule that cannot be used.
    """

    def __init__(self, config: AppConfig, *, store=None, webitel=None, creatio=None, clock=utcnow,
                 functions: dict | None = None) -> None:
        from jobs.wiring import creatio_client, state_store, webitel_client

        self.config = config
        self.triggers = make_triggers(config)
        if functions is not None:
            self.triggers = {name: t for name, t in self.triggers.items() if name in functions}
        self._own_store = store is None
        self.store = store if store is not None else state_store(config)
        _register_url_password(config.state.url)
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.ctx = JobContext(config=config, store=self.store, webitel=webitel or webitel_client(config),
                              creatio=creatio or creatio_client(config), metrics=self.metrics,
                              triggers=self.triggers, stop=self.stop_event, clock=clock,
                              reschedule=self._reschedule, functions=functions or dict(SYNC_JOBS))
        self.scheduler = BlockingScheduler(
            timezone=schedule_timezone(config),
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": config.schedule.misfire_grace_s})
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
        self.started_at: datetime | None = None
        self.http: StatusServer | None = None
        self._active = 0
        self._idle = threading.Condition()
        self._force = threading.Event()

    # --- life cycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until ``request_stop``; returns the exit code (0 clean, 1 forced)."""
        self.started_at = self.ctx.clock()
        self._add_jobs()
        self._start_http()
        self._log_start()
        try:
            if not self.stop_event.is_set():
                self.scheduler.start()
            return self._drain()
        finally:
            if self.http is not None:
                self.http.stop()
            if self._own_store:
                self.store.close()

    def request_stop(self, *, force: bool = False) -> None:
        """Stop scheduling; the run in progress stops after its batch in flight. Safe from any thread."""
        if self.stop_event.is_set():
            force = True  # a second request: do not wait any longer
        self.stop_event.set()
        if force:
            self._force.set()
        # From a helper thread: a signal handler runs on the main thread, which may be inside the
        # scheduler holding its locks at that moment.
        threading.Thread(target=self._shutdown_scheduler, name="stop", daemon=True).start()
        with self._idle:
            self._idle.notify_all()

    def _shutdown_scheduler(self) -> None:
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:  # not started yet (``_started`` sees to it) or already stopped
            pass

    def _started(self, _event: Any) -> None:
        # A stop requested while the scheduler was still starting found nothing to shut down.
        if self.stop_event.is_set():
            self._shutdown_scheduler()

    def _drain(self) -> int:
        timeout = self.config.serve.stop_timeout_s
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active and not self._force.is_set() and time.monotonic() < deadline:
                self._idle.wait(min(0.2, max(deadline - time.monotonic(), 0)))
            busy = self._active
        if not busy:
            log.info("stopped")
            return exit_codes.OK
        log.error("the run in progress did not stop within %g s; exiting anyway (it is recorded as "
                  "interrupted, and its lock lease expires on its own)", timeout)
        try:
            # This worker holds the run lock, so any run still "running" is its own.
            self.store.mark_stale_runs(now=self.ctx.clock(), older_than_s=0)
        except Exception as exc:
            log.error("could not mark the run interrupted: %s", exc)
        return exit_codes.FAILED

    # --- jobs ----------------------------------------------------------------------------------

    def _add_jobs(self) -> None:
        now = self.ctx.clock()
        for order, (name, trigger) in enumerate(self.triggers.items()):
            options: dict[str, Any] = {}
            if self.config.schedule.run_at_start:
                # Tiny offsets keep the job-table order (users before licences) at start.
                options["next_run_time"] = now + timedelta(milliseconds=order)
            self.scheduler.add_job(self._fire, trigger, args=[name], id=job_id(name), name=name,
                                   replace_existing=True, **options)
            self.metrics.declare(name)
        self._refresh_gauges()

    def _fire(self, name: str) -> str:
        with self._activity():
            return run_job(name, self.ctx)

    @contextlib.contextmanager
    def _activity(self) -> Iterator[None]:
        """Held while a run goes on, the scheduler's or one started from the console: a stopping
        worker waits for both alike."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _reschedule(self, name: str, at: datetime) -> None:
        try:
            self.scheduler.modify_job(job_id(name), next_run_time=at)
        except Exception as exc:  # stopping: the job is gone, and so is the need
            log.debug("could not reschedule %s: %s", name, exc)

    def _skipped(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        """Count and log each run the scheduler did not start.

        The two events differ: a missed run (``EVENT_JOB_MISSED``) is a ``JobExecutionEvent`` with
        one ``scheduled_run_time``; a run dropped because the previous one is still going
        (``EVENT_JOB_MAX_INSTANCES``) is a ``JobSubmissionEvent`` with a list of
        ``scheduled_run_times``, one per interval (late runs being coalesced, usually just one).
        """
        name = event.job_id.removeprefix("sync-")
        if event.code == EVENT_JOB_MISSED:
            reason, due = "missed", [event.scheduled_run_time]
        else:
            reason, due = "still_running", list(event.scheduled_run_times)
        token = bind_run("", name)
        try:
            for when in due:
                self.metrics.skipped.labels(name, reason).inc()
                fields = {"fields": {"skipped": reason, "due_at": when.isoformat(timespec="seconds")}}
                if reason == "missed":
                    log.warning("%s: the run due at %s was skipped: more than %d s late (misfire_grace_s)",
                                name, f"{when:%H:%M:%S}", self.config.schedule.misfire_grace_s, extra=fields)
                else:
                    log.warning("%s: the previous run is still going; this run is skipped", name,
                                extra=fields)
        finally:
            unbind_run(token)

    def next_attempt(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(job_id(name))
        return getattr(job, "next_run_time", None)

    # --- health and metrics --------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)``: healthy when every scheduled job is (see ``status.health``)."""
        now = self.ctx.clock()
        jobs = {}
        for name, trigger in self.triggers.items():
            _, jobs[name] = health(self.ctx.status(name, now), now=now, interval_s=interval_s(trigger, now),
                                   worker_started_at=self.started_at or now,
                                   next_attempt=self.next_attempt(name))
        ok = all(body["healthy"] for body in jobs.values())
        return ok, {"healthy": ok, "stopping": self.stop_event.is_set(),
                    "started_at": (self.started_at or now).isoformat(timespec="seconds"), "jobs": jobs}

    def _health_scrubbed(self) -> tuple[bool, dict[str, Any]]:
        try:
            return self.health()
        except Exception as exc:  # the state store is unreachable: that is unhealthy, and says why
            log.warning("health check failed: %s", exc)
            return False, {"healthy": False, "reason": scrub(f"cannot read the run history: {exc}")}

    def metrics_payload(self) -> tuple[str, bytes]:
        """``(content_type, body)`` of ``/metrics``, gauges refreshed from the run history."""
        self._refresh_gauges()
        return self.metrics.content_type, self.metrics.render()

    def _refresh_gauges(self) -> None:
        # The gauges follow the shared history as backoff reads it: other workers' runs count, runs
        # started by hand only when they succeed.
        try:
            for name in self.triggers:
                status = self.ctx.status(name)
                self.metrics.set_standing(name, failures=status.consecutive_failures,
                                          last_success=status.last_success_at)
            today = self.ctx.clock().date()  # the day the runs count their requests in (UTC)
            self.metrics.set_requests_today(
                {system: self.ctx.store.requests_on(system, today) for system in ("webitel", "creatio")},
                {"creatio": self.config.creatio.daily_request_budget})
        except Exception as exc:
            log.warning("could not read the run history for the metrics: %s", exc)

    def _start_http(self) -> None:
        access = Access.from_config(self.config)
        register_secrets(access.secrets())
        port = self.config.serve.http_port
        if port is None:
            if access.secrets():
                log.warning("[console] is set but [serve] http_port is not: no API and no console")
            return
        host = self.config.serve.http_host
        # The console's runs stop with the worker, and a stopping worker waits for them.
        console = ConsoleOps(self.config, self.store, health=self._health_scrubbed, clock=self.ctx.clock,
                             stop_requested=self.stop_event.is_set, activity=self._activity)
        try:
            self.http = StatusServer(host, port, health=self._health_scrubbed, metrics=self.metrics_payload,
                                     console=console, access=access).start()
        except OSError as exc:
            raise ConfigError(f"serve.http_port: cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}") from None

    def _log_start(self) -> None:
        now = self.ctx.clock()
        plans = []
        for name in self.triggers:
            schedule = getattr(self.config.schedule, name)
            when = (f"every {schedule.every_minutes:g} min" if schedule.every_minutes
                    else f"cron {schedule.cron!r}")
            # Before the scheduler starts, only a run_at_start job has its next run time set.
            nxt = self.next_attempt(name) or self.triggers[name].get_next_fire_time(None, now)
            plans.append(f"{name} {when} (next {nxt:%Y-%m-%d %H:%M:%S %Z})" if nxt else f"{name} {when}")
        where = f"; /healthz, /metrics, the API and the console at {self.http.url}" if self.http else ""
        log.info("serving %s (pid %d): %s%s", self.store.url, os.getpid(), "; ".join(plans), where,
                 extra={"fields": {"started_at": now.isoformat(timespec="seconds"),
                                   "http": self.http.url if self.http else None}})


def serve(config: AppConfig) -> int:
    """Run the worker in this process until SIGTERM or SIGINT; returns the exit code."""
    _quiet_scheduler_logs()
    worker = Worker(config)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: Any) -> None:
            log.info("%s received: finishing the run in progress, then stopping (send it again to stop now)",
                     signal.Signals(signum).name)
            worker.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        code = worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != exit_codes.OK:
        # A run thread may still be inside a request: do not wait for it at interpreter exit.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)
    return code


def _quiet_scheduler_logs() -> None:
    """The worker logs every run, skip and miss itself; APScheduler's own INFO lines repeat them."""
    root = logging.getLogger().getEffectiveLevel()
    if root > logging.DEBUG:
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
    worker = logging.getLogger("wcsync.worker")
    if root > logging.INFO:
        worker.setLevel(logging.INFO)  # one line per run even at the default WARNING level


def _register_url_password(url: str) -> None:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return
    if password:
        register_secrets([str(password)])
