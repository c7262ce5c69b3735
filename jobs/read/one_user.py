"""Reading both sides for one user on demand (``run --user``): a handful of filtered requests.

Webitel: the user (by username or id), the users holding its extension, the licence catalog.
Creatio: the records that are the user's or hold its extension, the contacts that can match
(by name, and by the Ids already known), the system users of its login, the account, the
extension options of those contacts, and, for the licences, the licence records and the user's
grant rows. Extension uniqueness stays as strict as in a full run: every holder of the
extension, on either side, is read.
"""

from __future__ import annotations

from typing import Callable

from connector.creatio import odata
from connector.creatio.objects import ObjectModel
from connector.creatio.records import (Account, Contact, ContactCommunication, GrantRecord, LicenseRecord,
                                       SysUser, WebitelUserRecord)
from connector.creatio.values import EXTENSION_COMMUNICATION_TYPE, SYS_ADMIN_UNIT_USER
from connector.errors import Refused
from connector.webitel.models import WebitelUser
from mappings.keys import contact_id as own_contact_id
from mappings.keys import tidy, user_record_id
from mappings.users import display_name, user_label

from jobs.read.changes import extension_holders
from jobs.read.snapshots import AgreedFields, LicenseSnapshot, UsersSnapshot

USER_FIELDS = ("id", "username", "name", "email", "extension", "license")


def read_one_user(webitel, creatio, model: ObjectModel, *, user: str, domain: str, account_name: str,
                  links: dict[str, str], baselines: dict[str, AgreedFields], linked_contacts: dict[str, str],
                  trace: Callable[[str], None]) -> tuple[UsersSnapshot, WebitelUser]:
    """The users snapshot of one Webitel user (a username or an id), and the user.

    Raises:
        Refused: there is no such Webitel user.
    """
    found = _webitel_user(webitel, user)
    label = user_label(found.username, found.id)
    ext = tidy(found.extension)
    trace(f"read Webitel user {label}: extension {ext or '(none)'}, "
          f"{len(found.serials)} licence(s)")
    holders: dict[str, tuple[str, ...]] = {}
    if ext:
        (held,) = extension_holders(webitel, [ext])
        others = [u for u in held if u.id != found.id]
        if others:
            holders[ext] = tuple(user_label(u.username, u.id) for u in others)
            trace(f"read Webitel: extension {ext} is also held by {', '.join(holders[ext])}")
    table = model.webitel_user
    wid = str(found.id)
    mine = [odata.eq("Id", odata.Guid(user_record_id(domain, found.id)))]
    if links.get(wid):
        mine.append(odata.eq("Id", odata.Guid(links[wid])))
    if table.webitel_id:
        mine.append(odata.eq(table.webitel_id, wid))
    if ext and table.extension:
        mine.append(odata.eq(table.extension, ext))
    records = [WebitelUserRecord.from_row(r, model) for r in creatio.iter_rows(
        table.entity, select=WebitelUserRecord.columns(model), filter=odata.or_(*mine))]
    trace(f"read Creatio: {len(records)} {table.entity} record(s) of the user or its extension")
    names = sorted({n for n in (tidy(found.username), display_name(found)) if n})
    known_ids = {own_contact_id(domain, found.id), *(r.contact_id for r in records if r.contact_id)}
    if linked_contacts.get(wid):
        known_ids.add(linked_contacts[wid])
    contact_filter = odata.or_(odata.any_of("Name", names), odata.any_of("Id", [odata.Guid(i) for i in sorted(
        known_ids)])) if names else odata.any_of("Id", [odata.Guid(i) for i in sorted(known_ids)])
    contacts = [Contact.from_row(r) for r in creatio.iter_rows("Contact", select=Contact.columns(),
                                                               filter=contact_filter)]
    sys_users = [SysUser.from_row(r) for r in creatio.iter_rows(
        "SysAdminUnit", select=SysUser.columns(), filter=odata.and_(
            odata.eq("SysAdminUnitTypeValue", SYS_ADMIN_UNIT_USER), odata.eq("Name", tidy(found.username))))
    ] if tidy(found.username) else []
    accounts = [Account.from_row(r) for r in creatio.iter_rows(
        "Account", select=Account.columns(), filter=odata.eq("Name", tidy(account_name)))]
    contact_ids = sorted({c.id for c in contacts} | {r.contact_id for r in records if r.contact_id}
                         | {s.contact_id for s in sys_users if s.contact_id})
    comms = [ContactCommunication.from_row(r) for r in creatio.iter_rows(
        "ContactCommunication", select=ContactCommunication.columns(), filter=odata.and_(
            odata.eq("CommunicationTypeId", odata.Guid(EXTENSION_COMMUNICATION_TYPE)),
            odata.any_of("ContactId", [odata.Guid(c) for c in contact_ids])))] if contact_ids else []
    trace(f"read Creatio: {len(contacts)} contact(s) that can match, {len(sys_users)} system user(s), "
          f"{len(accounts)} account(s), {len(comms)} extension option(s)")
    snapshot = UsersSnapshot(
        domain=domain,
        users=(found,),
        records=tuple(records),
        contacts=tuple(contacts),
        sys_users=tuple(sys_users),
        accounts=tuple(accounts),
        communications=tuple(comms),
        links={wid: links[wid]} if wid in links else {},
        baselines={wid: baselines[wid]} if wid in baselines else {},
        linked_contacts={wid: linked_contacts[wid]} if wid in linked_contacts else {},
        outside_holders=holders,
    )
    return snapshot, found


def read_user_licences(
    webitel,
    creatio,
    model: ObjectModel,
    *,
    user: WebitelUser,
    record_id: str | None,
    domain: str,
    baseline,
    now,
    trace: Callable[[str], None],
) -> LicenseSnapshot:
    """The licences snapshot of one user: the catalog, the user's grants on both sides."""
    licenses = tuple(webitel.iter_licenses())
    records = tuple(
        LicenseRecord.from_row(r, model)
        for r in creatio.iter_rows(LicenseRecord.entity(model), select=LicenseRecord.columns(model))
    )
    rows: tuple = ()
    if record_id is not None:
        grant = model.webitel_user_license
        rows = tuple(
            GrantRecord.from_row(r, model)
            for r in creatio.iter_rows(
                GrantRecord.entity(model),
                select=GrantRecord.columns(model),
                filter=odata.eq(grant.user, odata.Guid(record_id)),
            )
        )
    wid = str(user.id)
    trace(
        f"read licences: {len(licenses)} in Webitel's catalog, {len(records)} in Creatio's; the user holds "
        f"{len(user.serials)} in Webitel and {len(rows)} in Creatio"
    )
    mine = None if baseline is None else frozenset(g for g in baseline if g[0] == wid)
    return LicenseSnapshot(
        domain=domain,
        now=now,
        licenses=licenses,
        webitel_grants={wid: frozenset(s.lower() for s in user.serials)},
        usernames={wid: user.username},
        license_records=records,
        user_record_ids={wid: record_id} if record_id else {},
        grant_rows=rows,
        baseline=mine,
    )


def _webitel_user(webitel, user: str) -> WebitelUser:
    text = user.strip()
    if text.isdigit():
        found = [
            u
            for u in webitel.iter_users(id=[int(text)], fields=USER_FIELDS)
            if isinstance(u, WebitelUser) and u.id == int(text)
        ]
        if found:
            return found[0]
    else:
        for u in webitel.iter_users(username=text, fields=USER_FIELDS, page_size=50):
            if isinstance(u, WebitelUser) and u.username.casefold() == text.casefold():
                return u
    raise Refused(f"no Webitel user {user!r}")
