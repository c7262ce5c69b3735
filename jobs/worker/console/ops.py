"""What the API and the console pages do, in one place: reads of the history, the licence pages,
the conflict resolutions, and syncs started on request.

The pages and the API are thin layers over this class, so both refuse the same things for the
same reasons, and tests of one are tests of the other. Every action goes through the functions
the command line uses (``run_once``, ``change_grant``, ``jobs.sync.resolutions``): a console
cannot do what ``run`` or ``license`` would refuse.

A sync started here runs on a thread of its own through ``run_once``, the one path that takes the
run lock: the worker's scheduled run that comes due meanwhile is skipped and logged, as it is for a
``run`` typed by hand. It is a run by hand in the history too (its failures never back the worker
off). The run id is chosen here and handed to ``run_once``, so the caller has it at once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ContextManager

from connector.errors import LockBusy, Refused, SyncError

from jobs.commands.history import object_keys
from jobs.commands.licenses import matrix_rows, registry_rows
from jobs.config import AppConfig
from jobs.logs import scrub
from jobs.progress import Progress
from jobs.sync.cycle import LOCK_NAME
from jobs.sync.recording import utcnow

log = logging.getLogger("wcsync.console")

JOB_CHOICES = {"all": ("users", "licenses"), "users": ("users",), "licenses": ("licenses",)}
LAUNCHES_KEPT = 200  # syncs started here that ``launch()`` still knows (the history keeps them all)
START_WAIT_S = 10.0  # how long ``start_run`` waits to see the run recorded before answering anyway
TREND_RUNS = 20  # runs per job in the overview's trend of conflicts
EVENTS_SHOWN = 500  # events of one run on its page
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Stopping(SyncError):
    """The worker is stopping: no new run starts."""


class NotFound(LookupError):
    """No such conflict (or run): it was resolved meanwhile, or never existed."""


@dataclass
class Launch:
    """A sync started from the API or the console, as this process knows it.

    Attributes:
        run_id: The id of its first job's run (the id the caller was given).
        run_ids: Every job's run id, once it finished.
        error: Why it ended before (or without) a recorded run, scrubbed of secrets.
        phase: What it is doing now (the progress of ``run_once``).
        done_total: Writes done and planned in the current phase, when it counts them.
    """

    run_id: str
    jobs: tuple[str, ...]
    user: str | None
    dry_run: bool
    by: str
    requested_at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    run_ids: list[str] = field(default_factory=list)
    error: str = ""
    exception: BaseException | None = None
    phase: str = ""
    done_total: tuple[int, int] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "jobs": list(self.jobs),
            "dry_run": self.dry_run,
            "user": self.user,
            "started_by": self.by,
            "finished": self.done.is_set(),
            "requested_at": self.requested_at.isoformat(timespec="seconds"),
        }
        if self.run_ids:
            out["run_ids"] = list(self.run_ids)
        if self.error:
            out["error"] = self.error
        if self.phase and not self.done.is_set():
            out["phase"] = self.phase
        return out


class _Watch(Progress):
    """``run_once``'s progress, kept on the launch for its page (nothing drawn, log lines only)."""

    def __init__(self, launch: Launch) -> None:
        super().__init__(enabled=False)
        self.launch = launch

    def phase(self, text: str) -> None:
        super().phase(text)
        self.launch.phase, self.launch.done_total = text, None

    def advance(self, done: int, total: int) -> None:
        self.launch.done_total = (done, total)


class ConsoleOps:
    """The console's and the API's operations over one configuration and its state store.

    Args:
        config: The configuration (the connections, ``[licenses] expiring_days``...).
        store: The state store (the worker's own; shared, read by every page).
        health: ``(healthy, body)`` as ``/healthz`` answers it.
        stop_requested: Turns True when the worker stops: runs started here stop after their
            batch in flight, and no new one starts.
        activity: A context manager held while a run started here goes on, so that a stopping
            worker waits for it as for its own runs.
        clock: The wall clock.
    """

    def __init__(
        self,
        config: AppConfig,
        store,
        *,
        health: Callable[[], tuple[bool, dict]],
        stop_requested: Callable[[], bool] = lambda: False,
        activity: Callable[[], ContextManager] = contextlib.nullcontext,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.health = health
        self.stop_requested = stop_requested
        self._activity = activity
        self.clock = clock
        self._launches: OrderedDict[str, Launch] = OrderedDict()
        self._guard = threading.Lock()

    # --- the history -----------------------------------------------------------------------

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the run lock now (a run in progress), JSON-ready; None when nobody does."""
        holder = self.store.lock(LOCK_NAME, clock=self.clock).holder_info()
        if holder is None:
            return None
        return {
            k: v.isoformat(timespec="seconds") if isinstance(v, datetime) else v for k, v in holder.items()
        }

    def overview(self) -> dict[str, Any]:
        """Health, the latest runs, the counts of the overview page (and of ``GET /api/status``)."""
        healthy, body = self.health()
        conflicts, ignored = self.conflicts(), self.ignored()
        trend = {}
        for job in JOB_CHOICES["all"]:
            runs = [r for r in self.store.recent_runs(TREND_RUNS * 2, job=job) if not r.dry_run]
            trend[job] = [
                {
                    "run_id": r.run_id,
                    "started_at": r.started_at.isoformat(timespec="seconds"),
                    "outcome": r.outcome,
                    "conflicts": r.conflicts,
                }
                for r in reversed(runs[:TREND_RUNS])
            ]
        by_kind: dict[str, int] = {}
        for conflict in conflicts:
            by_kind[conflict.get("kind", "")] = by_kind.get(conflict.get("kind", ""), 0) + 1
        return {
            "healthy": healthy,
            "health": body,
            "running": self.lock_holder(),
            "linked_users": len(self.store.links("webitel_user")),
            "open_conflicts": len(conflicts),
            "conflicts_by_kind": dict(sorted(by_kind.items())),
            "ignored_conflicts": len(ignored),
            "trend": trend,
            "launches": [launch.as_json() for launch in self.launches()[:5]],
        }

    def runs(self, limit: int = 50):
        return self.store.recent_runs(limit)

    def run(self, run_id: str):
        """``(record or None, launch or None)``: a run by id or unique prefix, and its launch here.

        Raises:
            LookupError: A prefix that fits several runs.
        """
        record = self.store.get_run(run_id)
        return record, self.launch(record.run_id if record is not None else run_id)

    def run_events(self, run_id: str, limit: int = EVENTS_SHOWN):
        return self.store.run_events(run_id)[:limit]

    def user_story(self, user: str, limit: int = 100) -> tuple[str, list]:
        """``(label, [(run, event)...])``: one Webitel user's events across runs, newest first."""
        label, keys = object_keys(self.store, user)
        return label, (self.store.object_history(keys, limit=limit) if keys else [])

    def webitel_user(self, user: str):
        """The user as Webitel has it now (by username or id), or None."""
        webitel = self._webitel()
        if user.isdigit():
            try:
                return webitel.get_user(int(user))
            except LookupError:
                return None
        return webitel.find_user(user)

    # --- conflicts -------------------------------------------------------------------------

    def conflicts(self) -> list[dict]:
        """The open conflicts, each with ``pending``: the resolution decided since its run, if any.

        A link or an ignore takes effect at the next sync; until then the conflict stays in the
        latest run's report, and the console says what is waiting for it.
        """
        from jobs.sync.resolutions import open_conflicts

        conflicts = open_conflicts(self.store)
        decided = self.store.resolutions()
        runs = {
            run_id: self.store.get_run(run_id) for run_id in {c.get("run_id") for c in conflicts} if run_id
        }
        for conflict in conflicts:
            key = _resolution_key(conflict)
            found = decided.get(key) if key else None
            run = runs.get(conflict.get("run_id"))
            if found and run is not None and found.get("at") and found["at"] >= run.started_at:
                conflict["pending"] = {k: found.get(k) for k in ("kind", "contact_id", "reason", "who", "at")}
        return conflicts

    def ignored(self) -> list[dict]:
        from jobs.sync.resolutions import ignored_conflicts

        return ignored_conflicts(self.store)

    def conflict(self, conflict_id: str, *, ignored: bool = False) -> dict:
        """An open (or an ignored) conflict by its id.

        Raises:
            NotFound: there is none (resolved, or gone with a newer run).
        """
        for found in self.ignored() if ignored else self.conflicts():
            if str(found.get("id")) == conflict_id:
                return found
        raise NotFound(
            f"no {'ignored' if ignored else 'open'} conflict {conflict_id!r} (resolved meanwhile?)"
        )

    def link(self, conflict_id: str, contact: str, *, who: str) -> dict:
        """Link the conflict's Webitel user to a contact (an Id, or an exact name of one contact).

        Raises:
            NotFound: no such open conflict.
            Refused: the engine's one-line reason (no such contact, several of that name...).
        """
        from jobs.sync.resolutions import link_user

        if not contact.strip():
            raise Refused("name the contact: its Id, or its exact name")
        user = _user_of(self.conflict(conflict_id))
        done = link_user(self.config, user, contact.strip(), who=who)
        log.info("%s linked Webitel user %s to contact %s", who, user, contact.strip())
        return done

    def ignore(self, conflict_id: str, reason: str, *, who: str) -> dict:
        """Ignore the conflict's Webitel user from now on, for a reason an administrator gives."""
        from jobs.sync.resolutions import ignore_user

        if not reason.strip():
            raise Refused("say why the conflict is ignored (a reason is required)")
        user = _user_of(self.conflict(conflict_id))
        done = ignore_user(self.config, user, reason=reason.strip(), who=who)
        log.info("%s ignored the conflicts of Webitel user %s", who, user)
        return done

    def unignore(self, conflict_id: str, *, who: str) -> dict:
        """Stop ignoring an ignored conflict's user: the next run reports it again."""
        from jobs.sync.resolutions import unignore_user

        user = _user_of(self.conflict(conflict_id, ignored=True))
        done = unignore_user(self.config, user, who=who)
        log.info("%s no longer ignores Webitel user %s", who, user)
        return done

    # --- licences --------------------------------------------------------------------------

    def registry(self, *, search: str = "", product: str = "") -> list[dict]:
        """The licence registry with the Webitel admin's columns (``licenses``' own rows)."""
        rows = registry_rows(
            self._webitel().list_licenses(), self.clock(), self.config.licenses.expiring_days
        )
        if product:
            rows = [r for r in rows if r["product"].casefold() == product.casefold()]
        if search:
            needle = search.casefold()
            rows = [r for r in rows if needle in f"{r['id']} {r['product']} {r['name']}".casefold()]
        return rows

    def matrix(self, *, search: str = "", product: str = "") -> tuple[list[dict], list[dict]]:
        """``(columns, rows)`` of the user x licence matrix (``licenses --users``' own rows)."""
        webitel = self._webitel()
        licenses = webitel.list_licenses()
        now = self.clock()
        columns, rows = matrix_rows(
            webitel.list_users(fields=("id", "username", "name", "license")),
            licenses,
            product=product or None,
            search=search or None,
        )
        states = {r["id"].lower(): r for r in registry_rows(columns, now, self.config.licenses.expiring_days)}
        return [states[c.serial.lower()] for c in columns], rows

    def products(self) -> list[str]:
        return sorted({l.product for l in self._webitel().list_licenses()}, key=str.casefold)

    def change_grant(self, action: str, user: str, serial: str, *, who: str) -> str:
        """Assign or revoke one licence as ``license assign|revoke`` does; what it did, in words.

        Raises:
            Refused: the same refusals as the command (expired, no seat left, unknown user...).
        """
        from jobs.commands.license import change_grant

        if action not in ("assign", "revoke"):
            raise Refused(f"unknown action {action!r}: assign or revoke")
        out = io.StringIO()
        code = change_grant(self.config, action, user, serial, out=out)
        text = scrub("; ".join(line.strip() for line in out.getvalue().splitlines() if line.strip()))
        log.info("%s: license %s %s %s: %s", who, action, user, serial, text)
        if code != 0:
            raise SyncError(text or f"license {action} failed")
        return text

    # --- syncs on request ------------------------------------------------------------------

    def launches(self) -> list[Launch]:
        """Syncs started here, newest first."""
        with self._guard:
            return list(reversed(self._launches.values()))

    def launch(self, run_id: str) -> Launch | None:
        """A sync started here, by the id its caller was given or by any of its runs' ids."""
        with self._guard:
            if run_id in self._launches:
                return self._launches[run_id]
            return next((l for l in self._launches.values() if run_id in l.run_ids), None)

    def start_run(
        self,
        *,
        jobs: tuple[str, ...] = JOB_CHOICES["all"],
        user: str | None = None,
        dry_run: bool = False,
        by: str,
    ) -> Launch:
        """Start a sync on a thread; return once its run is recorded (or it ended, or after a while).

        Raises:
            Stopping: the worker is stopping.
            LockBusy: a run is in progress (another started here, the worker's, or one by hand).
            Refused: the run was refused before it began (an unknown user, say).
            SyncError: it failed before it could record a run.
        """
        if self.stop_requested():
            raise Stopping("the worker is stopping; no new run starts")
        with self._guard:
            if not dry_run:
                going = next(
                    (l for l in self._launches.values() if not l.done.is_set() and not l.dry_run), None
                )
                if going is not None:
                    busy = LockBusy(LOCK_NAME, None)
                    busy.holder = {"holder": f"the run {going.run_id} started by {going.by}"}
                    raise busy
                holder = self.store.lock(LOCK_NAME, clock=self.clock).holder_info()
                if holder is not None:
                    raise LockBusy(LOCK_NAME, holder)
            launch = Launch(uuid.uuid4().hex, tuple(jobs), user, dry_run, by, self.clock())
            self._launches[launch.run_id] = launch
            while len(self._launches) > LAUNCHES_KEPT:
                self._launches.popitem(last=False)
            # Held from here, not from the thread's start: a worker stopping in between waits too.
            held = contextlib.ExitStack()
            held.enter_context(self._activity())
            threading.Thread(
                target=self._run, args=(launch, held), name=f"console-run-{launch.run_id[:8]}", daemon=True
            ).start()
        what = f"user {user}" if user else "+".join(jobs)
        log.info("%s started a %s of %s (run %s)", by, "dry run" if dry_run else "sync", what, launch.run_id)
        deadline = time.monotonic() + START_WAIT_S
        while not launch.done.wait(0.05) and time.monotonic() < deadline:
            if self.store.get_run(launch.run_id) is not None:
                return launch
        if launch.done.is_set() and launch.exception is not None and not launch.run_ids:
            if self.store.get_run(launch.run_id) is None:
                raise launch.exception
        return launch

    def _run(self, launch: Launch, held: contextlib.ExitStack) -> None:
        from jobs.sync.cycle import run_once

        with held:
            try:
                reports = run_once(
                    self.config,
                    dry_run=launch.dry_run,
                    jobs=launch.jobs,
                    user=launch.user,
                    run_id=launch.run_id,
                    stop_requested=self.stop_requested,
                    progress=_Watch(launch),
                )
                launch.run_ids = [r.run_id for r in reports]
            except SyncError as exc:
                launch.exception, launch.error = exc, scrub(str(exc)) or type(exc).__name__
            except Exception as exc:  # a bug: the history says failed (recorded_run did), and so do we
                log.exception("the run %s started by %s failed", launch.run_id, launch.by)
                launch.exception, launch.error = exc, scrub(f"{type(exc).__name__}: {exc}")
            finally:
                launch.done.set()

    def _webitel(self):
        from jobs.wiring import webitel_client

        return webitel_client(self.config)


def _user_of(conflict: dict) -> str:
    """Whom a conflict is about, as the resolutions take it: the Webitel id when known (usernames
    can change), else the Id of the Creatio record in its label (``Creatio record 'x' (<Id>)``)."""
    if conflict.get("webitel_id") is not None:
        return str(conflict["webitel_id"])
    label = str(conflict.get("user") or "")
    record = GUID.search(label)
    if record:
        return record.group(0)
    if label:
        return label
    raise Refused("this conflict is not about one Webitel user; it cannot be linked or ignored")


def _resolution_key(conflict: dict) -> str | None:
    """The key of a conflict's resolution in the store (``jobs.plan.resolutions.resolution_key``)."""
    if conflict.get("webitel_id") is not None:
        return str(conflict["webitel_id"])
    found = GUID.search(str(conflict.get("user") or ""))
    return f"record:{found.group(0).lower()}" if found else None


def history_health(config: AppConfig, store, *, clock: Callable[[], datetime] = utcnow):
    """``health()`` from the run history alone, for a console without a worker (``demo --console``)."""
    from jobs.worker.job import HISTORY_WINDOW
    from jobs.worker.schedule import interval_s, make_triggers
    from jobs.worker.status import BackoffPolicy, health, job_status

    triggers = make_triggers(config)
    policy = BackoffPolicy(
        after_failures=config.schedule.backoff_after_failures, max_s=config.schedule.max_backoff_minutes * 60
    )
    started = clock()

    def current() -> tuple[bool, dict[str, Any]]:
        now = clock()
        jobs = {}
        for name, trigger in triggers.items():
            status = job_status(
                name,
                store.recent_runs(HISTORY_WINDOW, job=name),
                policy=policy,
                interval_s=interval_s(trigger, now),
            )
            _, jobs[name] = health(
                status, now=now, interval_s=interval_s(trigger, now), worker_started_at=started
            )
        ok = all(body["healthy"] for body in jobs.values())
        return ok, {
            "healthy": ok,
            "scheduled": False,
            "started_at": started.isoformat(timespec="seconds"),
            "jobs": jobs,
        }

    return current
