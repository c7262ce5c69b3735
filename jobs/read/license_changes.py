"""Reading only what changed for the licences job (incremental cycles), then a scoped snapshot.

Webitel: users newest first with their grants, stopping at the watermark (as the users job does,
``jobs.read.changes.changed_users``). Inferred: a grant or revocation is a write of the user's
``license`` list (``PATCH /api/users/{id}``), so it moves the user's ``updated_at``.

Creatio: the "User Licenses" rows changed since the watermark (``ModifiedOn``) and the table's
``$count``. A row deleted in Creatio leaves nothing to filter on, so the count must show it: the
rows expected are those counted at the end of the last licences run plus the rows created since
(changed rows created after that end, less the rows that run already saw and the rows this product
writes, whose Ids are its own). Any other count means rows were deleted (or one was added between
two requests): the cycle then reads the table's rows whole (a few columns, ``find_deleted``) to
find the users whose agreed grants lost their row, not every user's grants in Webitel.

The scope is the changed users and the users of the changed rows; for them both sides' grants and
the baseline are read, and the catalog whole (a few dozen licences), so the plan and its refusals
are those of a full read. Users deleted in Webitel are left to the full read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.creatio import odata
from connector.creatio.objects import ObjectModel
from connector.creatio.records import GrantRecord, LicenseRecord, Row, WebitelUserRecord
from connector.errors import RecordError
from connector.webitel.models import WebitelUser
from mappings.keys import grant_record_id

from jobs.read.changes import ID_CHUNK, changed_users, modified_since
from jobs.read.snapshots import Issue, LicenseSnapshot

GRANT_FIELDS = ("id", "username", "license", "updated_at")


@dataclass
class LicenseChanges:
    """What changed for the licences job, or why it must read everything (``fallback``)."""

    fallback: str = ""
    users: dict[str, WebitelUser] = field(default_factory=dict)
    rows: list[GrantRecord] = field(default_factory=list)  # changed rows this product did not write
    total_rows: int = 0
    created: list[tuple[str, datetime]] = field(default_factory=list)  # others' rows: Id, CreatedOn
    missing: str = ""  # non-empty: the count shows rows deleted (``find_deleted`` finds whose)
    vanished: set[str] = field(default_factory=set)  # users some of whose baseline rows are gone
    all_rows: list[GrantRecord] | None = None  # the whole table, when it was read to find them


@dataclass(frozen=True)
class RowsSeen:
    """The "User Licenses" rows at the end of the last licences run, for the next count check."""

    count: int
    ended_at: datetime
    recent_ids: frozenset[str] = frozenset()  # others' rows created within the margin of the end


def read_license_changes(webitel, creatio, model: ObjectModel, *, domain: str, since_ms: int,
                         since_modified: datetime, margin_s: float, seen: RowsSeen,
                         record_wids: dict[str, str], serials: dict[str, str]) -> LicenseChanges:
    """The changes since the watermarks; ``record_wids``: record Id -> Webitel id, ``serials``:
    licence record Id -> serial (to tell this product's own rows by their Ids)."""
    changes = LicenseChanges()
    users, changes.fallback = changed_users(
        webitel, since_ms=since_ms, margin_s=margin_s, fields=GRANT_FIELDS
    )
    if changes.fallback:
        return changes
    changes.users = {str(u.id): u for u in users}
    grant = model.webitel_user_license
    for raw in creatio.iter_rows(
        grant.entity,
        select=[*GrantRecord.columns(model), "CreatedOn"],
        filter=modified_since(since_modified, margin_s),
    ):
        try:
            row = GrantRecord.from_row(raw, model)
            created = Row(raw, grant.entity).get("CreatedOn", "datetime")
        except RecordError:
            changes.fallback = "a changed User Licenses row could not be read; the full read reports it"
            return changes
        # A row with its grant's own Id, as this product writes it, is the echo of its own write
        # (an administrator who points it at another user or licence makes its Id a stranger's).
        if own_row(row, domain, record_wids, serials):
            continue
        changes.rows.append(row)
        if created is not None:
            changes.created.append((row.id, created))
    changes.total_rows = creatio.count(grant.entity)
    edge = seen.ended_at - timedelta(seconds=margin_s)
    added = sum(1 for rid, created in changes.created if created > edge and rid not in seen.recent_ids)
    if changes.total_rows != seen.count + added:
        changes.missing = (
            f"the User Licenses table has {changes.total_rows} rows where {seen.count + added} "
            "were expected: rows were deleted in Creatio since the last licence sync"
        )
    return changes


def find_deleted(
    creatio,
    model: ObjectModel,
    changes: LicenseChanges,
    *,
    baseline: set[tuple[str, str]],
    record_wids: dict[str, str],
    serials: dict[str, str],
) -> str:
    """The users some of whose agreed grants lost their row in Creatio (``changes.vanished``), from
    the whole "User Licenses" table (a few columns: the rows, not the users' grants in Webitel).

    Returns why a full read must be made instead ("" when the users were found).
    """
    held: set[tuple[str, str]] = set()
    rows: list[GrantRecord] = []
    for raw in creatio.iter_rows(model.webitel_user_license.entity, select=GrantRecord.columns(model)):
        try:
            row = GrantRecord.from_row(raw, model)
        except RecordError:
            return "a User Licenses row could not be read; the full read reports it"
        rows.append(row)
        wid, serial = record_wids.get(row.user_id or ""), serials.get(row.license_id or "")
        if wid is not None and serial is not None:
            held.add((wid, serial))
    linked = set(record_wids.values())
    changes.vanished = {wid for wid, serial in baseline if wid in linked and (wid, serial) not in held}
    changes.all_rows = rows
    return ""


def own_row(row: GrantRecord, domain: str, record_wids: dict[str, str], serials: dict[str, str]) -> bool:
    """Whether a "User Licenses" row is one this product wrote: its Id is the grant's own."""
    wid, serial = record_wids.get(row.user_id or ""), serials.get(row.license_id or "")
    return wid is not None and serial is not None and row.id == grant_record_id(domain, int(wid), serial)


def read_license_scope(
    webitel,
    creatio,
    model: ObjectModel,
    changes: LicenseChanges,
    *,
    domain: str,
    licenses: tuple,
    license_records: tuple[LicenseRecord, ...],
    catalog_issues: list[Issue],
    record_wids: dict[str, str],
    baseline_of,
    outside_grants,
    now: datetime,
) -> tuple[LicenseSnapshot | None, str]:
    """The scoped snapshot of the changed users, or ``(None, why)`` when only a full read will do.

    ``baseline_of(wids)``: the baseline grants of those users; ``outside_grants(n)``: how many
    baseline grants the users outside the scope hold, given the scope's ``n``.
    """
    unknown = sorted({r.user_id for r in changes.rows if r.user_id and r.user_id not in record_wids})
    if unknown:
        user = model.webitel_user
        for raw in creatio.iter_by_values(
            user.entity, "Id", [odata.Guid(i) for i in unknown], select=WebitelUserRecord.columns(model)
        ):
            record = WebitelUserRecord.from_row(raw, model)
            if record.webitel_id:
                record_wids[record.id] = str(record.webitel_id)
        if any(rid not in record_wids for rid in unknown):
            return None, (
                "a changed User Licenses row refers to a record no Webitel user is linked to; "
                "the full read reports it"
            )
    scope = (
        set(changes.users) | {record_wids[r.user_id] for r in changes.rows if r.user_id} | changes.vanished
    )
    users = dict(changes.users)
    wanted = sorted(int(w) for w in scope - set(users))
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        users.update(
            {
                str(u.id): u
                for u in webitel.iter_users(id=chunk, fields=GRANT_FIELDS)
                if isinstance(u, WebitelUser) and u.id in chunk
            }
        )
    scope &= set(users)  # a user deleted in Webitel is the full read's
    rids = {wid: rid for rid, wid in record_wids.items() if wid in scope}
    grant = model.webitel_user_license
    invalid = list(catalog_issues)
    wanted_rows = set(rids.values())
    if changes.all_rows is not None:  # the whole table was read already
        rows = [r for r in changes.all_rows if r.user_id in wanted_rows]
    else:
        rows = []
        for raw in creatio.iter_by_values(
            grant.entity,
            grant.user,
            [odata.Guid(r) for r in sorted(wanted_rows)],
            select=GrantRecord.columns(model),
        ):
            try:
                rows.append(GrantRecord.from_row(raw, model))
            except RecordError as exc:
                invalid.append(Issue("invalid_record", str(exc), field=exc.field))
    baseline = frozenset(baseline_of(scope))
    return LicenseSnapshot(
        domain=domain,
        now=now,
        licenses=licenses,
        webitel_grants={w: frozenset(s.lower() for s in users[w].serials) for w in sorted(scope)},
        usernames={w: users[w].username for w in scope},
        license_records=license_records,
        user_record_ids=rids,
        grant_rows=tuple(rows),
        baseline=baseline,
        invalid=tuple(invalid),
        outside_grants=outside_grants(len(baseline)),
    ), ""
