"""The licences job's plan: the catalog pushed to Creatio and grants merged both ways. Pure.

Catalog: every Webitel licence becomes a licence record in Creatio (created with our own Id,
updated when it changes: a renewed key extends its validity), never duplicated.
Grants: ``jobs.plan.grants.merge_grants`` decides; then grants to be made in Webitel are refused
when the licence is expired, not yet valid, unknown, or a named licence has no seat left (the
seats go to the lowest Webitel ids first), and grants of a Creatio row whose user is not linked
are refused. Refused Creatio rows are left in place and reported. Revocations (either side) are
capped: over the cap, nothing is revoked and the run stops with ``revocation_cap``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mappings import keys
from mappings.licenses import CATALOG_FIELDS, catalog_values, grant_refusal
from mappings.users import user_label

from jobs.plan.grants import Grant, Merge, merge_grants
from jobs.plan.model import Action, Issue, Plan
from jobs.read.snapshots import LicenseSnapshot


@dataclass(frozen=True)
class LicensePlanOptions:
    first_run_winner: str = "webitel"
    max_revocations: int = 50
    max_revocation_share: float = 0.10
    approved_revocations: int = 0  # ``run --allow-revocations N``: this run may revoke up to N


@dataclass(frozen=True)
class GrantSets:
    """The merge's inputs, kept so the runner can compute the next baseline from the outcomes."""

    webitel: frozenset[Grant]
    creatio: frozenset[Grant]
    baseline: frozenset[Grant] | None


def plan_licenses(snap: LicenseSnapshot, options: LicensePlanOptions) -> tuple[Plan, GrantSets]:
    """Compute the licences job's plan and the grant sets it was computed from."""
    actions: list[Action] = []
    conflicts: list[Issue] = []
    warnings: list[Issue] = []
    record_by_serial = {r.serial.lower(): r for r in snap.license_records if r.serial}
    license_ids: dict[str, str] = {s: r.id for s, r in record_by_serial.items()}
    catalog = {lic.serial.lower(): lic for lic in snap.licenses}
    broken = _broken_licenses(catalog)
    for serial in sorted(set(record_by_serial) - set(catalog)):
        warnings.append(
            Issue(
                "license_not_in_webitel",
                f"licence {serial} is in Creatio but no longer in Webitel's registry; left as it is",
                field="license",
            )
        )

    serial_of = {r.id: r.serial.lower() for r in snap.license_records if r.serial}
    webitel_of = {rid: wid for wid, rid in snap.user_record_ids.items()}
    # A grant's row, and the further rows of the few grants held by more than one: a list per
    # grant would cost tens of megabytes at 150,000 grants.
    first_row: dict[Grant, Any] = {}
    more_rows: dict[Grant, list[Any]] = {}
    for row in snap.grant_rows:
        wid, serial = webitel_of.get(row.user_id or ""), serial_of.get(row.license_id or "")
        if wid is None or serial is None:
            conflicts.append(
                Issue(
                    "grant_without_link",
                    f"User Licenses row {row.id} refers to "
                    + (
                        "a Webitel-user record not linked to any Webitel user"
                        if wid is None
                        else "an unknown licence record"
                    )
                    + "; left in place",
                    field="license",
                )
            )
            continue
        grant = (wid, serial)
        if grant not in first_row:
            first_row[grant] = row
        else:
            more_rows.setdefault(grant, [first_row[grant]]).append(row)
    users = _Users(snap.usernames)
    for grant in [g for g in first_row if g in more_rows] if more_rows else ():
        warnings.append(
            Issue(
                "duplicate_grant_rows",
                f"{len(more_rows[grant])} User Licenses rows grant {grant[1]}",
                user=users[grant[0]][0],
                webitel_id=int(grant[0]),
                field="license",
            )
        )
    lowered = _Lowered()
    webitel = frozenset((wid, lowered[s]) for wid, serials in snap.webitel_grants.items() for s in serials)
    sets = GrantSets(webitel, frozenset(first_row), snap.baseline)
    merge = merge_grants(sets.webitel, sets.creatio, sets.baseline, first_run_winner=options.first_run_winner)
    granted, refusals = _refuse(snap, merge, catalog, users)
    conflicts.extend(refusals)
    revokes = _revocations(merge, first_row, more_rows, users)
    total = len(sets.webitel) + sum(1 for grant in sets.creatio if grant not in sets.webitel)
    total += snap.outside_grants
    limit = min(options.max_revocations, math.ceil(options.max_revocation_share * total))
    limit = max(limit, options.approved_revocations)
    guard = None
    if len(revokes) > limit:
        touched = sorted({a.user for a in revokes}, key=lambda label: label.casefold())
        guard = Issue(
            "revocation_cap",
            f"{len(revokes)} licence revocations planned, more than the limit of {limit} "
            f"(max_revocations {options.max_revocations}, max_revocation_share "
            f"{options.max_revocation_share} of {total} grants); nothing was revoked. "
            f"To approve this run: run --allow-revocations {len(revokes)}",
            others=tuple(touched),
        )
        conflicts.append(guard)
        revokes = []
    # Webitel's "used" moves with this run's own grants and revocations: the catalog carries the
    # count they leave, so one run leaves both sides in step (no second read of Webitel).
    seats = defaultdict(int)
    for wid, serial in granted:
        seats[serial] += 1
    for action in revokes:
        if action.kind == "revoke_webitel":
            seats[action.old["license"]] -= 1
    for serial, lic in sorted(catalog.items()):
        if serial in broken:
            continue
        actions.extend(
            _catalog_action(
                snap.domain, lic, record_by_serial.get(serial), license_ids,
                # Webitel counts seats of named licences only: a concurrent one's used stays as read.
                used=max(0, lic.used + (0 if lic.concurrent else seats[serial])),
            )
        )
    actions.extend(revokes)
    for wid, serial in sorted(granted, key=_order):
        actions.append(
            Action(
                "grant_webitel",
                "WebitelGrant",
                f"{wid}:{serial}",
                f"grant:{wid}:{serial}",
                *users[wid],
                new={"license": serial},
            )
        )
    for wid, serial in sorted(merge.add_creatio, key=_order):
        record = snap.user_record_ids.get(wid)
        if record is None:
            continue  # the user is not imported (yet): the grant waits for its record
        lic_id = license_ids.get(serial)
        if lic_id is None:
            continue  # a grant of a licence the catalog lacks cannot be shown in Creatio
        created = () if serial in record_by_serial else (lic_id,)
        actions.append(
            Action(
                "create_grant_row",
                "WebitelUserLicense",
                keys.grant_record_id(snap.domain, int(wid), serial),
                f"grant:{wid}:{serial}",
                *users[wid],
                new={"user_id": record, "license_id": lic_id, "license": serial},
                depends_on=created,
            )
        )
    stats = {
        "webitel_grants": len(sets.webitel),
        "creatio_grants": len(sets.creatio),
        "baseline": -1 if sets.baseline is None else len(sets.baseline),
    }
    errors = snap.invalid + tuple(broken.values())
    return Plan("licenses", tuple(actions), tuple(conflicts), tuple(warnings), errors, guard, stats), sets


def _broken_licenses(catalog: dict) -> dict[str, Issue]:
    """Licences whose values cannot be true (validity inverted, a negative limit or use): reported,
    never mirrored to Creatio as they are."""
    out = {}
    for serial, lic in catalog.items():
        if lic.valid_from is not None and lic.valid_till is not None and lic.valid_from > lic.valid_till:
            why = f"valid from {lic.valid_from:%Y-%m-%d} is after valid till {lic.valid_till:%Y-%m-%d}"
            field = "valid_from"
        elif lic.limit < 0 or lic.used < 0:
            why, field = f"limit {lic.limit} and used {lic.used} cannot be negative", "limit"
        else:
            continue
        out[serial] = Issue("invalid_license", f"licence {lic.serial}: {why}; not mirrored to Creatio",
                            field=field)
    return out


def _catalog_action(domain: str, lic, record, license_ids: dict[str, str], *, used: int) -> list[Action]:
    serial = lic.serial.lower()
    values = catalog_values(lic, used=used)
    key = f"license:{serial}"
    if record is None:
        rid = keys.license_record_id(domain, serial)
        license_ids[serial] = rid
        return [Action("create_license", "WebitelLicense", rid, key, new=values)]
    old = {f: getattr(record, f) for f in CATALOG_FIELDS}
    changed = {f: v for f, v in values.items() if not _same(old[f], v)}
    if not changed:
        return []
    return [
        Action(
            "update_license", "WebitelLicense", record.id, key, old={f: old[f] for f in changed}, new=changed
        )
    ]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) < 0.001  # Creatio keeps milliseconds
    if a in (None, "") and b in (None, ""):
        return True
    return a == b


def _refuse(snap: LicenseSnapshot, merge: Merge, catalog: dict,
            users: _Users) -> tuple[set[Grant], list[Issue]]:
    """Split the grants to make in Webitel into allowed ones and refusals."""
    allowed: set[Grant] = set()
    issues: list[Issue] = []
    freed = defaultdict(int)
    for _, serial in merge.revoke_webitel:
        freed[serial] += 1
    waiting: dict[str, list[Grant]] = defaultdict(list)
    for grant in sorted(merge.grant_webitel, key=_order):
        wid, serial = grant
        lic = catalog.get(serial)
        if wid not in snap.webitel_grants:  # every Webitel user is a key, even one with no grants
            issues.append(
                Issue(
                    "grant_without_link",
                    "the Webitel user of this grant does not exist",
                    user=users[wid][0],
                    webitel_id=int(wid),
                    field="license",
                )
            )
        elif lic is None:
            issues.append(
                Issue(
                    "license_unknown",
                    f"licence {serial} is not in Webitel's registry; the Creatio row is left in place",
                    user=users[wid][0],
                    webitel_id=int(wid),
                    field="license",
                )
            )
        elif (refusal := grant_refusal(lic, snap.now, seats_left=1)) is not None:
            issues.append(
                Issue(
                    refusal.kind,
                    f"{lic.title} ({serial}): {refusal.reason}; not granted, the Creatio "
                    "row is left in place",
                    user=users[wid][0],
                    webitel_id=int(wid),
                    field="license",
                )
            )
        elif lic.concurrent:
            allowed.add(grant)
        else:
            waiting[serial].append(grant)
    for serial, grants in sorted(waiting.items()):
        lic = catalog[serial]
        seats = max(0, lic.remain + freed[serial])
        allowed.update(grants[:seats])
        refused = grants[seats:]
        if refused:
            refusal = grant_refusal(lic, snap.now, seats_left=0)
            names = tuple(users[wid][0] for wid, _ in refused)
            issues.append(
                Issue(
                    refusal.kind,
                    f"{lic.title} ({serial}) has {seats} seat(s) left for "
                    f"{len(grants)} new grants; not granted to {len(refused)} user(s)",
                    field="license",
                    others=names,
                )
            )
    return allowed, issues


def _revocations(merge: Merge, first_row: dict[Grant, Any], more_rows: dict[Grant, list[Any]],
                 users: _Users) -> list[Action]:
    out = []
    for wid, serial in sorted(merge.revoke_webitel, key=_order):
        out.append(
            Action(
                "revoke_webitel",
                "WebitelGrant",
                f"{wid}:{serial}",
                f"grant:{wid}:{serial}",
                *users[wid],
                old={"license": serial},
            )
        )
    for grant in sorted(merge.remove_creatio, key=_order):
        rows = more_rows.get(grant) or ([first_row[grant]] if grant in first_row else [])
        for row in rows:
            out.append(
                Action(
                    "delete_grant_row",
                    "WebitelUserLicense",
                    row.id,
                    f"grant:{grant[0]}:{grant[1]}",
                    *users[grant[0]],
                    old={"license": grant[1]},
                )
            )
    return out


def _order(grant: Grant) -> tuple[int, str]:
    return (int(grant[0]) if grant[0].isdigit() else 0, grant[1])


class _Users(dict):
    """Webitel id -> (its label, its id as an int), made once per user: one user holds several
    grants, and each of its actions shares the two."""

    def __init__(self, usernames) -> None:
        super().__init__()
        self.usernames = usernames

    def __missing__(self, wid: str) -> tuple[str, int]:
        value = self[wid] = (user_label(self.usernames.get(wid, "<unknown>"), wid), int(wid))
        return value


class _Lowered(dict):
    """A serial -> the serial in lower case, one string per serial however many hold it."""

    def __missing__(self, serial: str) -> str:
        value = self[serial] = serial.lower()
        return value


@dataclass(frozen=True)
class GrantChange:
    """One administrator's ``license assign|revoke``, and both sides as read for it.

    Attributes:
        action: ``assign`` or ``revoke``.
        webitel_id, username: the Webitel user.
        license: the Webitel licence (``connector.webitel.models.License``).
        held: the serials the user holds now (a fresh read), lower case.
        now: the moment validity is judged at.
        domain: the Webitel domain (part of our deterministic Ids).
        mirrored: whether the site's object model has the licence objects at all.
        record_id: the user's Webitel-user record in Creatio, or None before its import.
        license_record: the licence's Creatio record, or None before the catalog reached Creatio.
        grant_rows: the "User Licenses" rows of this user and licence.
    """

    action: str
    webitel_id: int
    username: str
    license: Any
    held: frozenset[str]
    now: datetime
    domain: str
    mirrored: bool = True
    record_id: str | None = None
    license_record: Any = None
    grant_rows: tuple[Any, ...] = ()


def plan_grant_change(change: GrantChange) -> Plan:
    """The plan of one grant change: the same actions (and refusals) the licences job would make.

    The Webitel grant, the catalog record with the "used" count it leaves, and the grant row; a
    refused grant is the plan's only conflict and nothing else is planned.
    """
    lic, wid = change.license, str(change.webitel_id)
    serial = lic.serial.lower()
    label = user_label(change.username, wid)
    key = f"grant:{wid}:{serial}"
    actions: list[Action] = []
    warnings: list[Issue] = []
    used = lic.used
    if change.action == "assign" and serial not in change.held:
        refusal = grant_refusal(lic, change.now)
        if refusal is not None:
            return Plan(
                "licenses",
                conflicts=(
                    Issue(
                        refusal.kind,
                        f"{lic.title} ({lic.serial}) cannot be granted to {label}: {refusal.reason}",
                        user=label,
                        webitel_id=change.webitel_id,
                        field="license",
                    ),
                ),
            )
        actions.append(
            Action(
                "grant_webitel",
                "WebitelGrant",
                f"{wid}:{serial}",
                key,
                label,
                change.webitel_id,
                new={"license": serial},
            )
        )
        used += 0 if lic.concurrent else 1
    elif change.action == "revoke" and serial in change.held:
        actions.append(
            Action(
                "revoke_webitel",
                "WebitelGrant",
                f"{wid}:{serial}",
                key,
                label,
                change.webitel_id,
                old={"license": serial},
            )
        )
        used = max(0, used - (0 if lic.concurrent else 1))
    if not change.mirrored:
        return Plan(
            "licenses",
            tuple(actions),
            warnings=(
                Issue(
                    "licenses_not_in_profile",
                    "the object profile has no licence objects: nothing mirrored to Creatio",
                ),
            ),
        )
    license_ids: dict[str, str] = {serial: change.license_record.id} if change.license_record else {}
    catalog = _catalog_action(change.domain, lic, change.license_record, license_ids, used=used)
    actions.extend(catalog)
    if change.record_id is None:
        warnings.append(
            Issue(
                "grant_without_record",
                "the user has no Webitel-user record in Creatio yet: the next sync will carry the grant",
                user=label,
                webitel_id=change.webitel_id,
            )
        )
    elif change.action == "assign" and not change.grant_rows:
        created = tuple(a.id for a in catalog if a.kind == "create_license")
        actions.append(
            Action(
                "create_grant_row",
                "WebitelUserLicense",
                keys.grant_record_id(change.domain, change.webitel_id, serial),
                key,
                label,
                change.webitel_id,
                new={"user_id": change.record_id, "license_id": license_ids[serial], "license": serial},
                depends_on=created,
            )
        )
    elif change.action == "revoke":
        actions += [
            Action(
                "delete_grant_row",
                "WebitelUserLicense",
                row.id,
                key,
                label,
                change.webitel_id,
                old={"license": serial},
            )
            for row in change.grant_rows
        ]
    return Plan("licenses", tuple(actions), warnings=tuple(warnings))
