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
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from connector.creatio import odata
from connector.creatio.models import Account, Contact, ContactCommunication, SysUser
from connector.creatio.records import WebitelUserRecord
from connector.errors import RecordError
from connector.webitel import WebitelUser
from mappings.keys import normalise_key, tidy
from mappings.profiles import EXTENSION_COMMUNICATION_TYPE, SYS_ADMIN_UNIT_USER, ObjectModel
from mappings.users import display_name

from .plan import Issue, UsersSnapshot

log = logging.getLogger(__name__)
_ID = re.compile(r"\(id (\d+)\)")
URL_OVERHEAD = 400
# Only what the users job reads (grants are the licences job's): less to send, parse and hold.
IMPORT_FIELDS = ("id", "username", "name", "email", "extension")


@dataclass
class ReadStats:
    """How each table was read, for the report and the benchmarks.

    ``floor`` is the fewest requests each read could have taken (pages of the table, or the
    lookups, whichever is less); benchmarks compare the requests made with it.
    """

    strategies: dict[str, str]
    floor: dict[str, int] = field(default_factory=dict)


def read_users_snapshot(webitel, creatio, model: ObjectModel, *, domain: str, account_name: str,
                        links: dict[str, str], baselines: dict[str, dict] | None = None,
                        provisioning: bool = False,
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
    records, bad_rows = [], []
    for row in creatio.iter_rows(model.webitel_user.entity, select=WebitelUserRecord.columns(model)):
        try:
            records.append(WebitelUserRecord.from_row(row, model))
        except RecordError as exc:
            bad_rows.append((None, Issue("invalid_record", str(exc), field=exc.field)))
    stats.floor["webitel users"] = max(1, math.ceil((len(users) + len(invalid)) / webitel_page))
    stats.floor[model.webitel_user.entity] = max(1, math.ceil(len(records) / creatio.settings.page_size))
    names = {tidy(u.username) for u in users} | {display_name(u) for u in users}
    names.discard("")
    progress("looking up matching contacts")
    # A whole-table read sees every contact; only those that can match are kept.
    name_keys = {normalise_key(n) for n in names}
    contacts = [c for c in map(Contact.from_row, _lookup(creatio, "Contact", "Name", names, Contact.SELECT, None,
                                                         stats)) if normalise_key(c.name) in name_keys]
    progress("looking up matching system users")
    user_filter = odata.eq("SysAdminUnitTypeValue", SYS_ADMIN_UNIT_USER)
    logins = {tidy(u.username) for u in users} - {""}
    login_keys = {normalise_key(n) for n in logins}
    sys_users = [s for s in map(SysUser.from_row, _lookup(creatio, "SysAdminUnit", "Name", logins, SysUser.SELECT,
                                                          user_filter, stats)) if normalise_key(s.name) in login_keys]
    accounts = [Account.from_row(r) for r in creatio.iter_rows(
        "Account", select=list(Account.SELECT), filter=odata.eq("Name", tidy(account_name)))]
    stats.floor["Account"] = 1
    contact_ids = {r.contact_id for r in records if r.contact_id} | {c.id for c in contacts} | {
        s.contact_id for s in sys_users if s.contact_id}
    progress("reading extension communication options")
    type_filter = odata.eq("CommunicationTypeId", odata.Guid(EXTENSION_COMMUNICATION_TYPE))
    comms = [c for c in map(ContactCommunication.from_row, _lookup(
        creatio, "ContactCommunication", "ContactId", {odata.Guid(c) for c in contact_ids},
        ContactCommunication.SELECT, type_filter, stats)) if c.contact_id in contact_ids]
    record_contacts, sys_logins = {}, {}
    if provisioning:
        progress("reading records awaiting provisioning")
        record_contacts, sys_logins = _provisioning_details(creatio, records, links, contacts, stats)
    snapshot = UsersSnapshot(domain=domain, users=tuple(users), invalid=tuple(invalid + bad_rows),
                             records=tuple(records), contacts=tuple(contacts), sys_users=tuple(sys_users),
                             accounts=tuple(accounts), communications=tuple(comms), links=dict(links),
                             baselines=dict(baselines or {}), record_contacts=record_contacts, sys_logins=sys_logins)
    return snapshot, stats


def _provisioning_details(creatio, records, links: dict[str, str], contacts,
                          stats: ReadStats) -> tuple[dict, dict]:
    """Contacts and Creatio-user logins of the records no Webitel user is linked to (usually few)."""
    linked = set(links.values())
    waiting = [r for r in records if not r.webitel_id and r.id not in linked and r.active is not False]
    known = {c.id: c for c in contacts}
    want_contacts = [odata.Guid(i) for i in sorted({r.contact_id for r in waiting
                                                     if r.contact_id and r.contact_id not in known})]
    found = {c.id: c for c in map(Contact.from_row, _by_ids(creatio, "Contact", want_contacts, Contact.SELECT,
                                                             stats, "Contact by Id"))}
    record_contacts = {r.contact_id: known.get(r.contact_id) or found.get(r.contact_id)
                       for r in waiting if r.contact_id and (r.contact_id in known or r.contact_id in found)}
    want_users = [odata.Guid(i) for i in sorted({r.sys_admin_unit_id for r in waiting if r.sys_admin_unit_id})]
    logins = {s.id: s.name for s in map(SysUser.from_row, _by_ids(creatio, "SysAdminUnit", want_users,
                                                                  SysUser.SELECT, stats, "SysAdminUnit by Id"))}
    return record_contacts, logins


def _by_ids(creatio, entity: str, ids: list, select, stats: ReadStats, label: str) -> Iterator[dict]:
    """Rows by Id in URL-sized chunks; the chunks are part of the request floor."""
    if ids:
        stats.floor[label] = _lookup_count(creatio, "Id", ids)
    return creatio.iter_by_values(entity, "Id", ids, select=list(select))


def _lookup(creatio, entity: str, column: str, values: Iterable, select, extra_filter: str | None,
            stats: ReadStats) -> Iterator[dict]:
    """Rows whose ``column`` is one of ``values``: in chunks, or the whole table when cheaper.

    Streams rows page by page, so a caller that keeps only typed records never holds every raw
    row of a large table at once.
    """
    values = sorted(set(values), key=str)
    if not values:
        stats.strategies[entity] = "none needed"
        stats.floor[entity] = 0
        return iter(())
    lookups = _lookup_count(creatio, column, values)
    if lookups == 1:  # no whole-table read can cost less than one request: skip the $count
        stats.strategies[entity] = f"1 lookup for {len(values)} values"
        stats.floor[entity] = 1
        return creatio.iter_by_values(entity, column, values, select=list(select), extra_filter=extra_filter)
    total = creatio.count(entity, extra_filter)
    whole_pages = max(1, math.ceil(total / creatio.settings.page_size))
    stats.floor[entity] = min(whole_pages, lookups)
    if whole_pages <= lookups:
        stats.strategies[entity] = f"whole table ({total} rows, {whole_pages} pages)"
        return creatio.iter_rows(entity, select=list(select), filter=extra_filter)
    stats.strategies[entity] = f"about {lookups} lookups for {len(values)} values ({total} rows in the table)"
    return creatio.iter_by_values(entity, column, values, select=list(select), extra_filter=extra_filter)


def _lookup_count(creatio, column: str, values) -> int:
    """About how many lookups ``values`` take (the rest of the URL takes a few hundred characters)."""
    return len(odata.chunk_any_of(column, values, max_chars=creatio.settings.max_url_length - URL_OVERHEAD))
