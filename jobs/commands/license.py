"""``license-upload`` and ``license assign|revoke``: the admin's licence actions, mirrored to Creatio.

Assign and revoke follow the same rules as the sync (an expired, not-yet-valid or full licence
is refused), change the user's complete grant list from a fresh read, then mirror the change to
Creatio's "User Licenses" at once and move the licence baseline for that grant, so the next sync
sees nothing to do. Each action is recorded as a run in the history.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TextIO

from connector.errors import ApiError, ConfigError, Refused
from mappings.licenses import grant_refusal
from mappings.users import user_label

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.logs import register_secrets
from jobs.apply.engine import apply_plan
from jobs.apply.licenses import license_steps
from jobs.plan.licenses import GrantChange, plan_grant_change
from jobs.read.licenses import read_grant_side
from jobs.report import Fitted
from jobs.sync.recording import record_plan_events, recorded_run, utcnow, webitel_domain
from jobs.wiring import creatio_client, state_store, webitel_client


def read_key(key: str | None, file: str | None, stdin: TextIO = sys.stdin) -> str:
    """The licence key from the argument, ``-`` (standard input) or ``--file``."""
    if file:
        try:
            with open(file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{file}: cannot read the licence key: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    elif key == "-":
        text = stdin.read()
    elif key:
        text = key
    else:
        raise ConfigError("give the licence key, '-' to read it from standard input, or --file PATH")
    text = text.strip()
    if not text:
        raise ConfigError("the licence key is empty")
    return text


def upload_key(config: AppConfig, key: str, *, out: TextIO, webitel=None) -> int:
    """Upload a licence key and print what it added or extended."""
    register_secrets([key])
    webitel = webitel or webitel_client(config)
    before = {l.serial.lower(): l for l in webitel.list_licenses()}
    try:
        webitel.upload_license_key(key)
    except ApiError as exc:
        print(f"licence key rejected: {exc.message}", file=out)
        return exit_codes.FAILED
    after = {l.serial.lower(): l for l in webitel.list_licenses()}
    changes = 0
    for serial, lic in sorted(after.items()):
        old = before.get(serial)
        till = f"{lic.valid_till:%d.%m.%Y}" if lic.valid_till else "-"
        if old is None:
            print(f"added     {lic.title:<16} {serial}  valid till {till}, limit {lic.limit}", file=out)
            changes += 1
        elif (old.valid_till, old.limit, old.valid_from) != (lic.valid_till, lic.limit, lic.valid_from):
            was = f"{old.valid_till:%d.%m.%Y}" if old.valid_till else "-"
            print(
                f"extended  {lic.title:<16} {serial}  valid till {was} -> {till}, "
                f"limit {old.limit} -> {lic.limit}",
                file=out,
            )
            changes += 1
    if not changes:
        print("the key was accepted but changed no licence (already uploaded?)", file=out)
    print("Creatio's licence catalog follows on the next `run` (or `run --job licenses`).", file=out)
    return exit_codes.OK


MIN_SERIAL_PREFIX = 4


def resolve_license(licenses, wanted: str, now: datetime, *, held: frozenset[str] = frozenset(),
                    action: str = "assign"):
    """A licence by serial, by a unique serial prefix, or by product.

    By product: for ``assign`` the one licence of it that can still be granted (valid, a seat
    left or not); for ``revoke`` the one of it the user holds, expired or not.

    Raises:
        Refused: none matches, or several do (they are named).
    """
    text = wanted.strip().lower()
    by_serial = [l for l in licenses if l.serial.lower() == text]
    if by_serial:
        return by_serial[0]
    if len(text) >= MIN_SERIAL_PREFIX:
        prefixed = [l for l in licenses if l.serial.lower().startswith(text)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise Refused(f"serial prefix {wanted!r} fits {len(prefixed)} licences: "
                          + ", ".join(l.serial for l in prefixed))
    of_product = [l for l in licenses if l.product.casefold() == wanted.strip().casefold()]
    if action == "revoke":
        fits = [l for l in of_product if l.serial.lower() in held]
        kind = "held"
    else:
        fits = [
            l for l in of_product if (r := grant_refusal(l, now)) is None or r.kind == "license_limit_reached"
        ]
        kind = "valid"
    if len(fits) == 1:
        return fits[0]
    if not of_product:
        raise Refused(f"no licence with serial, serial prefix or product {wanted!r}")
    raise Refused(
        f"{len(fits)} {kind} {wanted} licences: name one by serial ("
        + ", ".join(l.serial for l in of_product)
        + ")"
    )


def change_grant(
    config: AppConfig,
    action: str,
    username: str,
    wanted: str,
    *,
    out: TextIO,
    webitel=None,
    creatio=None,
    now: datetime | None = None,
) -> int:
    """Grant (``assign``) or remove (``revoke``) one licence, in Webitel and mirrored to Creatio.

    Read, plan (``plan_grant_change``: the licences job's own actions and refusals), apply (the
    licences job's own steps), recorded as a run of the licences job; the baseline moves for the
    grant once both sides agree, so the next sync sees nothing to do.

    Raises:
        Refused: no such user or licence, or the grant breaks a licence rule.
    """
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    now = now or utcnow()
    model = config.creatio.objects
    user = webitel.find_user(username)
    if user is None:
        raise Refused(f"no Webitel user {username!r}")
    fresh = webitel.get_user(user.id, fields=("id", "username", "license"))
    held = frozenset(s.lower() for s in fresh.serials)
    lic = resolve_license(webitel.list_licenses(), wanted, now, held=held, action=action)
    mirrored = model.webitel_license is not None and model.webitel_user_license is not None
    with state_store(config) as store:
        domain = webitel_domain(config, webitel, store, now)
        record_id, license_record, rows = (
            read_grant_side(
                creatio, model, webitel_id=user.id, serial=lic.serial, links=store.links("webitel_user")
            )
            if mirrored
            else (None, None, ())
        )
        plan = plan_grant_change(
            GrantChange(
                action,
                user.id,
                user.username,
                lic,
                held,
                now,
                domain,
                mirrored,
                record_id,
                license_record,
                rows,
            )
        )
        if plan.conflicts:
            raise Refused(f"{plan.conflicts[0].kind}: {plan.conflicts[0].message}")
        if not plan.actions:  # nothing changes on either side: nothing to record as a change
            holds = "already holds" if action == "assign" else "does not hold"
            who = user_label(user.username, user.id)
            print(f"{who} {holds} {lic.title} ({lic.serial}), and Creatio agrees: nothing to do", file=out)
            return exit_codes.OK
        with recorded_run(store, "licenses", False, lambda: now) as report:
            report.plan = plan
            report.details["command"] = f"license {action}"  # one grant: not a cycle's view of all
            steps = license_steps(webitel, creatio, model, {lic.serial.lower(): lic.serial})
            report.applied = apply_plan(plan, steps, store=store, run_id=report.run_id, now=lambda: now)
            record_plan_events(store, report.run_id, plan, now, actions=False)
            _move_baseline(store, report, action, (str(user.id), lic.serial.lower()), now)
    _say(out, report, action, user_label(user.username, user.id), lic)
    return exit_codes.OK if not report.errors else exit_codes.FAILED


def _move_baseline(store, report, action: str, grant: tuple[str, str], now: datetime) -> None:
    """Once both sides agree on the grant, the baseline agrees too (only once a baseline exists)."""
    waiting = any(issue.kind == "grant_without_record" for issue in report.plan.warnings)
    if not store.has_baseline() or report.errors or waiting:
        return
    store.record_applied(
        report.run_id,
        [],
        baseline_add=[grant] if action == "assign" else [],
        baseline_remove=[grant] if action == "revoke" else [],
        now=now,
    )


def _say(out: TextIO, report, action: str, label: str, lic) -> None:
    """What the change did, in a few lines."""
    webitel_kinds = ("grant_webitel", "revoke_webitel")
    if not any(a.kind in webitel_kinds for a in report.plan.actions):
        print(
            f"{label} {'already holds' if action == 'assign' else 'does not hold'} "
            f"{lic.title} ({lic.serial}): "
            "nothing to do in Webitel",
            file=out,
        )
    elif report.applied and report.applied.ok_actions(*webitel_kinds):
        done = "assigned to" if action == "assign" else "revoked from"
        print(f"{lic.title} ({lic.serial}) {done} {label} in Webitel", file=out)
    for issue in report.plan.warnings:
        print(issue.message, file=out)
    if report.errors:
        print(f"failed: {report.errors[0].message}; the next sync will retry", file=out)
    elif any(a.object != "WebitelGrant" for a in report.plan.actions):
        print("mirrored to Creatio's User Licenses", file=out)
    elif not report.plan.warnings:
        print("Creatio's User Licenses already agree", file=out)


def cmd_license_upload(args: argparse.Namespace) -> int:
    """Upload a licence key (argument, ``-`` for standard input, or ``--file``)."""
    config = config_of(args)
    return upload_key(config, read_key(args.key, args.file), out=Fitted(sys.stdout))


def cmd_license(args: argparse.Namespace) -> int:
    """``license assign|revoke USER LICENSE``."""
    return change_grant(config_of(args), args.action, args.user, args.license, out=Fitted(sys.stdout))
