"""The users job's plan: every Webitel user becomes one linked Webitel-user record in Creatio.

Pure: a ``UsersSnapshot`` (what was read) and ``UserPlanOptions`` (configuration) in, a ``Plan``
out. ``jobs.apply`` executes it; ``run --dry-run`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mappings import keys
from mappings.keys import extension_key, extension_problem, normalise_key, tidy
from mappings.users import UserFacts, contact_draft, display_name, record_values, user_label

from jobs.plan.extensions import Claim, resolve_extensions
from jobs.plan.match import Matcher
from jobs.plan.model import Action, Issue, Plan
from jobs.read.snapshots import UsersSnapshot
from jobs.plan.provision import (
    SYNCED_FIELDS,
    ProvisionOptions,
    check_candidates,
    delete_action,
    merge_field,
    provision_action,
    provision_candidates,
    update_webitel_action,
)

from mappings.users import RECORD_FIELDS as COMPARED


@dataclass(frozen=True)
class UserPlanOptions:
    account_name: str
    on_missing: str = "deactivate"
    max_deactivations: int = 50
    max_deactivation_share: float = 0.10
    sync_extension_communication: bool = True
    mapped_fields: frozenset[str] = frozenset(COMPARED)  # the record fields whose column the site has
    # An administrator's approval of this one run: up to this many deactivations and deletions go
    # ahead even over the cap (``run --allow-deactivations N``).
    approved_deactivations: int = 0
    required_fields: frozenset[str] = frozenset()  # the record fields the site requires
    # A scoped snapshot (an incremental cycle, ``run --user``) holds only some users: nothing is
    # taken for vanished or deleted. ``provision_records``: the records awaiting provisioning in the
    # snapshot are planned (an incremental cycle reads the new ones; ``run --user`` looks at none).
    scoped: bool = False
    provision_records: bool = True
    provisioning: ProvisionOptions = ProvisionOptions(enabled=False)


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
        self.comms_by_contact: dict[str, list[Any]] = {}
        for comm in snapshot.communications:
            self.comms_by_contact.setdefault(comm.contact_id, []).append(comm)
        self.stats: dict[str, int] = {}

    def build(self) -> Plan:
        matcher = self.matcher = Matcher(self.s)
        planned: list[tuple[Any, str, Any]] = []  # (user, label, match)
        deleted = self._deleted_in_creatio(matcher)
        for user in sorted(self.s.users, key=lambda u: u.id):
            label = user_label(user.username, user.id)
            if user.id in deleted:
                continue
            if not user.username.strip():
                self.errors.append(
                    Issue(
                        "invalid_user",
                        "blank username: cannot be matched or imported",
                        user=label,
                        webitel_id=user.id,
                        field="username",
                    )
                )
                continue
            found = matcher.match(user, label)
            if found.conflict:
                self.conflicts.append(found.conflict)
                continue
            planned.append((user, label, found))
            self.stats[f"matched_by_{found.step or 'link'}"] = (
                self.stats.get(f"matched_by_{found.step or 'link'}", 0) + 1
            )
        planned = self._one_record_per_contact(planned)
        # Only users whose merged values differ from Webitel's are kept (most are not, and a run
        # can hold tens of thousands).
        self.merged = {}
        for user, label, found in planned:
            webitel = self._webitel_values(user)
            merged = self._merge_fields(user, label, found, webitel)
            if merged is not webitel and merged != webitel:
                self.merged[user.id] = merged
        vanished, guard = self._vanished(planned, deleted)
        refused = self._extensions(planned, vanished if guard is None else [])
        for user, label, found in planned:
            self._plan_user(user, label, found, user.id in refused)
        if guard is None:
            self._retire(vanished)
            self._delete_in_webitel(deleted)
        self._provision(planned)
        return Plan(
            "users",
            tuple(self.actions),
            tuple(self.conflicts),
            tuple(self.warnings),
            tuple(self.errors),
            guard,
            self.stats,
        )

    # ---- Creatio -> Webitel ---------------------------------------------------------------------
    def _deleted_in_creatio(self, matcher: Matcher) -> dict[int, str]:
        """Linked users whose record was deleted in Creatio: Webitel id -> the record's Id."""
        p = self.o.provisioning
        if not p.enabled or p.on_delete == "keep" or self.o.scoped:
            return {}
        present = {u.id for u in self.s.users}
        return {
            int(wid): rid
            for wid, rid in self.s.links.items()
            if wid.isdigit() and int(wid) in present and rid not in matcher.records_by_id
            and rid not in self.s.unreadable_records
        }

    def _delete_in_webitel(self, deleted: dict[int, str]) -> None:
        names = {u.id: u.username for u in self.s.users}
        for wid, rid in sorted(deleted.items()):
            self.actions.append(
                delete_action(
                    str(wid), user_label(names.get(wid, "?"), wid), rid, self.o.provisioning.on_delete
                )
            )

    @staticmethod
    def _webitel_values(user) -> dict[str, str]:
        return {
            "name": display_name(UserFacts(user.id, user.username, user.name, "", "")),
            "extension": tidy(user.extension),
        }

    def _merge_fields(self, user, label: str, found, webitel: dict[str, str] | None = None) -> dict[str, str]:
        """Name and extension as both sides should have them (linked records only are merged).
        ``webitel``: the user's own values, when the caller has them already."""
        webitel = webitel if webitel is not None else self._webitel_values(user)
        record = found.record
        p = self.o.provisioning
        if record is None or not p.enabled or found.step != "link":
            return webitel
        base = self.s.baselines.get(str(user.id))
        merged = {}
        for name in SYNCED_FIELDS:
            creatio = (getattr(record, name) or "").strip() if name in self.o.mapped_fields else webitel[name]
            result = merge_field(
                webitel[name], creatio, base.get(name) if base else None, p.owners.get(name, "webitel")
            )
            merged[name] = result.value
            if result.lost is not None:
                self.warnings.append(
                    Issue(
                        "edit_conflict",
                        f"{name} changed on both sides; the "
                        f"{p.owners.get(name, 'webitel')} value {result.value!r} wins over "
                        f"{result.lost!r}",
                        user=label,
                        webitel_id=user.id,
                        field=name,
                    )
                )
        return merged

    def _provision(self, planned) -> None:
        p = self.o.provisioning
        if not p.enabled or not self.o.provision_records:
            return
        adopted = {found.record.id for _, _, found in planned if found.record is not None}
        linked = set(self.s.links.values())
        candidates, issues = provision_candidates(
            self.s.records,
            linked_ids=linked,
            adopted_ids=adopted,
            contacts=self.s.record_contacts,
            sys_logins=self.s.sys_logins,
        )
        webitel_ext = {
            extension_key(u.extension): user_label(u.username, u.id)
            for u in self.s.users
            if extension_key(u.extension)
        }
        for ext, holders in self.s.outside_holders.items():  # Webitel users outside a scoped snapshot
            webitel_ext.setdefault(extension_key(ext), holders[0])
        record_ext: dict[str, list[str]] = {}
        for record in self.s.records:
            if record.active is not False and extension_key(record.extension):
                record_ext.setdefault(extension_key(record.extension), []).append(
                    f"Creatio record {record.username or record.name!r} ({record.id})"
                )
        usernames = {normalise_key(u.username) for u in self.s.users}
        ok, refusals = check_candidates(
            candidates,
            webitel_extensions=webitel_ext,
            webitel_usernames=usernames,
            record_extensions=record_ext,
        )
        self.conflicts.extend(issues + refusals)
        for cand in ok:
            self.actions.append(provision_action(cand))
            contact = cand.record.contact_id
            if (
                self.o.sync_extension_communication
                and contact
                and not any(
                    c.number.strip() == cand.extension for c in self.comms_by_contact.get(contact, [])
                )
            ):
                cid = keys.extension_comm_id(self.s.domain, f"record:{cand.record.id}")
                self.actions.append(
                    Action(
                        "create_extension_comm",
                        "ContactCommunication",
                        cid,
                        f"extension_comm:record:{cand.record.id}",
                        cand.username,
                        new={"contact_id": contact, "number": cand.extension},
                    )
                )

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
                self.conflicts.append(
                    Issue(
                        "contact_in_use",
                        f"the matching contact already belongs to {owner[contact]}",
                        user=label,
                        webitel_id=user.id,
                        field="username",
                        others=(owner[contact],),
                    )
                )
                continue
            if contact and found.record is None:
                owner[contact] = label
            kept.append((user, label, found))
        return kept

    def _plan_user(self, user, label: str, found, extension_refused: bool) -> None:
        facts = UserFacts(user.id, user.username, user.name, user.email, tidy(user.extension))
        record = found.record
        if record is None and extension_refused:
            return  # not created at all while its extension clashes (the conflict says why)
        if not facts.extension and record is None and "extension" in self.o.required_fields:
            message = ("no extension: not imported, the site's Webitel-user record requires one (and the "
                       "user cannot register a SIP phone)")
            self.warnings.append(Issue("no_extension", message, user=label, webitel_id=user.id,
                                       field="extension"))
            return
        if not facts.extension:
            self.warnings.append(
                Issue(
                    "no_extension",
                    "no extension: imported, but the user cannot register a SIP phone",
                    user=label,
                    webitel_id=user.id,
                    field="extension",
                )
            )
        elif problem := extension_problem(facts.extension):
            self.warnings.append(
                Issue(
                    "odd_extension",
                    f"{problem}: imported as it is",
                    user=label,
                    webitel_id=user.id,
                    field="extension",
                )
            )
        contact = found.contact_id
        depends: tuple[str, ...] = ()
        if found.create_contact:
            contact = keys.contact_id(self.s.domain, user.id)
            account = self._account()
            draft = contact_draft(facts, contact_id=contact, account_id=account)
            self.actions.append(
                Action(
                    "create_contact",
                    "Contact",
                    contact,
                    f"contact:{user.id}",
                    label,
                    user.id,
                    new=draft,
                    depends_on=(account,) if account else (),
                )
            )
            depends = (contact,)
        merged = self.merged.get(user.id, {})
        if merged:
            facts = UserFacts(user.id, user.username, merged["name"], user.email, merged["extension"])
        fields = record_values(
            facts,
            contact_id=contact,
            sys_admin_unit_id=found.sys_user_id,
            extension=None if extension_refused else facts.extension,
        )
        fields = {k: v for k, v in fields.items() if k in self.o.mapped_fields}
        to_webitel = {
            k: merged[k]
            for k in SYNCED_FIELDS
            if merged
            and merged[k]
            != (
                display_name(UserFacts(user.id, user.username, user.name, "", ""))
                if k == "name"
                else tidy(user.extension)
            )
        }
        if extension_refused:
            to_webitel.pop("extension", None)
        # A refused extension was agreed on by no one: the baseline keeps the one agreed before,
        # so the next run sees the same edit (and the same conflict) instead of undoing it.
        old_base = self.s.baselines.get(str(user.id))
        agreed = {
            "name": fields.get("name", facts.name),
            "extension": facts.extension if not extension_refused
            else _as_dict(old_base)["extension"] if old_base
            else (record.extension if record is not None else ""),
        }
        if to_webitel:
            old = {"name": user.name, "extension": user.extension}
            self.actions.append(
                update_webitel_action(
                    user, record.id, label, to_webitel, {k: old[k] for k in to_webitel}, link_extra=agreed
                )
            )
        # Until the Webitel side agrees, the link keeps the old baseline (a failed PATCH must not
        # make the next run mistake the admin's Creatio edit for the older value).
        link_extra = agreed if not to_webitel else (_as_dict(old_base) if old_base else None)
        key = f"webitel_user:{user.id}"
        if record is None:
            rid = self.matcher.own_record_id(user.id)
            self.actions.append(
                Action(
                    "create_record",
                    "WebitelUser",
                    rid,
                    key,
                    label,
                    user.id,
                    new=fields,
                    depends_on=depends,
                    link_extra=link_extra,
                )
            )
        else:
            old = {k: getattr(record, k) for k in fields}
            changed = {k: v for k, v in fields.items() if v is not None and old[k] != v}
            if changed:
                self.actions.append(
                    Action(
                        "update_record",
                        "WebitelUser",
                        record.id,
                        key,
                        label,
                        user.id,
                        old={k: old[k] for k in changed},
                        new=changed,
                        link_extra=link_extra,
                    )
                )
            elif self.s.links.get(str(user.id)) != record.id or (
                link_extra is not None
                and self.o.provisioning.enabled
                and _as_dict(self.s.baselines.get(str(user.id))) != link_extra
            ):
                self.actions.append(
                    Action(
                        "link_record", "WebitelUser", record.id, key, label, user.id, link_extra=link_extra
                    )
                )
        if self.o.sync_extension_communication and facts.extension and not extension_refused and contact:
            self._extension_comm(user, label, contact, facts.extension, depends)

    def _extension_comm(self, user, label: str, contact: str, extension: str, depends) -> None:
        existing = self.comms_by_contact.get(contact, [])
        if any(c.number.strip() == extension for c in existing):
            return
        if existing:
            first = min(existing, key=lambda c: c.id)
            self.actions.append(
                Action(
                    "update_extension_comm",
                    "ContactCommunication",
                    first.id,
                    f"extension_comm:{user.id}",
                    label,
                    user.id,
                    old={"number": first.number},
                    new={"number": extension},
                )
            )
        else:
            cid = keys.extension_comm_id(self.s.domain, user.id)
            self.actions.append(
                Action(
                    "create_extension_comm",
                    "ContactCommunication",
                    cid,
                    f"extension_comm:{user.id}",
                    label,
                    user.id,
                    new={"contact_id": contact, "number": extension},
                    depends_on=tuple(depends),
                )
            )

    def _account(self) -> str:
        if self.account_id is None:
            key = keys.normalise_key(self.o.account_name)
            found = sorted(
                (a for a in self.s.accounts if keys.normalise_key(a.name) == key), key=lambda a: a.id
            )
            if len(found) > 1:
                self.warnings.append(
                    Issue(
                        "ambiguous_account",
                        f"{len(found)} accounts are named "
                        f"{self.o.account_name!r}; new contacts go to {found[0].id}",
                        others=tuple(a.id for a in found),
                    )
                )
            if found:
                self.account_id = found[0].id
            else:
                self.account_id = keys.account_id(self.o.account_name)
                self.actions.insert(
                    0,
                    Action(
                        "create_account",
                        "Account",
                        self.account_id,
                        f"account:{key}",
                        new={"Id": self.account_id, "Name": keys.tidy(self.o.account_name)},
                    ),
                )
        return self.account_id

    # ---- extensions -----------------------------------------------------------------------------
    def _extensions(self, planned, retiring) -> set[int]:
        claimed_records = {found.record.id for _, _, found in planned if found.record is not None}
        retiring_ids = {r.id for r in retiring} if self.o.on_missing != "keep" else set()
        static: dict[str, list[str]] = {}
        for record in self.s.records:
            if record.id in claimed_records or record.id in retiring_ids or record.active is False:
                continue
            ext = extension_key(record.extension)
            if ext:
                who = record.username or record.name or record.id
                static.setdefault(ext, []).append(f"Creatio record {who!r} ({record.id})")
        for ext, holders in sorted(static.items()):
            if len(holders) > 1:
                self.warnings.append(
                    Issue(
                        "duplicate_extension_in_creatio",
                        f"extension {ext} is held by "
                        f"{len(holders)} Creatio records not linked to Webitel users",
                        field="extension",
                        others=tuple(holders),
                    )
                )
        for ext, holders in self.s.outside_holders.items():  # Webitel users outside a scoped snapshot
            static.setdefault(extension_key(ext), []).extend(holders)
        wanted = {
            user.id: self.merged.get(user.id, {}).get("extension", tidy(user.extension))
            for user, _, _ in planned
        }
        claims = [
            Claim(user.id, label, wanted[user.id], found.record, tidy(user.extension))
            for user, label, found in planned
            if wanted[user.id]
        ]
        refused, issues = resolve_extensions(claims, static)
        self.conflicts.extend(issues)
        return refused

    # ---- vanished users -------------------------------------------------------------------------
    def _vanished(self, planned, deleted: dict[int, str]) -> tuple[list[Any], Issue | None]:
        if self.o.scoped:
            return [], None
        present = {str(u.id) for u in self.s.users} | {str(i) for i, _ in self.s.invalid if i is not None}
        if any(i is None for i, _ in self.s.invalid):
            self.warnings.append(
                Issue(
                    "vanished_skipped",
                    "a Webitel user without a readable id: vanished users are not looked for in this run",
                )
            )
            return [], None
        linked_ids = set(self.s.links.values())
        linked = [r for r in self.s.records if r.webitel_id or r.id in linked_ids]
        by_record = {rid: wid for wid, rid in self.s.links.items()}
        gone = [r for r in linked if (r.webitel_id or by_record.get(r.id)) not in present]
        if self.o.on_missing == "keep":
            return gone, None
        if self.o.on_missing == "deactivate":
            gone = [r for r in gone if r.active is not False]
        active_linked = sum(1 for r in linked if r.active is not False) + len(deleted)
        limit = min(self.o.max_deactivations, math.ceil(self.o.max_deactivation_share * active_linked))
        limit = max(limit, self.o.approved_deactivations)
        if len(gone) + len(deleted) > limit:
            by_record = {rid: wid for wid, rid in self.s.links.items()}
            names = {u.id: u.username for u in self.s.users}
            touched = [
                user_label(r.username or r.name, r.webitel_id or by_record.get(r.id, "?")) for r in gone
            ]
            touched += [user_label(names.get(wid, "?"), wid) for wid in sorted(deleted)]
            guard = Issue(
                "deactivation_cap",
                f"{len(gone)} Webitel users disappeared and {len(deleted)} records "
                "were deleted in Creatio, more than the limit of "
                f"{limit} (max_deactivations {self.o.max_deactivations}, max_deactivation_share "
                f"{self.o.max_deactivation_share} of {active_linked}); nothing was deactivated or deleted. "
                f"To approve this run: run --allow-deactivations {len(gone) + len(deleted)}",
                others=tuple(touched),
            )
            self.conflicts.append(guard)
            return gone, guard
        return gone, None

    def _retire(self, gone) -> None:
        if self.o.on_missing == "keep":
            return
        by_record = {rid: wid for wid, rid in self.s.links.items()}
        for record in gone:
            wid = record.webitel_id or by_record.get(record.id, "")
            label = user_label(record.username or record.name, wid)
            key = f"webitel_user:{wid}"
            if self.o.on_missing == "delete":
                self.actions.append(
                    Action(
                        "delete_record",
                        "WebitelUser",
                        record.id,
                        key,
                        label,
                        int(wid) if str(wid).isdigit() else None,
                        old={"name": record.name},
                    )
                )
            elif "active" in self.o.mapped_fields:
                self.actions.append(
                    Action(
                        "deactivate_record",
                        "WebitelUser",
                        record.id,
                        key,
                        label,
                        int(wid) if str(wid).isdigit() else None,
                        old={"active": True},
                        new={"active": False},
                    )
                )


def _as_dict(baseline) -> dict:
    """A stored baseline (a ``AgreedFields`` or a plain mapping) as the dict a link keeps."""
    if baseline is None:
        return {}
    return {name: baseline.get(name) for name in SYNCED_FIELDS}
