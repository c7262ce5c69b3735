"""``license-upload`` and ``license assign|revoke``: the admin's licence actions, mirrored to Creatio.

Assign and revoke follow the same rules as the sync (an expired, not-yet-valid or full licence
is refused), change the user's complete grant list from a fresh read, then mirror the change to
Creatio's "User Licenses" at once and move the licence baseline for that grant, so the next sync
sees nothing to do. Each action is recorded as a run in the history.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from connector.creatio import odata
from connector.creatio.batch import BatchOp
from connector.creatio.records import GrantRecord, LicenseRecord
from connector.errors import ApiError, ConfigError, SyncError
from mappings import keys

from . import exit_codes
from .config import AppConfig
from .logs import register_secrets
from .plan.licenses import catalog_values
from .runner import utcnow, webitel_domain
from .state import Event
from .wiring import creatio_client, state_store, webitel_client


class Refused(SyncError):
    """The licence action is not allowed (expired, not yet valid, no seat, unknown user)."""


def read_key(key: str | None, file: str | None, stdin: TextIO = sys.stdin) -> str:
    """The licence key from the argument, ``-`` (standard input) or ``--file``."""
    if file:
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
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
            print(f"extended  {lic.title:<16} {serial}  valid till {was} -> {till}, limit {old.limit} -> {lic.limit}",
                  file=out)
            changes += 1
    if not changes:
        print("the key was accepted but changed no licence (already uploaded?)", file=out)
    print("Creatio's licence catalog follows on the next `run` (or `run --job licenses`).", file=out)
    return exit_codes.OK


def resolve_license(licenses, wanted: str, now: datetime):
    """A licence by serial, or by product when exactly one valid licence of it exists."""
    by_serial = [l for l in licenses if l.serial.lower() == wanted.lower()]
    if by_serial:
        return by_serial[0]
    of_product = [l for l in licenses if l.product.casefold() == wanted.casefold()]
    valid = [l for l in of_product if l.refusal(now) in (None, "license_limit_reached")]
    if len(valid) == 1:
        return valid[0]
    if not of_product:
        raise Refused(f"no licence with serial or product {wanted!r}")
    raise Refused(f"{len(valid)} valid {wanted} licences: name one by serial ("
                  + ", ".join(l.serial for l in of_product) + ")")


def change_grant(config: AppConfig, action: str, username: str, wanted: str, *, out: TextIO, webitel=None,
                 creatio=None, now: datetime | None = None) -> int:
    """Grant (``assign``) or remove (``revoke``) one licence, then mirror it to Creatio."""
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    now = now or utcnow()
    user = webitel.find_user(username)
    if user is None:
        raise Refused(f"no Webitel user {username!r}")
    lic = resolve_license(webitel.list_licenses(), wanted, now)
    serial = lic.serial.lower()
    fresh = webitel.get_user(user.id, fields=("id", "username", "license"))
    held = {s.lower(): s for s in fresh.serials}
    label = f"{user.username} (id {user.id})"
    if action == "assign" and serial not in held:
        refusal = lic.refusal(now)
        if refusal:
            raise Refused(f"{refusal}: {lic.title} ({lic.serial}) cannot be granted to {label}: "
                          + {"license_expired": f"it expired on {lic.valid_till:%d.%m.%Y}",
                             "license_not_yet_valid": f"it is valid from {lic.valid_from:%d.%m.%Y}",
                             "license_limit_reached": f"all {lic.limit} seats are taken"}[refusal])
        held[serial] = lic.serial
    elif action == "revoke" and serial in held:
        held.pop(serial)
    else:
        print(f"{label} {'already holds' if action == 'assign' else 'does not hold'} {lic.title} ({lic.serial}): "
              "nothing to do in Webitel", file=out)
    if set(held) != {s.lower() for s in fresh.serials}:
        webitel.set_user_licenses(user.id, sorted(held.values()))
        print(f"{action}ed {lic.title} ({lic.serial}) {'to' if action == 'assign' else 'from'} {label} in Webitel",
              file=out)
    with state_store(config) as store:
        mirrored = _mirror(config, store, creatio, webitel, action, user.id, lic, now)
        print(mirrored, file=out)
    return exit_codes.OK


def _mirror(config: AppConfig, store, creatio, webitel, action: str, webitel_id: int, lic, now: datetime) -> str:
    """Carry one grant change to Creatio's "User Licenses" now and move the baseline for it."""
    model = config.creatio.objects
    if model.webitel_license is None or model.webitel_user_license is None:
        return f"the {model.profile!r} profile has no licence objects: nothing mirrored to Creatio"
    serial = lic.serial.lower()
    run_id = store.start_run("license", dry_run=False, now=now)
    record_id = store.links("webitel_user").get(str(webitel_id))
    if record_id is None:
        rows = creatio.list_rows(model.webitel_user.entity, select=["Id"],
                                 filter=odata.eq(model.webitel_user.webitel_id, str(webitel_id))) \
            if model.webitel_user.webitel_id else []
        record_id = rows[0]["Id"] if rows else None
    if record_id is None:
        store.finish_run(run_id, outcome="conflicts", now=now, counts={}, conflicts=1, errors=0)
        return "the user has no Webitel-user record in Creatio yet: the next sync will carry the grant"
    domain = webitel_domain(config, webitel, store, now)
    licence_entity = LicenseRecord.entity(model)
    found = creatio.list_rows(licence_entity, select=["Id"], filter=odata.eq(model.webitel_license.serial, serial))
    license_id = found[0]["Id"] if found else keys.license_record_id(domain, serial)
    # The grant moved Webitel's "used" count: the catalog record follows with fresh values.
    fresh = next((l for l in webitel.iter_licenses(id=[lic.serial]) if l.serial.lower() == serial), lic)
    values = catalog_values(fresh)
    ops = [BatchOp("PATCH", licence_entity, id=license_id, body=LicenseRecord.to_row(values, model))] if found else [
        BatchOp("POST", licence_entity, body=LicenseRecord.to_row(LicenseRecord(id=license_id, **values), model))]
    grant_entity = GrantRecord.entity(model)
    existing = creatio.list_rows(grant_entity, select=["Id"], filter=odata.and_(
        odata.eq(model.webitel_user_license.user, odata.Guid(record_id)),
        odata.eq(model.webitel_user_license.license, odata.Guid(license_id))))
    if action == "assign" and not existing:
        ops.append(BatchOp("POST", grant_entity, body=GrantRecord.to_row(GrantRecord(
            id=keys.grant_record_id(domain, webitel_id, serial), user_id=record_id, license_id=license_id), model)))
    elif action == "revoke":
        ops += [BatchOp("DELETE", grant_entity, id=row["Id"]) for row in existing]
    results = creatio.batch(ops) if ops else []
    failed = [r for r in results if not r.ok]
    grant = (str(webitel_id), serial)
    event = Event(action=f"{action}_license", object="WebitelGrant", key=f"grant:{webitel_id}:{serial}",
                  new={"license": serial} if action == "assign" else None,
                  old={"license": serial} if action == "revoke" else None,
                  outcome="failed" if failed else "applied", message="; ".join(str(r.error) for r in failed))
    moved = store.has_baseline() and not failed
    store.record_applied(run_id, [event], baseline_add=[grant] if moved and action == "assign" else [],
                         baseline_remove=[grant] if moved and action == "revoke" else [], now=now)
    store.finish_run(run_id, outcome="failed" if failed else "in_sync", now=now,
                     counts={f"{action}_license": 1}, conflicts=0, errors=len(failed))
    if failed:
        return f"Webitel changed, but mirroring to Creatio failed: {failed[0].error}; the next sync will retry"
    return "mirrored to Creatio's User Licenses" if ops else "Creatio's User Licenses already agree"
