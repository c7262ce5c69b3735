"""The users job's plan: every Webitel user becomes one linked Webitel-user record in Creatio.

Pure: a ``UsersSnapshot`` (what was read) and ``UserPlanOptions`` (configuration) in, a ``Plan``
out. ``jobs.apply`` executes it; ``run --dry-run`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from mappings import keys
from mappings.users import UserFacts, contact_draft, display_name, record_fields

from .extensions import Claim, resolve_extensions
from .match import Matcher
from .model import Action, Issue, Plan

from mappings.users import RECORD_FIELDS as COMPARED


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
    """

    domain: str
    users: tuple[Any, ...] = ()
    invalid: tuple[tuple[int | None, Issue], ...] = ()
    records: tuple[Any, ...] = ()
    contacts: tuple[Any, ...] = ()
    sys_users: tuple[Any, ...] = ()
    accounts: tuple[Any, ...] = ()
    communications: tuple[Any, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserPlanOptions:
    account_name: str
    on_missing: str = "deactivate"
    max_deactivations: int = 50
    max_deactivation_share: float = 0.10
    sync_extension_communication: bool = True
    record_fields: frozenset[str] = frozenset(COMPARED)  # the fields the profile's record has


def plan_users(snapshot: UsersSnapshot, options: UserPlanOptions) -> Plan:
    """Compute the users job's plan (see the module docstring)."""
    builder = _Builder(snapshot, options)
    return builder.build()


class _Builder:
    def __init__(self, snapshot: UsersSnapshot, options: UserPlanOptions) -> None:
        self.s, self.o = snapshot, options
        self.actions: list[Action] = []
        self.conflicts: list[Issue] = []
        self.warnings: list[Issue] = []
        self.errors: list[Issue] = [issue for _, issue in snapshot.invalid]
        self.account_id: str | None = None
        self.stats: dict[str, int] = {}

    def build(self) -> Plan:
        matcher = Matcher(self.s)
        planned: list[tuple[Any, str, Any]] = []  # (user, label, match)
        for user in sorted(self.s.users, key=lambda u: u.id):
            label = f"{user.username.strip() or '<no username>'} (id {user.id})"
            if not user.username.strip():
                self.errors.append(Issue("invalid_user", "blank username: cannot be matched or imported",
                                         user=label, webitel_id=user.id, field="username"))
                continue
            found = matcher.match(user, label)
            if found.conflict:
                self.conflicts.append(found.conflict)
                continue
            planned.append((user, label, found))
            self.stats[f"matched_by_{found.step or 'link'}"] = self.stats.get(f"matched_by_{found.step or 'link'}", 0) + 1
        planned = self._one_record_per_contact(planned)
        vanished, guard = self._vanished(planned)
        refused = self._extensions(planned, vanished if guard is None else [])
        for user, label, found in planned:
            self._plan_user(user, label, found, user.id in refused)
        if guard is None:
            self._retire(vanished)
        return Plan("users", tuple(self.actions), tuple(self.conflicts), tuple(self.warnings),
                    tuple(self.errors), guard, self.stats)

    # ---- per user -------------------------------------------------------------------------------
    def _one_record_per_contact(self, planned):
        """A contact backs one Webitel user; a second user matching it is a conflict."""
        owner: dict[str, str] = {}
        for user, label, found in planned:
            if found.record is not None and found.contact_id:
                owner.setdefault(found.contact_id, label)
        kept = []
        for user, label, found in planned:
            contact = found.contact_id
            if contact and found.record is None and contact in owner:
                self.conflicts.append(Issue("contact_in_use", f"the matching contact already belongs to {owner[contact]}",
                                            user=label, webitel_id=user.id, field="username", others=(owner[contact],)))
                continue
            if contact and found.record is None:
                owner[contact] = label
            kept.append((user, label, found))
        return kept

    def _plan_user(self, user, label: str, found, extension_refused: bool) -> None:
        facts = UserFacts(user.id, user.username, user.name, user.email, user.extension.strip())
        record = found.record
        if record is None and extension_refused:
            return  # not created at all while its extension clashes (the conflict says why)
        if not facts.extension:
            self.warnings.append(Issue("no_extension", "no extension: imported, but the user cannot register "
                                       "a SIP phone", user=label, webitel_id=user.id, field="extension"))
        contact = found.contact_id
        depends: tuple[str, ...] = ()
        if found.create_contact:
            contact = keys.contact_id(self.s.domain, user.id)
            account = self._account()
            draft = contact_draft(facts, contact_id=contact, account_id=account)
            self.actions.append(Action("create_contact", "Contact", contact, f"contact:{user.id}", label, user.id,
                                       new=draft, depends_on=(account,) if account else ()))
            depends = (contact,)
        fields = record_fields(facts, contact_id=contact, sys_admin_unit_id=found.sys_user_id,
                               extension=None if extension_refused else facts.extension)
        fields = {k: v for k, v in fields.items() if k in self.o.record_fields}
        key = f"webitel_user:{user.id}"
        if record is None:
            rid = keys.user_record_id(self.s.domain, user.id)
            self.actions.append(Action("create_record", "WebitelUser", rid, key, label, user.id, new=fields,
                                       depends_on=depends))
        else:
            old = {k: getattr(record, k) for k in fields}
            changed = {k: v for k, v in fields.items() if v is not None and old[k] != v}
            if changed:
                self.actions.append(Action("update_record", "WebitelUser", record.id, key, label, user.id,
                                           old={k: old[k] for k in changed}, new=changed))
            elif self.s.links.get(str(user.id)) != record.id:
                self.actions.append(Action("link_record", "WebitelUser", record.id, key, label, user.id))
        if self.o.sync_extension_communication and facts.extension and not extension_refused and contact:
            self._extension_comm(user, label, contact, facts.extension, depends)

    def _extension_comm(self, user, label: str, contact: str, extension: str, depends) -> None:
        existing = [c for c in self._comms_by_contact().get(contact, [])]
        if any(c.number.strip() == extension for c in existing):
            return
        if existing:
            first = min(existing, key=lambda c: c.id)
            self.actions.append(Action("update_extension_comm", "ContactCommunication", first.id,
                                       f"extension_comm:{user.id}", label, user.id, old={"number": first.number},
                                       new={"number": extension}))
        else:
            cid = keys.extension_comm_id(self.s.domain, user.id)
            self.actions.append(Action("create_extension_comm", "ContactCommunication", cid,
                                       f"extension_comm:{user.id}", label, user.id,
                                       new={"contact_id": contact, "number": extension}, depends_on=tuple(depends)))

    def _comms_by_contact(self) -> dict[str, list[Any]]:
        if not hasattr(self, "_comms"):
            self._comms: dict[str, list[Any]] = {}
            for comm in self.s.communications:
                self._comms.setdefault(comm.contact_id, []).append(comm)
        return self._comms

    def _account(self) -> str:
        if self.account_id is None:
            key = keys.normalise_key(self.o.account_name)
            found = sorted((a for a in self.s.accounts if keys.normalise_key(a.name) == key), key=lambda a: a.id)
            if len(found) > 1:
                self.warnings.append(Issue("ambiguous_account", f"{len(found)} accounts are named "
                                           f"{self.o.account_name!r}; new contacts go to {found[0].id}",
                                           others=tuple(a.id for a in found)))
            if found:
                self.account_id = found[0].id
            else:
                self.account_id = keys.account_id(self.o.account_name)
                self.actions.insert(0, Action("create_account", "Account", self.account_id, f"account:{key}",
                                              new={"Id": self.account_id, "Name": keys.tidy(self.o.account_name)}))
        return self.account_id

    # ---- extensions -----------------------------------------------------------------------------
    def _extensions(self, planned, retiring) -> set[int]:
        claimed_records = {found.record.id for _, _, found in planned if found.record is not None}
        retiring_ids = {r.id for r in retiring} if self.o.on_missing != "keep" else set()
        static: dict[str, list[str]] = {}
        for record in self.s.records:
            if record.id in claimed_records or record.id in retiring_ids or record.active is False:
                continue
            ext = (record.extension or "").strip()
            if ext:
                who = record.username or record.name or record.id
                static.setdefault(ext, []).append(f"Creatio record {who!r} ({record.id})")
        for ext, holders in sorted(static.items()):
            if len(holders) > 1:
                self.warnings.append(Issue("duplicate_extension_in_creatio", f"extension {ext} is held by "
                                           f"{len(holders)} Creatio records not linked to Webitel users",
                                           field="extension", others=tuple(holders)))
        claims = [Claim(user.id, label, user.extension.strip(), found.record)
                  for user, label, found in planned if user.extension.strip()]
        refused, issues = resolve_extensions(claims, static)
        self.conflicts.extend(issues)
        return refused

    # ---- vanished users -------------------------------------------------------------------------
    def _vanished(self, planned) -> tuple[list[Any], Issue | None]:
        present = {str(u.id) for u in self.s.users} | {str(i) for i, _ in self.s.invalid if i is not None}
        if any(i is None for i, _ in self.s.invalid):
            self.warnings.append(Issue("vanished_skipped", "a Webitel user without a readable id: vanished users "
                                       "are not looked for in this run"))
            return [], None
        linked_ids = set(self.s.links.values())
        linked = [r for r in self.s.records if r.webitel_id or r.id in linked_ids]
        by_record = {rid: wid for wid, rid in self.s.links.items()}
        gone = [r for r in linked if (r.webitel_id or by_record.get(r.id)) not in present]
        if self.o.on_missing == "keep":
            return gone, None
        if self.o.on_missing == "deactivate":
            gone = [r for r in gone if r.active is not False]
        active_linked = sum(1 for r in linked if r.active is not False)
        limit = min(self.o.max_deactivations, math.ceil(self.o.max_deactivation_share * active_linked))
        if len(gone) > limit:
            guard = Issue("deactivation_cap", f"{len(gone)} Webitel users disappeared, more than the limit of "
                          f"{limit} (max_deactivations {self.o.max_deactivations}, max_deactivation_share "
                          f"{self.o.max_deactivation_share} of {active_linked}); nothing was deactivated")
            self.conflicts.append(guard)
            return gone, guard
        return gone, None

    def _retire(self, gone) -> None:
        if self.o.on_missing == "keep":
            return
        by_record = {rid: wid for wid, rid in self.s.links.items()}
        for record in gone:
            wid = record.webitel_id or by_record.get(record.id, "")
            label = f"{record.username or record.name} (id {wid})"
            key = f"webitel_user:{wid}"
            if self.o.on_missing == "delete":
                self.actions.append(Action("delete_record", "WebitelUser", record.id, key, label,
                                           int(wid) if str(wid).isdigit() else None, old={"name": record.name}))
            elif "active" in self.o.record_fields:
                self.actions.append(Action("deactivate_record", "WebitelUser", record.id, key, label,
                                           int(wid) if str(wid).isdigit() else None, old={"active": True},
                                           new={"active": False}))
