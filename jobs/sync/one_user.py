"""One user on demand (``run --user``), both directions, with a step-by-step trace.

Like identity provisioning's "provision on demand": read just that user on both sides, match,
plan with the same planner (scoped: nothing else is taken for vanished), write, and say each
step and each write's outcome. The users part runs first (the record the licences hang on), then
the licences part; the licence baseline moves for this user's grants only.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Callable

from jobs.apply.engine import ApplyResult, apply_plan
from jobs.apply.licenses import license_steps, sides_after
from jobs.apply.users import user_links, user_steps
from jobs.config import AppConfig
from jobs.plan import Plan, plan_users
from jobs.plan.grants import next_baseline
from jobs.plan.licenses import plan_licenses
from jobs.plan.resolutions import split_ignored
from jobs.read.one_user import read_one_user, read_user_licences
from jobs.report import RunReport
from jobs.sync.licenses import license_plan_options
from jobs.sync.recording import record_plan_events, recorded_run, utcnow, webitel_domain
from jobs.sync.users import load_links, user_plan_options

log = logging.getLogger(__name__)


def sync_user(config: AppConfig, user: str, *, webitel, creatio, store, dry_run: bool = False,
              clock: Callable[[], datetime] = utcnow, run_id: str | None = None,
              stop_requested: Callable[[], bool] = lambda: False) -> RunReport:
    """Sync one Webitel user (a username or an id) now; the report's ``details["trace"]`` says how.

    Raises:
        Refused: there is no such Webitel user.
    """
    model = config.creatio.objects
    trace: list[str] = []
    with recorded_run(store, "user", dry_run, clock, run_id=run_id,
                      clients={"webitel": webitel, "creatio": creatio}) as report:
        report.details["trace"] = trace
        domain = webitel_domain(config, webitel, store, clock())
        links, baselines = load_links(store)
        snapshot, found = read_one_user(
            webitel, creatio, model, user=user, domain=domain, account_name=config.account_name, links=links,
            baselines=baselines, trace=trace.append,
            linked_contacts={w: r["contact_id"] for w, r in store.resolutions("link").items()})
        report.details["user"] = {"webitel_id": found.id, "username": found.username}
        options = replace(user_plan_options(config), scoped=True, provision_records=False)
        users_plan, ignored = split_ignored(plan_users(snapshot, options), store.resolutions("ignore"))
        _say_plan(trace, "users", users_plan)
        report.plan, report.ignored = users_plan, ignored
        report.applied = ApplyResult()
        if not dry_run and users_plan.actions and not stop_requested():
            steps = user_steps(webitel, creatio, model, password=config.provisioning.password)
            apply_plan(users_plan, steps, store=store, run_id=report.run_id, now=clock, links_of=user_links,
                       result=report.applied)
            _say_outcomes(trace, report.applied, 0)
        done = len(report.applied.outcomes)
        record_id = _record_id(users_plan, report.applied, snapshot, found.id, dry_run)
        if model.webitel_license is None or model.webitel_user_license is None:
            trace("licences: the object profile has no licence objects; not synchronised")
        elif record_id is None:
            trace("licences: the user has no Webitel-user record yet; its grants follow its import")
        else:
            baseline = frozenset(store.baseline()) if store.has_baseline() else None
            lic_snapshot = read_user_licences(
                webitel,
                creatio,
                model,
                user=found,
                record_id=record_id,
                domain=domain,
                baseline=baseline,
                now=clock(),
                trace=trace.append,
            )
            # The administrator asked for this user: its revocations are approved.
            held = len(lic_snapshot.webitel_grants.get(str(found.id), ())) + len(lic_snapshot.grant_rows)
            lic_plan, sets = plan_licenses(lic_snapshot, license_plan_options(config, {"revocations": held}))
            lic_plan, lic_ignored = split_ignored(lic_plan, store.resolutions("ignore"))
            _say_plan(trace, "licences", lic_plan)
            if not dry_run and lic_plan.actions and not stop_requested():
                serial_case = {lic.serial.lower(): lic.serial for lic in lic_snapshot.licenses}
                apply_plan(
                    lic_plan,
                    license_steps(webitel, creatio, model, serial_case),
                    store=store,
                    run_id=report.run_id,
                    now=clock,
                    result=report.applied,
                )
                _say_outcomes(trace, report.applied, done)
                _move_baseline(store, report.run_id, sets, report.applied, clock())
            report.plan = _joined(users_plan, lic_plan)
            report.ignored = (*ignored, *lic_ignored)
        report.interrupted = stop_requested()
        if dry_run:
            report.applied = None
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
    return report


def _record_id(plan: Plan, applied: ApplyResult, snapshot, webitel_id: int, dry_run: bool) -> str | None:
    """The user's Webitel-user record after the users part: found, or created (planned in a dry run)."""
    wid = str(webitel_id)
    for record in snapshot.records:
        if record.webitel_id == wid or snapshot.links.get(wid) == record.id:
            return record.id
    made = {
        o.action.id for o in applied.outcomes if o.ok and o.action.kind in ("create_record", "link_record")
    }
    for action in plan.actions:
        if action.webitel_id == webitel_id and action.kind in (
            "create_record",
            "link_record",
            "update_record",
        ):
            if dry_run or action.id in made or action.kind == "update_record":
                return action.id
    return None


def _move_baseline(store, run_id: str, sets, applied: ApplyResult, now: datetime) -> None:
    """The baseline moves for this user's grants only (``set_baseline`` would replace everyone's)."""
    if sets.baseline is None:
        return  # before the first full licence sync there is no baseline to move
    after_w, after_c = sides_after(sets.webitel, sets.creatio, applied)
    wanted = next_baseline(after_w, after_c, sets.baseline)
    add, remove = sorted(wanted - sets.baseline), sorted(sets.baseline - wanted)
    if add or remove:
        store.record_applied(run_id, [], baseline_add=add, baseline_remove=remove, now=now)


def _joined(first: Plan, second: Plan) -> Plan:
    return Plan(
        "user",
        first.actions + second.actions,
        first.conflicts + second.conflicts,
        first.warnings + second.warnings,
        first.errors + second.errors,
        first.guard or second.guard,
        {**first.stats, **second.stats},
    )


def _say_plan(trace: list[str], part: str, plan: Plan) -> None:
    if not plan.actions:
        trace.append(f"plan {part}: nothing to change")
    for action in plan.actions:
        change = ""
        if action.new:
            change = ": " + ", ".join(f"{k}={v!r}" for k, v in action.new.items())
        trace.append(f"plan {part}: {action.kind} {action.object}{change}")
    for issue in (*plan.conflicts, *plan.errors):
        trace.append(f"plan {part}: {issue.kind}: {issue.message}")


def _say_outcomes(trace: list[str], applied: ApplyResult, start: int) -> None:
    for outcome in applied.outcomes[start:]:
        how = (
            ("applied (already there)" if outcome.already_existed else "applied")
            if outcome.ok
            else f"failed: {outcome.message}"
        )
        trace.append(f"write {outcome.action.kind} {outcome.action.object}: {how}")
