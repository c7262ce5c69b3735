"""One run of a job: read, plan, apply, report, with the run recorded in the state store.

``run_users`` is the plain function behind ``run``, ``demo`` and the scheduled worker; tests call
it directly.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator

from connector.errors import ConnectorError, SyncError

from .apply import apply_plan
from .apply_users import record_fields, user_links, user_steps
from .config import AppConfig
from .logs import bind_run, scrub, unbind_run
from .plan import Plan, UserPlanOptions, plan_users
from .plan.provision import Baseline, ProvisionOptions
from .read_users import read_users_snapshot
from .report import RunReport

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def user_plan_options(config: AppConfig) -> UserPlanOptions:
    fields = record_fields(config.creatio.objects)
    prov = config.provisioning
    # Provisioning needs somewhere to write the new Webitel id back (or the state links).
    provisioning = ProvisionOptions(enabled=prov.enabled, on_delete=prov.on_delete,
                                    owners={"name": "webitel", "extension": "webitel", **prov.owner})
    return UserPlanOptions(account_name=config.account_name, on_missing=config.sync.on_missing,
                           provisioning=provisioning,
                           max_deactivations=config.sync.max_deactivations,
                           max_deactivation_share=config.sync.max_deactivation_share,
                           sync_extension_communication=config.sync.sync_extension_communication,
                           record_fields=fields)


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
def recorded_run(store, job: str, dry_run: bool, clock: Callable[[], datetime]) -> Iterator[RunReport]:
    """One run's bookkeeping: started in the history, tagged in the logs, finished with its outcome.

    Whatever the block raises is recorded as the run's failure (scrubbed of secrets) and raised on.
    """
    run_id = store.start_run(job, dry_run=dry_run, now=clock())
    token = bind_run(run_id, job)
    report = RunReport(run_id, job, dry_run, Plan(job))
    try:
        yield report
    except (ConnectorError, SyncError) as exc:
        report.failure = scrub(str(exc))
        raise
    except Exception as exc:  # a bug must not be recorded as a successful run
        report.failure = scrub(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.finish_run(run_id, outcome=report.outcome, now=clock(), counts=report.counts(),
                         conflicts=len(report.plan.conflicts), errors=len(report.errors), report=summary(report))
        unbind_run(token)


def load_links(store) -> tuple[dict[str, str], dict[str, Baseline]]:
    """The users' links (Webitel id -> record Id) and the field baselines kept with them, compactly."""
    links: dict[str, str] = {}
    baselines: dict[str, Baseline] = {}
    for link in store.iter_link_rows("webitel_user"):
        links[link.source_key] = link.target_id
        if link.extra:
            baselines[link.source_key] = Baseline(link.extra.get("name", ""), link.extra.get("extension", ""))
    return links, baselines


def run_users(config: AppConfig, *, webitel, creatio, store, dry_run: bool = False,
              clock: Callable[[], datetime] = utcnow, progress=None,
              stop_requested: Callable[[], bool] = lambda: False,
              heartbeat: Callable[[], bool] = lambda: True) -> RunReport:
    """Import every Webitel user into Creatio (the ``GetWebitelUsers`` job).

    ``heartbeat`` renews the run lock between batches; when it reports the lock lost, the run stops
    after the batch in flight and is recorded as interrupted.
    """
    with recorded_run(store, "users", dry_run, clock) as report:
        say = progress.phase if progress else (lambda text: log.info(text))
        domain = webitel_domain(config, webitel, store, clock())
        links, baselines = load_links(store)
        snapshot, stats = read_users_snapshot(
            webitel, creatio, config.creatio.objects, domain=domain, account_name=config.account_name,
            links=links, baselines=baselines, provisioning=config.provisioning.enabled, progress=say)
        report.plan = plan_users(snapshot, user_plan_options(config))
        report.details["read"] = stats.strategies
        report.details["read_floor"] = stats.floor
        report.details["webitel_users"] = len(snapshot.users)
        if not dry_run and report.plan.actions:
            say(f"writing {report.plan.writes} changes")
            steps = user_steps(webitel, creatio, config.creatio.objects, password=config.provisioning.password)
            report.applied = apply_plan(report.plan, steps, store=store,
                                        run_id=report.run_id, now=clock, links_of=user_links,
                                        progress=progress.advance if progress else (lambda d, t: None),
                                        stop_requested=lambda: not heartbeat() or stop_requested())
            report.interrupted = report.applied.stopped
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
    return report


def record_plan_events(store, run_id: str, plan: Plan, when: datetime, *, actions: bool) -> None:
    """Conflicts, errors and warnings (and, on a dry run, the planned actions) into the audit trail."""
    from .state import Event

    events = [Event(action=a.kind, object=a.object, key=a.key, old=a.old, new=a.new, outcome="planned")
              for a in plan.actions] if actions else []
    for outcome, issues in (("conflict", plan.conflicts), ("error", plan.errors), ("warning", plan.warnings)):
        events += [Event(action=i.kind, object=i.field or "run",
                         key=f"webitel_user:{i.webitel_id}" if i.webitel_id is not None else i.kind,
                         outcome=outcome, message=i.message, new={"others": list(i.others)} if i.others else None)
                   for i in issues]
    if events:
        store.record_events(run_id, events, now=when)


def summary(report: RunReport) -> dict:
    # The stored report keeps conflicts and errors in full but not every action (events hold those).
    data = report.as_json(actions=False)
    data.pop("actions", None)
    return data
