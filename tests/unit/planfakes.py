"""Snapshot items built from the real record classes, and a pure applier of user plans (test helpers)."""

from __future__ import annotations

from dataclasses import replace

from connector.creatio.records import Account, Contact, ContactCommunication, SysUser, WebitelUserRecord
from connector.creatio.values import EXTENSION_COMMUNICATION_TYPE
from connector.webitel.models import WebitelUser
from jobs.read.snapshots import UsersSnapshot


# The real record classes of the boundary, with the defaults the plan tests write least.
def U(id: int, username: str, name: str = "", email: str = "", extension: str = "") -> WebitelUser:
    return WebitelUser(id=id, username=username, name=name, email=email, extension=extension)


def Rec(
    id: str,
    name: str = "",
    username: str = "",
    webitel_id: str = "",
    extension: str = "",
    contact_id: str | None = None,
    sys_admin_unit_id: str | None = None,
    active: bool = True,
) -> WebitelUserRecord:
    return WebitelUserRecord(id, name, username, webitel_id, extension, contact_id, sys_admin_unit_id, active)


def C(id: str, name: str, email: str = "", account_id: str | None = None) -> Contact:
    return Contact(id, name, email, account_id)


def S(id: str, name: str, contact_id: str | None = None, active: bool = True) -> SysUser:
    return SysUser(id, name, contact_id, active)


def A(id: str, name: str) -> Account:
    return Account(id, name)


def Comm(
    id: str, contact_id: str, number: str, type_id: str = EXTENSION_COMMUNICATION_TYPE
) -> ContactCommunication:
    return ContactCommunication(id, contact_id, type_id, number)


def apply_in_memory(snapshot: UsersSnapshot, plan) -> UsersSnapshot:
    """What the snapshot would read after ``plan`` was applied in full."""
    records = {r.id: r for r in snapshot.records}
    contacts = {c.id: c for c in snapshot.contacts}
    accounts = {a.id: a for a in snapshot.accounts}
    comms = {c.id: c for c in snapshot.communications}
    links = dict(snapshot.links)
    for action in plan.actions:
        new = action.new or {}
        if action.kind == "create_account":
            accounts[action.id] = A(action.id, new["Name"])
        elif action.kind == "create_contact":
            contacts[action.id] = C(action.id, new["Name"], new.get("Email", ""), new.get("AccountId"))
        elif action.kind == "create_record":
            records[action.id] = Rec(action.id, **new)
        elif action.kind in ("update_record", "deactivate_record"):
            records[action.id] = replace(records[action.id], **new)
        elif action.kind == "delete_record":
            del records[action.id]
        elif action.kind == "create_extension_comm":
            comms[action.id] = Comm(action.id, new["contact_id"], new["number"])
        elif action.kind == "update_extension_comm":
            comms[action.id] = replace(comms[action.id], number=new["number"])
        if (
            action.object == "WebitelUser"
            and action.webitel_id is not None
            and action.kind != "delete_record"
        ):
            links[str(action.webitel_id)] = action.id
    return replace(
        snapshot,
        records=tuple(records.values()),
        contacts=tuple(contacts.values()),
        accounts=tuple(accounts.values()),
        communications=tuple(comms.values()),
        links=links,
    )
