"""The users job (``GetWebitelUsers``): read both sides, plan, apply, record.

``run_users`` is called by the cycle (``jobs.sync.cycle``) for ``run``, ``demo`` and the worker;
tests call it directly.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable, Mapping

from connector.creatio.records import WebitelUserRecord

from jobs.apply.engine import ApplyResult, apply_plan
from jobs.apply.users import user_links, user_steps
from jobs.config import AppConfig
from jobs.plan import UserPlanOptions, plan_users
from jobs.plan.provision import ProvisionOptions
from jobs.plan.resolutions import carry_over, split_ignored
from jobs.read.snapshots import AgreedFields
from jobs.read.changes import read_changes, read_scoped
from jobs.read.lookup import ReadStats
from jobs.read.users import read_users_snapshot
from jobs.report import RunReport
from jobs.sync.resolutions import earlier_conflicts
from jobs.sync import watermarks
from jobs.sync.recording import (budget_guard, record_plan_events, recorded_run, refuse, utcnow,
                                 webitel_domain)

log = logging.getLogger(__name__)


def user_plan_options(config: AppConfig, approve: Mapping[str, int] | None = None) -> UserPlanOptions:
    prov = config.provisioning
    # Provisioning needs somewhere to write the new Webitel id back (or the state links).
    provisioning = ProvisionOptions(enabled=prov.enabled, on_delete=prov.on_delete,
                                    owners={"name": "webitel", "extension": "webitel", **prov.owner})
    return UserPlanOptions(account_name=config.account_name, on_missing=config.sync.on_missing,
                           provisioning=provisioning,
                           max_deactivations=config.sync.max_deactivations,
                           max_deactivation_share=config.sync.max_deactivation_share,
                           sync_extension_communication=config.sync.sync_extension_communication,
                           mapped_fields=WebitelUserRecord.mapped_fields(config.creatio.objects),
                           approved_deactivations=(approve or {}).get("deactivations", 0),
                           required_fields=frozenset(config.creatio.objects.webitel_user.required))


def load_links(store) -> tuple[dict[str, str], dict[str, AgreedFields]]:
    """The users' links (Webitel id -> record Id) and the field baselines kept with them, compactly."""
    links: dict[str, str] = {}
    baselines: dict[str, AgreedFields] = {}
    for link in store.iter_link_rows("webitel_user"):
        links[link.source_key] = link.target_id
        if link.extra:
            baselines[link.source_key] = AgreedFields(
                link.extra.get("name", ""), link.extra.get("extension", "")
            )
    return links, baselines


def run_users(
    config: AppConfig,
    *,
    webitel,
    creatio,
    store,
    dry_run: bool = False,
    clock: Callable[[], datetime] = utcnow,
    progress=None,
    stop_requested: Callable[[], bool] = lambda: False,
    heartbeat: Callable[[], bool] = lambda: True,
    approve: Mapping[str, int] | None = None,
    run_id: str | None = None,
    full: bool = False,
) -> RunReport:
    """Import every Webitel user into Creatio (the ``GetWebitelUsers`` job).

    ``heartbeat`` renews the run lock between batches; when it reports the lock lost, or
    ``stop_requested`` turns True (a signal), the run stops after the batch in flight and is
    recorded as interrupted. ``approve`` (``{"deactivations": N}``) lets this one run go over the
    deactivation cap up to N; the approval is recorded with the run. The run reads only what
    changed since the last one (``incremental``) while a watermark exists and the last full read
    is younger than ``[sync] full_every``; ``full`` (``run --full``) reads everything.
    """
    since = creatio.counter.total() if hasattr(creatio, "counter") else 0
    with recorded_run(store, "users", dry_run, clock, run_id=run_id,
                      clients={"webitel": webitel, "creatio": creatio}) as report:
        say = progress.phase if progress else (lambda text: log.info(text))
        domain = webitel_domain(config, webitel, store, clock())
        links, baselines = load_links(store)
        link_resolutions = store.resolutions("link")
        linked_contacts = {wid: r["contact_id"] for wid, r in link_resolutions.items()}
        started = clock()
        # An approved run is there to apply what a full read refused: it reads everything.
        mode = watermarks.cycle_mode(config, store, started, job="users", full=full or bool(approve))
        options = user_plan_options(config, approve)
        snapshot = None
        if mode == "incremental":
            say("reading what changed since the last cycle")
            mark = watermarks.since(store, "users")
            changes = read_changes(webitel, creatio, config.creatio.objects, since_ms=mark.webitel_ms,
                                   since_modified=mark.creatio, margin_s=config.sync.watermark_margin_s)
            # A user an administrator linked since the last cycle is planned again, changed or not.
            edge = mark.creatio - timedelta(seconds=config.sync.watermark_margin_s)
            changes.resolved = sorted(int(w) for w, r in link_resolutions.items()
                                      if w.isdigit() and r["at"] and r["at"] >= edge)
            if changes.fallback:
                mode = "full"
                report.details["fallback"] = changes.fallback
            else:
                snapshot = read_scoped(webitel, creatio, config.creatio.objects, changes, domain=domain,
                                       account_name=config.account_name, links=links, baselines=baselines,
                                       linked_contacts=linked_contacts, progress=say)
                stats = ReadStats({"mode": f"incremental: {len(changes.users)} changed Webitel user(s), "
                                           f"{len(changes.records)} changed record(s)"})
                options = replace(options, scoped=True)
        if snapshot is None:
            snapshot, stats = read_users_snapshot(
                webitel,
                creatio,
                config.creatio.objects,
                domain=domain,
                account_name=config.account_name,
                links=links,
                baselines=baselines,
                provisioning=config.provisioning.enabled,
                linked_contacts=linked_contacts,
                progress=say,
            )
        report.details["mode"] = mode
        plan = plan_users(snapshot, options)
        report.details["webitel_users"] = len(snapshot.users)
        if options.scoped:
            # The conflicts of users this cycle did not read are still there: carried, so that
            # every view of the latest run (history, console, exit code) keeps showing them.
            scope = {str(u.id) for u in snapshot.users} | {f"record:{r.id}" for r in snapshot.records}
            plan, carried = carry_over(plan, earlier_conflicts(store, "users"), scope)
            report.details["carried_conflicts"] = carried
        snapshot = None  # the plan holds what apply needs: the snapshot is let go before the writes
        report.plan, report.ignored = split_ignored(plan, store.resolutions("ignore"))
        if approve:
            report.details["approved"] = dict(approve)
        report.details["read"] = stats.strategies
        report.details["read_floor"] = stats.floor

        guard = budget_guard(config, store, creatio, report.plan, since=since, now=clock())
        if guard is not None and not dry_run:
            report.plan = refuse(report.plan, guard)
        if not dry_run and report.plan.actions and stop_requested():
            report.interrupted = True  # stopped before the first write: nothing applied
        elif not dry_run and report.plan.actions:
            say(f"writing {report.plan.writes} changes")
            steps = user_steps(
                webitel, creatio, config.creatio.objects, password=config.provisioning.password
            )
            report.applied = ApplyResult()
            apply_plan(
                report.plan,
                steps,
                store=store,
                run_id=report.run_id,
                now=clock,
                links_of=user_links,
                progress=progress.advance if progress else (lambda d, t: None),
                stop_requested=lambda: not heartbeat() or stop_requested(),
                result=report.applied,
            )
            report.interrupted = report.applied.stopped
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
        if not dry_run and not report.interrupted and report.plan.guard is None:
            # Only a cycle that read and applied everything moves the watermarks on (a run that
            # failed raised before here).
            watermarks.advance(store, "users", started=started, mode=mode, now=clock())
    return report
