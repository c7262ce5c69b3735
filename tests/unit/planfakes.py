"""Plain in-memory stand-ins for snapshot items, and a pure applier of user plans (test helpers)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from jobs.plan import UsersSnapshot


@dataclass(frozen=True)
class U:
    id: int
    username: str
    name: str = ""
    email: str = ""
    extension: str = ""


@dataclass(frozen=True)
class Rec:
    id: str
    name: str = ""
    username: str = ""
    webitel_id: str = ""
    extension: str = ""
    contact_id: str | None = None
    sys_admin_unit_id: str | None = None
    active: bool = True


@dataclass(frozen=True)
class C:
    id: str
    name: str
    email: str = ""
    account_id: str | None = None


@dataclass(frozen=True)
class S:
    id: str
    name: str
    contact_id: str | None = None


@dataclass(frozen=True)
class A:
    id: str
    name: str


@dataclass(frozen=True)
class Comm:
    id: str
    contact_id: str
    number: str
    type_id: str = "e9d91e45-8d92-4e38-95a0-ef8aa28c9e7a"


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
        if action.object == "WebitelUser" and action.webitel_id is not None and action.kind != "delete_record":
            links[str(action.webitel_id)] = action.id
    return replace(snapshot, records=tuple(records.values()), contacts=tuple(contacts.values()),
                   accounts=tuple(accounts.values()), communications=tuple(comms.values()), links=links)
