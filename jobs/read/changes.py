"""Reading only what changed since the last cycle (incremental cycles), then a scoped snapshot.

Webitel: users newest first (``sort=-updated_at``, the admin UI's convention), stopping at the
first user older than the watermark minus a safety margin. The order is checked (times must not
increase down the list): a server that did not sort makes the cycle fall back to a full read.
``updated_at`` may be seconds or milliseconds (the reference leaves the unit open): a value that
reads as a date before 2001 is taken for seconds.

Creatio: Webitel-user records changed since the watermark (``ModifiedOn gt``, UTC), among them the
records an administrator made for provisioning, with the Webitel users of their usernames.

The users of both become a scoped snapshot read in chunks, with every Webitel holder of their
extensions in the scope and every Creatio holder read, so uniqueness, matching and caps are as
strict as in a full read; the conflicts of users outside the scope are carried over from the cycle
before (``jobs.plan.resolutions.carry_over``). Deletions only a full read can see are left to the
periodic full reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from connector.creatio import odata
from connector.creatio.objects import ObjectModel
from connector.creatio.records import (Account, Contact, ContactCommunication, SysUser,
                                       WebitelUserRecord)
from connector.creatio.values import EXTENSION_COMMUNICATION_TYPE, SYS_ADMIN_UNIT_USER
from connector.errors import RecordError
from connector.pool import max_concurrency, ordered
from connector.webitel.models import WebitelUser, to_ms
from mappings.keys import contact_id as own_contact_id
from mappings.keys import extension_key, normalise_key, tidy, user_record_id
from mappings.users import display_name

from jobs.read.lookup import ReadStats, lookup
from jobs.read.snapshots import AgreedFields, Issue, UsersSnapshot
from jobs.read.users import provisioning_details, searchable

CHANGE_FIELDS = ("id", "username", "name", "email", "extension", "updated_at")
CHANGE_PAGE = 100  # newest users per page: an idle cycle reads one small page
SECONDS_BEFORE = datetime(2001, 1, 1, tzinfo=timezone.utc)  # earlier "milliseconds" were seconds
ID_CHUNK = 100


@dataclass
class Changes:
    """What changed since the watermark, or why the cycle must read everything instead."""

    users: list[WebitelUser] = field(default_factory=list)
    records: list[WebitelUserRecord] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)  # users to plan again (resolved since)
    fallback: str = ""  # non-empty: read everything, and say why
    requests: dict[str, int] = field(default_factory=dict)


def updated_ms(user: WebitelUser) -> int:
    """``updated_at`` in milliseconds, whichever unit the server used."""
    if user.updated_at is None:
        return 0
    moment = user.updated_at
    if moment < SECONDS_BEFORE:  # the server sent seconds, read as milliseconds
        moment = datetime.fromtimestamp(to_ms(moment), tz=timezone.utc)
    return to_ms(moment)


def changed_users(webitel, *, since_ms: int, margin_s: float,
                  fields: tuple[str, ...] = CHANGE_FIELDS) -> tuple[list[WebitelUser], str]:
    """The Webitel users changed since ``since_ms`` (less the margin), newest first, or why the
    cycle must read everything instead (non-empty second value)."""
    users: list[WebitelUser] = []
    threshold = since_ms - int(margin_s * 1000)
    previous: int | None = None
    seen, reached = 0, False
    for item in webitel.iter_users(fields=fields, sort="-updated_at", page_size=CHANGE_PAGE,
                                   prefetch=False):  # newest first, it stops early: no page ahead
        seen += 1
        if not isinstance(item, WebitelUser):
            return users, "a changed user could not be read; the full read reports it"
        stamp = updated_ms(item)
        if previous is not None and stamp > previous:
            return users, ("Webitel did not sort users by updated_at (sort=-updated_at): an "
                           "incremental read cannot be trusted, so everything was read")
        previous = stamp
        # Seen by the last cycle (the margin re-reads its last moments). The rest of the page read
        # is still checked for order: a server that ignored sort shows itself there.
        reached = reached or stamp <= threshold
        if reached:
            if seen % CHANGE_PAGE == 0:
                break
            continue
        users.append(item)
    return users, ""


def modified_since(since: datetime, margin_s: float) -> str:
    """The ``$filter`` of rows changed since ``since`` less the margin (UTC)."""
    moment = (since - timedelta(seconds=margin_s)).astimezone(timezone.utc)
    return f"ModifiedOn gt {odata.datetime_literal(moment)}"


def read_changes(webitel, creatio, model: ObjectModel, *, since_ms: int, since_modified: datetime,
                 margin_s: float) -> Changes:
    """The Webitel users and Creatio records changed since the watermarks (minus ``margin_s``)."""
    changes = Changes()
    changes.users, changes.fallback = changed_users(webitel, since_ms=since_ms, margin_s=margin_s)
    if changes.fallback:
        return changes
    table = model.webitel_user
    for row in creatio.iter_rows(table.entity, select=WebitelUserRecord.columns(model),
                                 filter=modified_since(since_modified, margin_s)):
        try:
            changes.records.append(WebitelUserRecord.from_row(row, model))
        except RecordError:
            changes.fallback = "a changed record could not be read; the full read reports it"
            return changes
    return changes


def _echo(record: WebitelUserRecord, by_record: dict[str, str], baselines: dict[str, AgreedFields]) -> bool:
    webitel_id = record.webitel_id or by_record.get(record.id)
    agreed = baselines.get(str(webitel_id)) if webitel_id else None
    if agreed is None or record.active is False:
        return False
    return tidy(record.name) == tidy(agreed.name) and tidy(record.extension) == tidy(agreed.extension)


def read_scoped(webitel, creatio, model: ObjectModel, changes: Changes, *, domain: str, account_name: str,
                links: dict[str, str], baselines: dict[str, AgreedFields], linked_contacts: dict[str, str],
                progress: Callable[[str], None] = lambda _: None) -> UsersSnapshot:
    """The scoped snapshot of the changed users: their records and every holder of their extensions."""
    by_id = {u.id: u for u in changes.users}
    by_record = {rid: wid for wid, rid in links.items()}
    # A record this product wrote last cycle changed too (ModifiedOn): when its name and extension
    # are the values both sides agreed on, it is that echo, not an administrator's edit.
    changes.records = [r for r in changes.records if not _echo(r, by_record, baselines)]
    wanted = sorted(({int(w) for r in changes.records
                      if (w := r.webitel_id or by_record.get(r.id, "")) and str(w).isdigit()}
                     | set(changes.resolved)) - set(by_id))
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start:start + ID_CHUNK]
        by_id.update({u.id: u for u in webitel.iter_users(id=chunk, fields=CHANGE_FIELDS)
                      if isinstance(u, WebitelUser) and u.id in chunk})
    # Records an administrator created in Creatio for provisioning (no Webitel user yet): the
    # Webitel users with their usernames join the scope (the planner adopts the record, or
    # refuses it).
    linked_ids = set(links.values())
    waiting = [r for r in changes.records
               if not r.webitel_id and r.id not in linked_ids and r.active is not False]
    stats = ReadStats({})
    record_contacts, sys_logins = provisioning_details(creatio, waiting, links, [], stats)
    wanted_names = sorted({n for r in waiting
                           if (n := tidy(r.username) or tidy(sys_logins.get(r.sys_admin_unit_id or "", "")))})
    for found in ordered([partial(_by_username, webitel, n) for n in wanted_names], max_concurrency(webitel),
                         name="wcsync-read"):
        by_id.update({u.id: u for u in found})
    # Every Webitel holder of the extensions in play joins the scope too: uniqueness is checked,
    # and a clash reported on both sides, exactly as in a full read. Webitel keeps an extension
    # unique per domain (``wbt_user_extension_uindex``), so an extension a user in the scope holds
    # has no other Webitel holder: only the extensions Creatio asks for are looked up.
    exts = sorted({tidy(x.extension) for x in (*by_id.values(), *changes.records, *waiting)
                   if tidy(x.extension)})
    held = {extension_key(u.extension) for u in by_id.values() if extension_key(u.extension)}
    for found in extension_holders(webitel, [e for e in exts if extension_key(e) not in held]):
        by_id.update({u.id: u for u in found})
    # A user whose name cannot be looked up is its own error, as in a full read.
    users, unsearchable = searchable(creatio, [by_id[k] for k in sorted(by_id)])
    if not users and not waiting and not unsearchable:
        return UsersSnapshot(domain=domain, links=dict(links), baselines=dict(baselines))
    progress(f"reading what {len(users)} changed user(s) and {len(waiting)} new record(s) need")
    table = model.webitel_user
    ids = [str(u.id) for u in users]
    record_ids = sorted({links[w] for w in ids if w in links} | {user_record_id(domain, u.id) for u in users})
    rows = list(creatio.iter_by_values(table.entity, "Id", [odata.Guid(i) for i in record_ids],
                                       select=WebitelUserRecord.columns(model)))
    if table.webitel_id:
        rows += creatio.iter_by_values(table.entity, table.webitel_id, ids,
                                       select=WebitelUserRecord.columns(model))
    if exts and table.extension:
        rows += creatio.iter_by_values(
            table.entity, table.extension, exts, select=WebitelUserRecord.columns(model)
        )
    invalid: list[tuple[int | None, Issue]] = list(unsearchable)
    records: dict[str, WebitelUserRecord] = {r.id: r for r in changes.records}
    for row in rows:
        try:
            record = WebitelUserRecord.from_row(row, model)
        except RecordError as exc:
            invalid.append((None, Issue("invalid_record", str(exc), field=exc.field)))
            continue
        records[record.id] = record
    names = sorted({n for u in users for n in (tidy(u.username), display_name(u)) if n})
    known = {own_contact_id(domain, u.id) for u in users} | {
        r.contact_id for r in records.values() if r.contact_id
    }
    known |= {linked_contacts[w] for w in ids if w in linked_contacts}
    # The same chunk-or-whole-table choice as a full read (a small table is read whole, where names
    # with stray spaces match too), keeping only the contacts that can match.
    keys = {normalise_key(n) for n in names}
    contacts = {c.id: c for c in map(Contact.from_row, lookup(creatio, "Contact", "Name", names,
                                                             Contact.columns(), None, stats))
                if normalise_key(c.name) in keys}
    contacts.update({c.id: c for c in map(Contact.from_row, creatio.iter_by_values(
        "Contact", "Id", [odata.Guid(i) for i in sorted(known)], select=Contact.columns()))})
    logins = sorted({tidy(u.username) for u in users if tidy(u.username)})
    login_keys = {normalise_key(n) for n in logins}
    sys_users = [s for s in map(SysUser.from_row, lookup(
        creatio, "SysAdminUnit", "Name", logins, SysUser.columns(),
        odata.eq("SysAdminUnitTypeValue", SYS_ADMIN_UNIT_USER), stats))
        if normalise_key(s.name) in login_keys]
    accounts = [
        Account.from_row(r)
        for r in creatio.iter_rows(
            "Account", select=Account.columns(), filter=odata.eq("Name", tidy(account_name))
        )
    ]
    contact_ids = sorted(
        set(contacts)
        | {r.contact_id for r in records.values() if r.contact_id}
        | {s.contact_id for s in sys_users if s.contact_id}
    )
    comms = [
        ContactCommunication.from_row(r)
        for r in creatio.iter_by_values(
            "ContactCommunication",
            "ContactId",
            [odata.Guid(c) for c in contact_ids],
            select=ContactCommunication.columns(),
            extra_filter=odata.eq("CommunicationTypeId", odata.Guid(EXTENSION_COMMUNICATION_TYPE)),
        )
    ]
    scoped_links = {w: links[w] for w in ids if w in links}
    return UsersSnapshot(
        domain=domain,
        users=tuple(users),
        invalid=tuple(invalid),
        records=tuple(records.values()),
        contacts=tuple(contacts.values()),
        sys_users=tuple(sys_users),
        accounts=tuple(accounts),
        communications=tuple(comms),
        links=scoped_links,
        baselines={w: baselines[w] for w in ids if w in baselines},
        linked_contacts={w: linked_contacts[w] for w in ids if w in linked_contacts},
        record_contacts=record_contacts,
        sys_logins=sys_logins,
    )


def _by_username(webitel, username: str) -> list[WebitelUser]:
    """The Webitel users called ``username`` (``username`` filters with ILIKE: compared again here)."""
    return [u for u in webitel.iter_users(username=username, fields=CHANGE_FIELDS, page_size=50)
            if isinstance(u, WebitelUser) and normalise_key(u.username) == normalise_key(username)]


def extension_holders(webitel, extensions: list[str]) -> Iterator[list[WebitelUser]]:
    """The Webitel users holding each extension: one request per extension (``extension`` takes one
    value, compared with LIKE: compared again here), ``[webitel] max_concurrency`` at a time."""
    def holding(extension: str) -> list[WebitelUser]:
        return [u for u in webitel.iter_users(extension=extension, fields=CHANGE_FIELDS)
                if isinstance(u, WebitelUser) and extension_key(u.extension) == extension_key(extension)]
    return ordered([partial(holding, e) for e in extensions], max_concurrency(webitel), name="wcsync-read")
