"""Reading both sides for the licences job: whole-table reads in the largest pages allowed.

Webitel: the licence registry, and every user's grants (``fields=id,username,license``). Creatio:
the licence records, the Webitel-user records (to map record Ids to Webitel ids), and every "User
Licenses" row. These tables are all about telephony users, so they are read whole.
"""

from __future__ import annotations

from datetime import datetime
from sys import intern
from typing import Callable, Iterator

from connector.creatio import odata
from connector.creatio.records import GrantRecord, LicenseRecord, Row, WebitelUserRecord
from connector.errors import RecordError
from connector.webitel.models import WebitelUser
from connector.creatio.objects import ObjectModel

from jobs.read.lookup import pages
from jobs.read.snapshots import Issue, LicenseSnapshot

GRANT_FIELDS = ("id", "username", "license")


def read_license_snapshot(
    webitel,
    creatio,
    model: ObjectModel,
    *,
    domain: str,
    links: dict[str, str],
    baseline,
    now: datetime,
    progress: Callable[[str], None] = lambda _: None,
    created_after: datetime | None = None,
) -> tuple[LicenseSnapshot, dict[str, int]]:
    """Everything the licences plan needs, and the fewest requests each read could take.

    ``created_after``: the "User Licenses" rows created after this moment are kept in
    ``snapshot.recent_rows`` (for the next incremental cycle's count check).
    """
    progress("reading the licence registry of both sides")
    invalid: list[Issue] = []
    licenses, license_records = read_catalog(webitel, creatio, model, invalid)
    progress("reading Webitel users' licences")
    grants: dict[str, frozenset[str]] = {}
    usernames: dict[str, str] = {}
    # Tens of thousands of users hold a few licences in a handful of combinations: each
    # combination is one shared set of interned serials, not one set per user.
    held_sets: dict[tuple[str, ...], frozenset[str]] = {}
    for user in webitel.iter_users(fields=GRANT_FIELDS):
        if isinstance(user, WebitelUser):
            wid = intern(str(user.id))
            serials = tuple(grant.serial for grant in user.licenses)
            held = held_sets.get(serials)
            if held is None:
                held = held_sets[serials] = frozenset(intern(s.lower()) for s in serials)
            grants[wid] = held
            usernames[wid] = user.username
    progress("reading Creatio's Webitel users and grants")
    # The Webitel-user records are only needed as Webitel id -> record Id: not kept whole.
    record_ids: dict[str, str] = {}
    known: set[str] = set()
    user_record_count = 0
    for record in iter_records(creatio, WebitelUserRecord, model, invalid):
        user_record_count += 1
        known.add(record.id)
        if record.webitel_id:
            record_ids[record.webitel_id] = record.id
    for wid, rid in links.items():  # profiles without a WebitelId column rely on the state links
        if rid in known:
            record_ids.setdefault(wid, rid)
    recent: list[tuple[GrantRecord, datetime]] = []

    def keep_recent(raw: dict, row: GrantRecord) -> None:
        created = Row(raw).get("CreatedOn", "datetime")
        if created_after is not None and created is not None and created > created_after:
            recent.append((row, created))

    grant_rows = tuple(
        iter_records(
            creatio,
            GrantRecord,
            model,
            invalid,
            **({"extra": ("CreatedOn",), "on_row": keep_recent} if created_after else {}),
        )
    )
    page_w, page_c = webitel.settings.page_size, creatio.settings.page_size
    floor = {
        "webitel licences": pages(len(licenses), page_w),
        "webitel users": pages(len(grants), page_w),
        "creatio licences": pages(len(license_records), page_c),
        "creatio users": pages(user_record_count, page_c),
        "creatio grants": pages(len(grant_rows), page_c),
    }
    snapshot = LicenseSnapshot(
        domain=domain,
        now=now,
        licenses=licenses,
        webitel_grants=grants,
        usernames=usernames,
        license_records=license_records,
        user_record_ids=record_ids,
        grant_rows=grant_rows,
        baseline=baseline,
        invalid=tuple(invalid),
        recent_rows=tuple(recent),
    )
    return snapshot, floor


def read_catalog(webitel, creatio, model: ObjectModel, invalid: list[Issue]) -> tuple[tuple, tuple]:
    """The licence registry of both sides: Webitel's licences and Creatio's licence records (an
    unreadable record is reported in ``invalid`` and left alone)."""
    licenses = tuple(webitel.iter_licenses())
    return licenses, tuple(iter_records(creatio, LicenseRecord, model, invalid))


def iter_records(
    creatio,
    record_type,
    model: ObjectModel,
    invalid: list[Issue],
    *,
    extra: tuple[str, ...] = (),
    on_row: Callable[[dict, object], None] | None = None,
) -> Iterator:
    """Typed records of a whole table, as the pages come; an unreadable row is reported in
    ``invalid`` and left alone. ``extra``: more columns to read, which ``on_row(raw, record)`` sees."""
    for row in creatio.iter_rows(record_type.entity(model), select=[*record_type.columns(model), *extra]):
        try:
            record = record_type.from_row(row, model)
        except RecordError as exc:
            invalid.append(Issue("invalid_record", str(exc), field=exc.field))
            continue
        if on_row is not None:
            on_row(row, record)
        yield record


def read_grant_side(
    creatio, model: ObjectModel, *, webitel_id: int, serial: str, links: dict[str, str]
) -> tuple[str | None, LicenseRecord | None, tuple[GrantRecord, ...]]:
    """Creatio's side of one grant: the user's record Id, the licence record, and the grant rows.

    A handful of filtered reads, not the whole tables (``license assign`` touches one grant).
    """
    user = model.webitel_user
    record_id = links.get(str(webitel_id))
    if record_id is None and user.webitel_id:
        rows = creatio.list_rows(
            user.entity, select=["Id"], filter=odata.eq(user.webitel_id, str(webitel_id))
        )
        record_id = rows[0]["Id"] if rows else None
    licence = model.webitel_license
    found = creatio.list_rows(
        licence.entity, select=LicenseRecord.columns(model), filter=odata.eq(licence.serial, serial.lower())
    )
    license_record = LicenseRecord.from_row(found[0], model) if found else None
    if record_id is None or license_record is None:
        return record_id, license_record, ()
    grant = model.webitel_user_license
    rows = creatio.list_rows(
        grant.entity,
        select=GrantRecord.columns(model),
        filter=odata.and_(
            odata.eq(grant.user, odata.Guid(record_id)),
            odata.eq(grant.license, odata.Guid(license_record.id)),
        ),
    )
    return record_id, license_record, tuple(GrantRecord.from_row(row, model) for row in rows)
