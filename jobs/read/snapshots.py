"""What the read phase hands to the plan: typed snapshots of both sides, and the findings about
single records (``Issue``) that reading starts and planning and applying add to. Pure data.

The snapshots hold the real records of the boundary (``connector.webitel.models.WebitelUser``,
``connector.creatio.records.*``); they are named in annotations only, so importing this module
loads no client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

if TYPE_CHECKING:
    from connector.creatio.records import (Account, Contact, ContactCommunication, GrantRecord, LicenseRecord,
                                           SysUser, WebitelUserRecord)
    from connector.webitel.models import License, WebitelUser

Grant = tuple[str, str]  # (Webitel user id, licence serial in lower case)


@dataclass(frozen=True, slots=True)
class Issue:
    """A conflict, warning or error found while planning or applying.

    Attributes:
        kind: ``ambiguous_match``, ``duplicate_extension``, ``deactivation_cap``, ``no_extension``, ...
        message: one sentence for an administrator.
        user: the Webitel user concerned (``ann (id 17)``), or "".
        webitel_id: its id, when known.
        field: the field at fault, when one is.
        others: the other parties (the other holder of an extension, the candidate contacts).
    """

    kind: str
    message: str
    user: str = ""
    webitel_id: int | None = None
    field: str = ""
    others: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.user:
            out["user"] = self.user
            out["username"] = self.user.rsplit(" (id ", 1)[0]
        if self.webitel_id is not None:
            out["webitel_id"] = self.webitel_id
        if self.field:
            out["field"] = self.field
        if self.others:
            out["others"] = list(self.others)
        return out


class AgreedFields(NamedTuple):
    """The name and extension both sides agreed on at the last run (one per linked user)."""

    name: str
    extension: str

    def get(self, field_name: str, default: str | None = None) -> str | None:
        return getattr(self, field_name, default)


@dataclass(frozen=True)
class UsersSnapshot:
    """Both sides as read at the start of a run.

    Attributes:
        domain: the Webitel domain (part of every deterministic Id).
        users: the Webitel users that parsed (``id, username, name, email, extension``).
        invalid: users that did not parse: ``(webitel id or None, Issue)``.
        records: every Webitel-user record in Creatio (``id, name, username, webitel_id, extension,
            contact_id, sys_admin_unit_id, active``).
        contacts: the contacts that can match (looked up by name, by record, by our own Ids).
        sys_users: the system users whose login can match.
        accounts: the accounts named like the configured account.
        communications: Extension communication options of the candidate contacts.
        links: the state store's links, Webitel id -> record Id.
        baselines: per linked Webitel id, the name and extension both sides agreed on last run.
        record_contacts: contacts of records awaiting provisioning, by Id.
        sys_logins: logins of the Creatio users of records awaiting provisioning, by Id.
        unreadable_records: Ids of records that exist but did not parse: never taken for deleted.
        linked_contacts: Webitel id -> the contact an administrator linked the user to (``link``).
        outside_holders: extension -> the Webitel users holding it that a scoped snapshot (one
            user on demand) does not hold: they keep it, for uniqueness.
    """

    domain: str
    users: tuple[WebitelUser, ...] = ()
    invalid: tuple[tuple[int | None, Issue], ...] = ()
    records: tuple[WebitelUserRecord, ...] = ()
    contacts: tuple[Contact, ...] = ()
    sys_users: tuple[SysUser, ...] = ()
    accounts: tuple[Account, ...] = ()
    communications: tuple[ContactCommunication, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    baselines: Mapping[str, AgreedFields] = field(default_factory=dict)
    record_contacts: Mapping[str, Contact] = field(default_factory=dict)
    sys_logins: Mapping[str, str] = field(default_factory=dict)
    unreadable_records: frozenset[str] = frozenset()
    linked_contacts: Mapping[str, str] = field(default_factory=dict)
    outside_holders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class LicenseSnapshot:
    """Both sides as read for the licences job.

    Attributes:
        domain: the Webitel domain (part of our deterministic Ids).
        now: the moment validity is judged at.
        licenses: the Webitel catalog (``connector.webitel.License``).
        webitel_grants: Webitel user id -> the serials the user holds.
        usernames: Webitel user id -> username, for reports.
        license_records: the catalog as it is in Creatio (``LicenseRecord``).
        user_record_ids: Webitel user id -> its Webitel-user record Id in Creatio.
        grant_rows: "User Licenses" rows (``GrantRecord``).
        baseline: grants agreed after the last licence sync, or None before the first.
        outside_grants: baseline grants of the users outside a scoped snapshot (an incremental
            cycle), so that the revocation cap's share is of every grant, as in a full read.
    """

    domain: str
    now: datetime
    licenses: tuple[License, ...] = ()
    webitel_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    usernames: Mapping[str, str] = field(default_factory=dict)
    license_records: tuple[LicenseRecord, ...] = ()
    user_record_ids: Mapping[str, str] = field(default_factory=dict)
    grant_rows: tuple[GrantRecord, ...] = ()
    baseline: frozenset[Grant] | None = None
    invalid: tuple[Issue, ...] = ()
    outside_grants: int = 0
    recent_rows: tuple[tuple[GrantRecord, datetime], ...] = ()  # rows created lately, with CreatedOn
