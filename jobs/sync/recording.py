"""What every run shares: its record in the history (started, tagged in the logs, finished with
its outcome), the audit trail of its plan, and the Webitel domain every deterministic Id uses."""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

from connector.errors import SyncError

from jobs.config import AppConfig
from jobs.logs import bind_run, scrub, unbind_run
from jobs.plan import Issue, Plan
from jobs.report import RunReport
from jobs.state import Event

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def webitel_domain(config: AppConfig, webitel, store, now: datetime) -> str:
    """The Webitel domain: configured, else the one the credentials belong to (asked once, kept).

    It is part of every deterministic Id, so it must not change between runs.
    """
    if config.webitel.domain:
        return config.webitel.domain
    known = store.get_value("webitel.domain")
    if known:
        return known
    domain = str(webitel.userinfo().get("domain") or config.account_name)
    store.set_value("webitel.domain", domain, now=now)
    return domain


@contextmanager
def recorded_run(store, job: str, dry_run: bool, clock: Callable[[], datetime],
                 run_id: str | None = None, clients: Mapping[str, Any] | None = None) -> Iterator[RunReport]:
    """One run's bookkeeping: started in the history, tagged in the logs, finished with its outcome.

    Whatever the block raises is recorded as the run's failure (scrubbed of secrets) and raised
    on; a ``KeyboardInterrupt`` (or ``SystemExit``, a signal's way out) records the run as
    interrupted, with the counts of what had landed. ``run_id`` is given by a caller that answers
    with it before the run starts (the API). The requests the ``clients`` made during the run are
    reported (``details["requests"]``) and added to the day's counts in the store (the request
    budget).
    """
    before = {system: _requests(client) for system, client in (clients or {}).items()}
    run_id = store.start_run(job, dry_run=dry_run, now=clock(), run_id=run_id)
    token = bind_run(run_id, job)
    report = RunReport(run_id, job, dry_run, Plan(job))
    try:
        yield report
    except SyncError as exc:
        report.failure = scrub(str(exc))
        exc.run_id = run_id  # for the caller that reports the failure (``run --json``)
        raise
    except Exception as exc:  # a bug must not be recorded as a successful run
        report.failure = scrub(f"{type(exc).__name__}: {exc}")
        raise
    except BaseException:  # Ctrl-C twice, or the process told to exit: what landed stays
        report.interrupted = True
        raise
    finally:
        made = {system: _requests(client) - before[system] for system, client in (clients or {}).items()}
        if made:
            report.details["requests"] = made
            for system, count in made.items():
                store.add_requests(system, clock().date(), count)
        store.finish_run(
            run_id,
            outcome=report.outcome,
            now=clock(),
            counts=report.counts(),
            conflicts=len(report.plan.conflicts),
            errors=len(report.errors),
            report=summary(report),
        )
        unbind_run(token)


def _requests(client) -> int:
    counter = getattr(client, "counter", None)
    return counter.total() if counter is not None and hasattr(counter, "total") else 0


# Actions written to Webitel, not Creatio: they cost no Creatio request.
WEBITEL_OBJECTS = frozenset({"WebitelAccount", "WebitelGrant"})


def budget_guard(config: AppConfig, store, creatio, plan: Plan, *, since: int, now: datetime) -> Issue | None:
    """A ``request_budget`` refusal when this run's Creatio requests would exceed what is left of
    today's ``[creatio] daily_request_budget`` (None without a budget, or when it fits).

    Args:
        since: the Creatio client's request total when the run started (the reads made since count).
    """
    budget = getattr(config.creatio, "daily_request_budget", None)
    if budget is None:
        return None
    day = now.astimezone(timezone.utc).date()
    used = store.requests_on("creatio", day)
    reading = _requests(creatio) - since
    writes = sum(1 for a in plan.actions if a.writes and a.object not in WEBITEL_OBJECTS)
    needed = reading + math.ceil(writes / config.creatio.batch_size)
    left = budget - used
    if needed <= left:
        return None
    return Issue("request_budget", f"this run needs {needed} Creatio requests ({reading} made reading, "
                 f"{needed - reading} to write) and {max(left, 0)} are left of today's budget of {budget} "
                 f"(UTC {day}, {used} used); nothing was written. Raise [creatio] daily_request_budget, "
                 "or let tomorrow's runs go on")


def refuse(plan: Plan, guard: Issue) -> Plan:
    """The plan stopped by ``guard`` before any write: no actions, the guard as its conflict."""
    return replace(plan, actions=(), guard=guard, conflicts=(*plan.conflicts, guard))


def record_plan_events(store, run_id: str, plan: Plan, when: datetime, *, actions: bool) -> None:
    """Conflicts, errors and warnings (and, on a dry run, the planned actions) into the audit trail."""
    events = (
        [
            Event(action=a.kind, object=a.object, key=a.key, old=a.old, new=a.new, outcome="planned")
            for a in plan.actions
        ]
        if actions
        else []
    )
    for outcome, issues in (("conflict", plan.conflicts), ("error", plan.errors), ("warning", plan.warnings)):
        events += [
            Event(
                action=i.kind,
                object=i.field or "run",
                key=f"webitel_user:{i.webitel_id}" if i.webitel_id is not None else i.kind,
                outcome=outcome,
                message=i.message,
                new={"others": list(i.others)} if i.others else None,
            )
            for i in issues
        ]
    if events:
        store.record_events(run_id, events, now=when)


def summary(report: RunReport) -> dict:
    # The stored report keeps conflicts and errors in full but not every action (events hold those).
    data = report.as_json(actions=False)
    data.pop("actions", None)
    return data
