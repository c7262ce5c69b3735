"""One run of the licences job: catalog to Creatio, grants merged both ways, baseline advanced."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from .apply import apply_plan, batch_step
from .apply_licenses import catalog_op, license_steps, sides_after
from .config import AppConfig
from .plan import Action, Issue, Plan
from .plan.grants import next_baseline
from .plan.licenses import LicensePlanOptions, LicenseSnapshot, plan_licenses
from .read_licenses import read_license_snapshot
from .report import RunReport
from .runner import record_plan_events, recorded_run, utcnow, webitel_domain

log = logging.getLogger(__name__)


def license_plan_options(config: AppConfig) -> LicensePlanOptions:
    lic = config.licenses
    return LicensePlanOptions(first_run_winner=lic.first_run_winner, max_revocations=lic.max_revocations,
                              max_revocation_share=lic.max_revocation_share)


def run_licenses(config: AppConfig, *, webitel, creatio, store, dry_run: bool = False,
                 clock: Callable[[], datetime] = utcnow, progress=None,
                 stop_requested: Callable[[], bool] = lambda: False,
                 heartbeat: Callable[[], bool] = lambda: True) -> RunReport:
    """Push the licence catalog to Creatio and merge grants both ways (see ``jobs.plan.licenses``)."""
    model = config.creatio.objects
    with recorded_run(store, "licenses", dry_run, clock) as report:
        say = progress.phase if progress else (lambda text: log.info(text))
        if model.webitel_license is None or model.webitel_user_license is None:
            report.plan = Plan("licenses", warnings=(Issue(
                "licenses_not_in_profile", f"the {model.profile!r} object profile has no licence objects: "
                "licences are not synchronised"),))
            return report
        domain = webitel_domain(config, webitel, store, clock())
        baseline = frozenset(store.baseline()) if store.has_baseline() else None
        snapshot, floor = read_license_snapshot(webitel, creatio, model, domain=domain,
                                                links=store.links("webitel_user"), baseline=baseline, now=clock(),
                                                progress=say)
        report.plan, sets = plan_licenses(snapshot, license_plan_options(config))
        report.details["read_floor"] = floor
        if not dry_run:
            if report.plan.actions:
                say(f"writing {report.plan.writes} licence changes")
                serial_case = {lic.serial.lower(): lic.serial for lic in snapshot.licenses}
                report.applied = apply_plan(report.plan, license_steps(webitel, creatio, model, serial_case),
                                            store=store, run_id=report.run_id, now=clock,
                                            progress=progress.advance if progress else (lambda d, t: None),
                                            stop_requested=lambda: not heartbeat() or stop_requested())
                report.interrupted = report.applied.stopped
                _refresh_used(report, snapshot, webitel, creatio, model, store, report.run_id, clock)
            after_w, after_c = sides_after(sets.webitel, sets.creatio, report.applied)
            store.set_baseline(next_baseline(after_w, after_c, sets.baseline), now=clock())
        record_plan_events(store, report.run_id, report.plan, clock(), actions=dry_run)
    return report


def _refresh_used(report: RunReport, snapshot: LicenseSnapshot, webitel, creatio, model, store, run_id: str,
                  clock) -> None:
    """After grants changed in Webitel, its "used" counts moved: carry them in the same run.

    Without this the next run would find the catalog stale and plan updates, and a run would not
    leave both sides in sync.
    """
    if report.applied is None or not report.applied.ok_actions("grant_webitel", "revoke_webitel"):
        return
    # serial -> (record Id, "used" as Creatio has it now, after the catalog step)
    written = {r.serial.lower(): (r.id, r.used) for r in snapshot.license_records}
    for action in report.applied.ok_actions("create_license", "update_license"):
        serial = action.key.split(":", 1)[1]
        before = written.get(serial, (action.id, None))[1]
        written[serial] = (action.id, (action.new or {}).get("used", before))
    updates = tuple(Action("update_license", "WebitelLicense", written[serial][0], f"license:{serial}",
                           old={"used": written[serial][1]}, new={"used": lic.used})
                    for lic in webitel.iter_licenses()
                    if (serial := lic.serial.lower()) in written and written[serial][1] != lic.used)
    if not updates:
        return
    step = batch_step(("update_license",), creatio, lambda a: catalog_op(a, model))
    extra = apply_plan(Plan("licenses", updates), [step], store=store, run_id=run_id, now=clock)
    report.plan = Plan(report.plan.job, report.plan.actions + updates, report.plan.conflicts, report.plan.warnings,
                       report.plan.errors, report.plan.guard, report.plan.stats)
    report.applied.outcomes.extend(extra.outcomes)
    report.applied.errors.extend(extra.errors)
