"""One run of the licences job: catalog to Creatio, grants merged both ways, baseline advanced."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Callable, Mapping


from jobs.apply.engine import ApplyResult, apply_plan
from jobs.apply.licenses import license_steps, sides_after
from jobs.config import AppConfig
from jobs.plan import Issue, Plan
from jobs.plan.grants import next_baseline
from jobs.plan.licenses import LicensePlanOptions, plan_licenses
from jobs.plan.resolutions import carry_over, split_ignored
from jobs.read.license_changes import (RowsSeen, find_deleted, own_row, read_license_changes,
                                       read_license_scope)
from jobs.read.licenses import read_catalog, read_license_snapshot
from jobs.report import RunReport
from jobs.sync.resolutions import earlier_conflicts
from jobs.sync import watermarks
from jobs.sync.recording import (budget_guard, record_plan_events, recorded_run, refuse, utcnow,
                                 webitel_domain)

log = logging.getLogger(__name__)


def license_plan_options(config: AppConfig, approve: Mapping[str, int] | None = None) -> LicensePlanOptions:
    lic = config.licenses
    return LicensePlanOptions(first_run_winner=lic.first_run_winner, max_revocations=lic.max_revocations,
                              max_revocation_share=lic.max_revocation_share,
                              approved_revocations=(approve or {}).get("revocations", 0))


def run_licenses(config: AppConfig, *, webitel, creatio, store, dry_run: bool = False,
                 clock: Callable[[], datetime] = utcnow, progress=None,
                 stop_requested: Callable[[], bool] = lambda: False,
                 heartbeat: Callable[[], bool] = lambda: True,
                 approve: Mapping[str, int] | None = None, run_id: str | None = None,
                 full: bool = False) -> RunReport:
    """Push the licence catalog to Creatio and merge grants both ways (see ``jobs.plan.licenses``).

    Stopping and ``approve`` (``{"revocations": N}``) work as in ``jobs.sync.users.run_users``, and
    so do incremental cycles (``jobs.read.license_changes``): between full reads a cycle plans only
    the users whose grants changed on either side.
    """
    model = config.creatio.objects
    since = creatio.counter.total() if hasattr(creatio, "counter") else 0
    with recorded_run(store, "licenses", dry_run, clock, run_id=run_id,
                      clients={"webitel": webitel, "creatio": creatio}) as report:
        say = progress.phase if progress else (lambda text: log.info(text))
        if model.webitel_license is None or model.webitel_user_license is None:
            report.plan = Plan("licenses", warnings=(Issue(
                "licenses_not_in_profile", f"the {model.profile!r} object profile has no licence objects: "
                "licences are not synchronised"),))
            return report
        domain = webitel_domain(config, webitel, store, clock())
        started = clock()
        margin = config.sync.watermark_margin_s
        seen = rows_seen(store)
        mode = watermarks.cycle_mode(config, store, started, job="licenses", full=full or bool(approve))
        if not store.has_baseline() or seen is None:
            mode = "full"
        snapshot, scope, changes = None, None, None
        if mode == "incremental":
            snapshot, scope, changes, reason = _read_incremental(
                config, webitel, creatio, store, domain=domain, seen=seen, now=clock(), progress=say
            )
            if snapshot is None:
                mode = "full"
                report.details["fallback"] = reason
        if snapshot is None:
            baseline = frozenset(store.baseline()) if store.has_baseline() else None
            snapshot, floor = read_license_snapshot(
                webitel,
                creatio,
                model,
                domain=domain,
                links=store.links("webitel_user"),
                baseline=baseline,
                now=clock(),
                progress=say,
                created_after=started - timedelta(seconds=margin),
            )
            report.details["read_floor"] = floor
        report.details["mode"] = mode
        if changes is not None and changes.missing:
            report.details["deleted_rows"] = (f"{changes.missing}; the table read whole: "
                                              f"{len(changes.vanished)} user(s) lost a row")
        plan, sets = plan_licenses(snapshot, license_plan_options(config, approve))
        # What apply and the next cycle need of the snapshot; the snapshot itself (every grant row,
        # every user's grants) is let go before the writes.
        serial_case = {lic.serial.lower(): lic.serial for lic in snapshot.licenses}
        rows = _rows_read(snapshot, changes, domain)
        snapshot = None
        if scope is not None:
            plan, carried = carry_over(plan, earlier_conflicts(store, "licenses"), {*scope})
            report.details["carried_conflicts"] = carried
        report.plan, report.ignored = split_ignored(plan, store.resolutions("ignore"))
        if approve:
            report.details["approved"] = dict(approve)
        guard = budget_guard(config, store, creatio, report.plan, since=since, now=clock())
        if guard is not None and not dry_run:
            report.plan = refuse(report.plan, guard)
        if not dry_run and guard is None:
            if report.plan.actions and stop_requested():
                report.interrupted = True  # stopped before the first write: nothing applied
            elif report.plan.actions:
                say(f"writing {report.plan.writes} licence changes")
                report.applied = ApplyResult()
                apply_plan(
                    report.plan,
                    license_steps(webitel, creatio, model, serial_case),
                    store=store,
                    run_id=report.run_id,
                    now=clock,
                    progress=progress.advance if progress else (lambda d, t: None),
                    stop_requested=lambda: not heartbeat() or stop_requested(),
                    result=report.applied,
                )
                report.interrupted = report.applied.stopped
            after_w, after_c = sides_after(sets.webitel, sets.creatio, report.applied)
            agreed = next_baseline(after_w, after_c, sets.baseline)
            if scope is None:
                store.set_baseline(agreed, now=clock())
            elif scope:
                store.set_baseline_of(scope, agreed, now=clock())
            if not report.interrupted and report.plan.guard is None:
                _advance(store, creatio, model, report, rows, started=started, margin=margin, now=clock)
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
    return report


ROWS_SEEN = "licenses.rows_seen"


def rows_seen(store) -> RowsSeen | None:
    """What the last licences run left in the "User Licenses" table (None before one recorded it,
    or when the stored value does not read: the next sync then reads everything)."""
    try:
        data = json.loads(store.get_value(ROWS_SEEN) or "")
        return RowsSeen(int(data["count"]), datetime.fromisoformat(data["ended_at"]),
                        frozenset(data["recent_ids"]))
    except (TypeError, ValueError, KeyError):
        return None


def _read_incremental(
    config: AppConfig, webitel, creatio, store, *, domain: str, seen: RowsSeen, now: datetime, progress
):
    """``(snapshot, scope, changes, "")``, or ``(None, None, None, why)`` when a full read must be made."""
    model = config.creatio.objects
    mark = watermarks.since(store, "licenses")
    progress("reading what changed since the last licence sync")
    catalog_issues: list[Issue] = []
    licenses, license_records = read_catalog(webitel, creatio, model, catalog_issues)
    serials = {r.id: r.serial.lower() for r in license_records if r.serial}
    record_wids = {rid: wid for wid, rid in store.links("webitel_user").items()}
    changes = read_license_changes(
        webitel,
        creatio,
        model,
        domain=domain,
        since_ms=mark.webitel_ms,
        since_modified=mark.creatio,
        margin_s=config.sync.watermark_margin_s,
        seen=seen,
        record_wids=record_wids,
        serials=serials,
    )
    if changes.fallback:
        return None, None, None, changes.fallback
    if changes.missing:
        progress("rows were deleted in Creatio: reading the User Licenses table to find whose")
        why = find_deleted(creatio, model, changes, baseline=store.baseline(), record_wids=record_wids,
                           serials=serials)
        if why:
            return None, None, None, why
    total = store.baseline_size()
    snapshot, why = read_license_scope(
        webitel,
        creatio,
        model,
        changes,
        domain=domain,
        licenses=licenses,
        license_records=license_records,
        catalog_issues=catalog_issues,
        record_wids=record_wids,
        baseline_of=store.baseline_of,
        outside_grants=lambda n: total - n,
        now=now,
    )
    if snapshot is None:
        return None, None, None, why
    return snapshot, set(snapshot.webitel_grants), changes, ""


def _rows_read(snapshot, changes, domain: str) -> tuple[int | None, list[tuple[str, datetime]]]:
    """What the read saw of the "User Licenses" table: its row count (None when unreadable rows
    leave it unknown) and the rows others created lately (Id, CreatedOn)."""
    if changes is not None:
        return changes.total_rows, list(changes.created)
    wids = {rid: wid for wid, rid in snapshot.user_record_ids.items()}
    serials = {r.id: r.serial.lower() for r in snapshot.license_records if r.serial}
    recent = [(row.id, created) for row, created in snapshot.recent_rows
              if not own_row(row, domain, wids, serials)]
    return (None if snapshot.invalid else len(snapshot.grant_rows)), recent


def _advance(store, creatio, model, report: RunReport, rows: tuple[int | None, list[tuple[str, datetime]]], *,
             started: datetime, margin: float, now: Callable[[], datetime]) -> None:
    """Move the watermarks on and remember the rows the table holds now (see ``rows_seen``)."""
    wrote_rows = report.applied is not None and any(
        o.ok and o.action.kind in ("create_grant_row", "delete_grant_row") for o in report.applied.outcomes
    )
    count, created = rows
    if wrote_rows or count is None:  # the table says what the run left in it
        count = creatio.count(model.webitel_user_license.entity)
    ended = now()
    edge = ended - timedelta(seconds=margin)
    recent = [rid for rid, at in created if at > edge]
    store.set_value(
        ROWS_SEEN,
        json.dumps({"count": count, "ended_at": ended.isoformat(), "recent_ids": sorted(recent)}),
        now=ended,
    )
    watermarks.advance(store, "licenses", started=started, mode=report.details["mode"], now=ended)
