"""Matching a Webitel user to a Creatio contact, in the order of the design; first hit wins.

1. an existing link (the record carrying the user's Webitel id, the state store's link, or the
   record with our deterministic Id), or the contact an administrator linked the user to;
2. a Creatio system user whose login equals the username, and that user's contact;
3. a Contact named like the username, then one named like the display name.
On a normalised key (``mappings.keys.normalise_key``). Two or more candidates at one step is an
``ambiguous_match``: reported, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from mappings.keys import contact_id as own_contact_id
from mappings.keys import normalise_key, user_record_id
from mappings.users import display_name

from jobs.plan.model import Issue


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome for one user: its record (existing or None), contact, system user, or a conflict."""

    record: Any | None = None
    contact_id: str | None = None        # None with create_contact True: a contact is to be created
    create_contact: bool = False
    sys_user_id: str | None = None
    step: str = ""
    conflict: Issue | None = None


def index_by(items: Iterable[Any], key) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        k = key(item)
        if k:
            out[k].append(item)
    return out


class Matcher:
    """Indexes of one snapshot, built once, asked once per user."""

    def __init__(self, snapshot) -> None:
        self.domain = snapshot.domain
        self._own_record_ids: dict[int, str] = {}
        self.records_by_id = {r.id: r for r in snapshot.records}
        self.records_by_webitel_id = {r.webitel_id: r for r in snapshot.records if r.webitel_id}
        linked_ids = set(snapshot.links.values())
        unlinked = [r for r in snapshot.records if not r.webitel_id and r.id not in linked_ids]
        self.unlinked_by_username = index_by(unlinked, lambda r: normalise_key(r.username))
        self.unlinked_by_contact = index_by(unlinked, lambda r: r.contact_id)
        self.links = snapshot.links
        self.linked_contacts = snapshot.linked_contacts
        # Contacts we created for user X are X's alone, even before X's record exists (after a crash).
        # Only those that exist can be found or claimed: the others are not kept.
        self.contacts_by_id = {c.id: c for c in snapshot.contacts}
        self.own_contacts: dict[str, int] = {}
        self.own_contact_of: dict[int, str] = {}
        self.user_ids = frozenset(u.id for u in snapshot.users)
        for user in snapshot.users:
            own = own_contact_id(self.domain, user.id)
            if own in self.contacts_by_id:
                self.own_contacts[own] = user.id
                self.own_contact_of[user.id] = own
        self.contacts_by_name = index_by(snapshot.contacts, lambda c: normalise_key(c.name))
        self.sys_by_login = index_by(snapshot.sys_users, lambda s: normalise_key(s.name))

    def linked_record(self, user) -> Any | None:
        """Step 1: the record already linked to ``user``."""
        return (
            self.records_by_webitel_id.get(str(user.id))
            or self.records_by_id.get(self.links.get(str(user.id), ""))
            # No records at all (a first import): no Id to work out for each user.
            or (self.records_by_id.get(self.own_record_id(user.id)) if self.records_by_id else None)
        )

    def own_record_id(self, user_id: int) -> str:
        """The deterministic Id of ``user_id``'s record (worked out once: the plan asks again)."""
        found = self._own_record_ids.get(user_id)
        if found is None:
            found = self._own_record_ids[user_id] = user_record_id(self.domain, user_id)
        return found

    def match(self, user, label: str) -> Match:
        login = normalise_key(user.username)  # asked of several indexes: normalised once
        record = self.linked_record(user)
        step = "link" if record else ""
        chosen = self.linked_contacts.get(str(user.id))
        if record is None and chosen:
            return self._linked_by_admin(user, label, chosen, login)
        if record is None:
            adopted = self.unlinked_by_username.get(login, [])
            if len(adopted) > 1:
                return Match(
                    conflict=self._ambiguous(
                        user,
                        label,
                        "Webitel-user records with this username",
                        [f"record {r.name!r} ({r.id})" for r in adopted],
                    )
                )
            if adopted:
                record, step = adopted[0], "record_username"
        sys_user, conflict = self._sys_user(user, label, login)
        if conflict:
            return Match(conflict=conflict)
        sys_id = sys_user.id if sys_user else None
        if record is not None and record.contact_id:
            return Match(
                record=record,
                contact_id=record.contact_id,
                sys_user_id=sys_id or record.sys_admin_unit_id,
                step=step,
            )
        contact, how, conflict = self._contact(user, label, sys_user, login)
        if conflict:
            return Match(conflict=conflict)
        if record is None and contact is not None:
            by_contact = self.unlinked_by_contact.get(contact, [])
            if len(by_contact) > 1:
                return Match(
                    conflict=self._ambiguous(
                        user,
                        label,
                        "Webitel-user records of this contact",
                        [f"record {r.name!r} ({r.id})" for r in by_contact],
                    )
                )
            if by_contact:
                record, how = by_contact[0], how + "+record_contact"
        return Match(
            record=record,
            contact_id=contact,
            create_contact=contact is None,
            sys_user_id=sys_id,
            step=step or how,
        )

    def _linked_by_admin(self, user, label: str, contact_id: str, login: str) -> Match:
        """Step 1 for a user an administrator linked to a contact (``link``): that contact."""
        if contact_id not in self.contacts_by_id:
            return Match(conflict=Issue(
                "linked_contact_missing", f"the contact {contact_id} an administrator linked this user to "
                "no longer exists; link again or unlink", user=label, webitel_id=user.id, field="contact"))
        records = self.unlinked_by_contact.get(contact_id, [])
        sys_users = self.sys_by_login.get(login, [])
        sys_id = sys_users[0].id if len(sys_users) == 1 and sys_users[0].contact_id == contact_id else None
        return Match(record=records[0] if len(records) == 1 else None, contact_id=contact_id,
                     sys_user_id=sys_id, step="admin_link")

    def _sys_user(self, user, label: str, login: str):
        found = self.sys_by_login.get(login, [])
        if len(found) > 1:
            return None, self._ambiguous(
                user,
                label,
                "system users with this login",
                [f"system user {s.name!r} ({s.id})" for s in found],
            )
        return (found[0] if found else None), None

    def _contact(self, user, label: str, sys_user, login: str) -> tuple[str | None, str, Issue | None]:
        own = self.own_contact_of.get(user.id)
        if own is None and user.id not in self.user_ids:
            own = own_contact_id(self.domain, user.id)  # a user the snapshot does not hold
        if own in self.contacts_by_id:
            return own, "own_contact", None
        if sys_user is not None and sys_user.contact_id:
            return sys_user.contact_id, "system_user", None
        for step, name, key in (("contact_username", user.username, login),
                                ("contact_display_name", display_name(user), None)):
            found = [
                c
                for c in self.contacts_by_name.get(key if key is not None else normalise_key(name), [])
                if self.own_contacts.get(c.id, user.id) == user.id
            ]
            if len(found) > 1:
                return (
                    None,
                    step,
                    self._ambiguous(
                        user,
                        label,
                        f"contacts named {name.strip()!r}",
                        [f"contact {c.name!r} ({c.id})" for c in found],
                    ),
                )
            if found:
                return found[0].id, step, None
        return None, "created", None

    @staticmethod
    def _ambiguous(user, label: str, what: str, candidates: list[str]) -> Issue:
        return Issue(
            "ambiguous_match",
            f"{len(candidates)} {what}: nothing written until an administrator "
            f"links the user or renames the duplicates",
            user=label,
            webitel_id=user.id,
            field="username",
            others=tuple(sorted(candidates)),
        )
