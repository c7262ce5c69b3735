"""Reading both sides for the users job, at close to the minimum number of requests.

Webitel users are read in pages of the largest allowed size with only the fields needed. On the
Creatio side the Webitel-user records are read whole (one per telephony user), but contacts and
system users are looked up by name in chunks of ``$filter`` (as many names per request as the URL
allows) unless ``$count`` shows that reading the table whole costs fewer requests. A CRM's millions
of contacts are never loaded to match a few thousand users.

Known limit of the lookup mode: the server compares names exactly (case-insensitively on Creatio's
default collation), so a contact stored with stray leading, trailing or doubled spaces is found
only when the table is read whole, where names are normalised here. OData's ``trim()`` would defeat
the database index on every lookup, so it is not used.
"""

from __future__ import annotations

import logging
import re
from itertools import chain
from typing import Callable, Iterable, Iterator

from connector.creatio import odata
from connector.creatio.records import Account, Contact, ContactCommunication, SysUser
from connector.creatio.records import WebitelUserRecord
from connector.errors import RecordError
from connector.webitel.models import WebitelUser
from mappings.keys import normalise_key, tidy
from connector.creatio.objects import ObjectModel
from connector.creatio.values import EXTENSION_COMMUNICATION_TYPE, SYS_ADMIN_UNIT_USER
from mappings.users import display_name, user_label

from jobs.read.lookup import ReadStats, by_ids, fits_lookup, lookup, pages
from jobs.read.snapshots import Issue, UsersSnapshot

log = logging.getLogger(__name__)
_ID = re.compile(r"\(id (\d+)\)")
# Only what the users job reads (grants are the licences job's): less to send, parse and hold.
IMPORT_FIELDS = ("id", "username", "name", "email", "extension", "updated_at")
CONFIRM_CHUNK = 100  # user ids per confirming read: well inside a URL's length


def read_users_snapshot(webitel, creatio, model: ObjectModel, *, domain: str, account_name: str,
                        links: dict[str, str], baselines: dict[str, dict] | None = None,
                        provisioning: bool = False, linked_contacts: dict[str, str] | None = None,
                        progress: Callable[[str], None] = lambda _: None) -> tuple[UsersSnapshot, ReadStats]:
    """Read everything the users plan needs."""
    stats = ReadStats({})
    progress("reading Webitel users")
    webitel_page = webitel.settings.page_size
    users, invalid = [], []
    for item in webitel.iter_users(fields=IMPORT_FIELDS):
        if isinstance(item, WebitelUser):
            users.append(item)
        else:
            found = _ID.search(item.record)
            invalid.append((int(found.group(1)) if found else None,
                            Issue("invalid_user", str(item), user=item.record,
                                  webitel_id=int(found.group(1)) if found else None, field=item.field)))
    progress(f"reading {model.webitel_user.entity} records")
    # The records, contacts and extensions of linked users mostly repeat the users' own names and
    # extensions: equal text is held once (tens of thousands of strings), not once per side.
    shared = _Shared(chain((value for u in users for value in (u.username, u.name, u.email, u.extension)),
                           links))  # the links' Webitel ids: the records' WebitelId
    record_text = [c for c in (model.webitel_user.name, model.webitel_user.username,
                               model.webitel_user.webitel_id, model.webitel_user.extension) if c]
    records, bad_rows, unreadable = [], [], set()
    for row in creatio.iter_rows(model.webitel_user.entity, select=WebitelUserRecord.columns(model)):
        try:
            records.append(WebitelUserRecord.from_row(shared.row(row, record_text), model))
        except RecordError as exc:
            bad_rows.append((None, Issue("invalid_record", str(exc), field=exc.field)))
            if isinstance(row, dict) and isinstance(row.get("Id"), str):
                unreadable.add(row["Id"].lower())
    stats.floor["webitel users"] = pages(len(users) + len(invalid), webitel_page)
    stats.floor[model.webitel_user.entity] = pages(len(records), creatio.settings.page_size)
    # Absence from a read alone never deletes anything: every linked user or record the reads did
    # not return is asked for by Id before the plan may call it gone.
    progress("confirming users and records missing from the reads")
    users += _confirm_webitel_users(webitel, records, links, users, invalid, stats)
    records += _confirm_records(creatio, model, records, links, unreadable, stats)
    users, unsearchable = searchable(creatio, users)
    invalid += unsearchable
    names = {tidy(u.username) for u in users} | {display_name(u) for u in users}
    names.discard("")
    progress("looking up matching contacts")
    # A whole-table read sees every contact; only those that can match are kept.
    name_keys = {normalise_key(n) for n in names}
    contacts = [
        c
        for c in _typed(Contact, lookup(creatio, "Contact", "Name", names, Contact.columns(), None, stats),
                        bad_rows, shared, ("Name", "Email"))
        if normalise_key(c.name) in name_keys
    ]
    progress("looking up matching system users")
    user_filter = odata.eq("SysAdminUnitTypeValue", SYS_ADMIN_UNIT_USER)
    logins = {tidy(u.username) for u in users} - {""}
    login_keys = {normalise_key(n) for n in logins}
    sys_users = [
        s
        for s in _typed(
            SysUser, lookup(creatio, "SysAdminUnit", "Name", logins, SysUser.columns(), user_filter, stats),
            bad_rows)
        if normalise_key(s.name) in login_keys
    ]
    accounts = list(_typed(Account, creatio.iter_rows(
        "Account", select=Account.columns(), filter=odata.eq("Name", tidy(account_name))), bad_rows))
    stats.floor["Account"] = 1
    linked_contacts = dict(linked_contacts or {})
    known = {c.id for c in contacts}
    wanted = sorted({c for c in linked_contacts.values() if c and c not in known})
    if wanted:  # the contacts administrators linked users to (``link``), by Id
        contacts += _typed(
            Contact,
            by_ids(
                creatio,
                "Contact",
                [odata.Guid(i) for i in wanted],
                Contact.columns(),
                stats,
                "linked Contact by Id",
            ),
            bad_rows,
        )
    contact_ids = (
        {r.contact_id for r in records if r.contact_id}
        | {c.id for c in contacts}
        | {s.contact_id for s in sys_users if s.contact_id}
    )
    progress("reading extension communication options")
    type_filter = odata.eq("CommunicationTypeId", odata.Guid(EXTENSION_COMMUNICATION_TYPE))
    comms = [
        c
        for c in _typed(
            ContactCommunication,
            lookup(
                creatio,
                "ContactCommunication",
                "ContactId",
                {odata.Guid(c) for c in contact_ids},
                ContactCommunication.columns(),
                type_filter,
                stats,
            ),
            bad_rows,
            shared,
            ("Number",),
        )
        if c.contact_id in contact_ids
    ]
    del shared
    record_contacts, sys_logins = {}, {}
    if provisioning:
        progress("reading records awaiting provisioning")
        record_contacts, sys_logins = provisioning_details(creatio, records, links, contacts, stats)
    snapshot = UsersSnapshot(
        domain=domain,
        users=tuple(users),
        invalid=tuple(invalid + bad_rows),
        records=tuple(records),
        contacts=tuple(contacts),
        sys_users=tuple(sys_users),
        accounts=tuple(accounts),
        communications=tuple(comms),
        links=links,  # the caller's own copies (jobs.sync.users.load_links): not copied again
        baselines=baselines or {},
        record_contacts=record_contacts,
        sys_logins=sys_logins,
        unreadable_records=frozenset(unreadable),
        linked_contacts=linked_contacts,
    )
    return snapshot, stats


def _typed(record_type, rows, bad_rows: list, shared: _Shared | None = None,
           text: tuple[str, ...] = ()) -> Iterator:
    """Typed records of Creatio's own objects; a row that does not parse is that row's error.
    With ``shared``, the ``text`` columns equal to a string it holds take that string."""
    for row in rows:
        try:
            yield record_type.from_row(shared.row(row, text) if shared is not None else row)
        except RecordError as exc:
            bad_rows.append((None, Issue("invalid_record", str(exc), field=exc.field)))


class _Shared(dict):
    """Strings by value: the first of each value met, handed out for every equal one after."""

    def __init__(self, values: Iterable[str]) -> None:
        super().__init__()
        for value in values:
            if value:
                self.setdefault(value, value)

    def row(self, row, columns) -> object:
        """``row`` with each of ``columns`` that holds a known string pointing at the shared one."""
        if type(row) is dict:
            for column in columns:
                value = row.get(column)
                if type(value) is str:
                    row[column] = self.get(value, value)
        return row


def searchable(creatio, users: list) -> tuple[list, list]:
    """Users whose name and username can be looked up in Creatio, and an error for each that cannot.

    A value too long for any URL (or one OData cannot carry) is that user's error, not the run's:
    the user is left out of this run (and so neither matched nor taken for vanished).
    """
    ok, refused = [], []
    for user in users:
        bad = next(
            (
                field
                for field, value in (("username", tidy(user.username)), ("name", display_name(user)))
                if value and not fits_lookup(creatio, "Name", value)
            ),
            None,
        )
        if bad is None:
            ok.append(user)
            continue
        size = len(tidy(user.username) if bad == "username" else display_name(user))
        refused.append(
            (
                user.id,
                Issue(
                    "unsearchable_user",
                    f"{bad} of {size} characters cannot be looked up in "
                    "Creatio (too long for a request); not imported",
                    user=user_label(user.username[:40], user.id),
                    webitel_id=user.id,
                    field=bad,
                ),
            )
        )
    return ok, refused


def _confirm_webitel_users(webitel, records, links: dict[str, str], users, invalid, stats: ReadStats) -> list:
    """Linked Webitel users the full read did not return, read again by id; those that exist."""
    present = {str(u.id) for u in users} | {str(i) for i, _ in invalid if i is not None}
    by_record = {rid: wid for wid, rid in links.items()}
    candidates = sorted(
        {wid for r in records if (wid := r.webitel_id or by_record.get(r.id))} | set(links) - present,
        key=lambda w: (len(w), w),
    )
    wanted = [int(w) for w in candidates if w.isdigit() and w not in present]
    found = []
    for start in range(0, len(wanted), CONFIRM_CHUNK):
        chunk = wanted[start : start + CONFIRM_CHUNK]
        found += [
            u
            for u in webitel.iter_users(id=chunk, fields=IMPORT_FIELDS)
            if isinstance(u, WebitelUser) and u.id in chunk
        ]
    if wanted:
        stats.floor["webitel users by id"] = pages(len(wanted), CONFIRM_CHUNK)
        stats.strategies["confirm vanished users"] = f"{len(found)} of {len(wanted)} found by id"
    if found:
        log.warning(
            "%d Webitel user(s) missing from the full read exist when asked by id (a read that was not "
            "complete?); they are kept",
            len(found),
        )
    return found


def _confirm_records(
    creatio, model: ObjectModel, records, links: dict[str, str], unreadable: set[str], stats: ReadStats
) -> list:
    """Linked records the full read did not return, read again by Id; those that exist.

    Rows that exist but do not parse are added to ``unreadable``: they are not deletions either.
    """
    known = {r.id for r in records} | unreadable
    wanted = sorted({rid for rid in links.values() if rid not in known})
    if not wanted:
        return []
    found = []
    rows = by_ids(
        creatio,
        model.webitel_user.entity,
        [odata.Guid(i) for i in wanted],
        WebitelUserRecord.columns(model),
        stats,
        f"{model.webitel_user.entity} by Id",
    )
    for row in rows:
        try:
            found.append(WebitelUserRecord.from_row(row, model))
        except RecordError:
            if isinstance(row, dict) and isinstance(row.get("Id"), str):
                unreadable.add(row["Id"].lower())
    stats.strategies["confirm deleted records"] = f"{len(found)} of {len(wanted)} found by Id"
    if found:
        log.warning(
            "%d record(s) missing from the full read exist when asked by Id (a read that was not complete, "
            "or read rights that hide rows?); they are kept",
            len(found),
        )
    return found


def provisioning_details(
    creatio, records, links: dict[str, str], contacts, stats: ReadStats
) -> tuple[dict, dict]:
    """Contacts and Creatio-user logins of the records no Webitel user is linked to (usually few)."""
    linked = set(links.values())
    waiting = [r for r in records if not r.webitel_id and r.id not in linked and r.active is not False]
    known = {c.id: c for c in contacts}
    want_contacts = [
        odata.Guid(i)
        for i in sorted({r.contact_id for r in waiting if r.contact_id and r.contact_id not in known})
    ]
    found = {
        c.id: c
        for c in map(
            Contact.from_row,
            by_ids(creatio, "Contact", want_contacts, Contact.columns(), stats, "Contact by Id"),
        )
    }
    record_contacts = {
        r.contact_id: known.get(r.contact_id) or found.get(r.contact_id)
        for r in waiting
        if r.contact_id and (r.contact_id in known or r.contact_id in found)
    }
    want_users = [
        odata.Guid(i) for i in sorted({r.sys_admin_unit_id for r in waiting if r.sys_admin_unit_id})
    ]
    logins = {
        s.id: s.name
        for s in map(
            SysUser.from_row,
            by_ids(creatio, "SysAdminUnit", want_users, SysUser.columns(), stats, "SysAdminUnit by Id"),
        )
    }
    return record_contacts, logins
