"""One run of the licences job: catalog to Creatio, grants merged both ways, baseline advanced."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Mapping

from jobs.apply.engine import ApplyResult, apply_plan
from jobs.apply.licenses import license_steps, sides_after
from jobs.config import AppConfig
from jobs.plan import Issue, Plan
from jobs.plan.grants import next_baseline
from jobs.plan.licenses import LicensePlanOptions, plan_licenses
from jobs.plan.resolutions import split_ignored
from jobs.read.licenses import read_license_snapshot
from jobs.report import RunReport
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
                 full: bool = True) -> RunReport:
    """Push the licence catalog to Creatio and merge grants both ways (see ``jobs.plan.licenses``).

    Stopping and ``approve`` (``{"revocations": N}``) work as in ``jobs.sync.users.run_users``.
    Every licences run reads everything (``full`` is accepted for the cycle's sake).
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
        )
        plan, sets = plan_licenses(snapshot, license_plan_options(config, approve))
        report.plan, report.ignored = split_ignored(plan, store.resolutions("ignore"))
        if approve:
            report.details["approved"] = dict(approve)
        report.details["read_floor"] = floor
        guard = budget_guard(config, store, creatio, report.plan, since=since, now=clock())
        if guard is not None and not dry_run:
            report.plan = refuse(report.plan, guard)
        if not dry_run and guard is None:
            if report.plan.actions and stop_requested():
                report.interrupted = True  # stopped before the first write: nothing applied
            elif report.plan.actions:
                say(f"writing {report.plan.writes} licence changes")
                serial_case = {lic.serial.lower(): lic.serial for lic in snapshot.licenses}
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
            store.set_baseline(next_baseline(after_w, after_c, sets.baseline), now=clock())
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
    return report
