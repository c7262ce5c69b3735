"""Creatio -> Webitel: the provisioning half of the users job. Pure.

- A Webitel-user record with no Webitel id (made by a Creatio admin) becomes a Webitel user:
  username from the record, else its Creatio user's login; name and e-mail from its contact;
  its extension, which must be present and unique (across Webitel users and records) before
  anything is created, otherwise the record is left untouched and reported.
- A record deleted in Creatio whose link is in the state store removes the Webitel user
  (``on_delete``: soft, permanent or keep), under the same cap as deactivations. Creatio leaves
  no trace of a delete in OData, so detection is by the stored links only: deletions made while
  the state store was lost are not carried.
- Name and extension edited on a linked record reach the Webitel user. Each field is merged
  three-way against the value agreed at the last run (kept with the link): a change on one side
  is carried to the other; when both sides changed, the configured owner wins and the loser's
  value is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from mappings.keys import extension_key, normalise_key, tidy

from jobs.plan.model import Action, Issue

SYNCED_FIELDS = ("name", "extension")


@dataclass(frozen=True)
class ProvisionOptions:
    enabled: bool = True
    on_delete: str = "soft"          # soft | permanent | keep
    owners: Mapping[str, str] = field(default_factory=lambda: {"name": "webitel", "extension": "webitel"})


@dataclass(frozen=True)
class FieldMerge:
    """The merged value of one field of one linked user."""

    value: str
    to_webitel: bool = False     # Creatio's value wins and must be written to Webitel
    to_creatio: bool = False     # Webitel's value wins and must be written to the record
    lost: str | None = None      # the losing value when both sides changed


def merge_field(webitel: str, creatio: str, baseline: str | None, owner: str) -> FieldMerge:
    """Three-way merge of one text field (pure).

    Args:
        webitel: the Webitel user's value now.
        creatio: the record's value now.
        baseline: the value both agreed on at the last run, or None when unknown.
        owner: "webitel" or "creatio": who wins when both changed (and when there is no baseline).
    """
    if webitel == creatio:
        return FieldMerge(webitel)
    if baseline is None:
        return (
            FieldMerge(creatio, to_webitel=True)
            if owner == "creatio"
            else FieldMerge(webitel, to_creatio=True)
        )
    if creatio == baseline:
        return FieldMerge(webitel, to_creatio=True)
    if webitel == baseline:
        return FieldMerge(creatio, to_webitel=True)
    if owner == "creatio":
        return FieldMerge(creatio, to_webitel=True, lost=webitel)
    return FieldMerge(webitel, to_creatio=True, lost=creatio)


@dataclass(frozen=True)
class Candidate:
    """A record to turn into a Webitel user, with what the plan found out about it."""

    record: Any
    username: str
    name: str
    email: str
    extension: str


def provision_candidates(
    records,
    *,
    linked_ids: set[str],
    adopted_ids: set[str],
    contacts: Mapping[str, Any],
    sys_logins: Mapping[str, str],
) -> tuple[list[Candidate], list[Issue]]:
    """Records without a Webitel user that provisioning should create (or report why not)."""
    out: list[Candidate] = []
    issues: list[Issue] = []
    for record in sorted(records, key=lambda r: r.id):
        if record.webitel_id or record.id in linked_ids or record.id in adopted_ids or record.active is False:
            continue
        contact = contacts.get(record.contact_id or "")
        username = tidy(record.username) or tidy(sys_logins.get(record.sys_admin_unit_id or "", ""))
        label = f"Creatio record {username or record.name or record.id!r} ({record.id})"
        if not username:
            issues.append(
                Issue(
                    "missing_username",
                    "no username on the record and no Creatio user to take the "
                    "login from: not created in Webitel",
                    user=label,
                    field="username",
                )
            )
            continue
        name = tidy(contact.name) if contact is not None else tidy(record.name) or username
        out.append(
            Candidate(
                record,
                username,
                name or username,
                contact.email.strip() if contact else "",
                tidy(record.extension),
            )
        )
    return out, issues


def check_candidates(
    candidates: list[Candidate],
    *,
    webitel_extensions: Mapping[str, str],
    webitel_usernames: set[str],
    record_extensions: Mapping[str, list[str]],
) -> tuple[list[Candidate], list[Issue]]:
    """Refuse candidates without an extension, or whose extension or username is taken."""
    ok: list[Candidate] = []
    issues: list[Issue] = []
    claimed: dict[str, str] = {}
    for cand in candidates:
        label = f"Creatio record {cand.username!r} ({cand.record.id})"
        ext = extension_key(cand.extension)
        others = [r for r in record_extensions.get(ext, []) if cand.record.id not in r]
        if not cand.extension:
            issues.append(
                Issue(
                    "missing_extension",
                    "no extension: a Webitel user is not created without one",
                    user=label,
                    field="extension",
                )
            )
        elif ext in webitel_extensions or others or ext in claimed:
            holder = webitel_extensions.get(ext) or (others[0] if others else claimed[ext])
            issues.append(
                Issue(
                    "duplicate_extension",
                    f"extension {cand.extension} is already held by {holder}; not created in Webitel",
                    user=label,
                    field="extension",
                    others=(holder,),
                )
            )
        elif normalise_key(cand.username) in webitel_usernames:
            issues.append(
                Issue(
                    "duplicate_username",
                    f"username {cand.username!r} is taken in Webitel",
                    user=label,
                    field="username",
                )
            )
        else:
            claimed[ext] = label
            ok.append(cand)
    return ok, issues


def provision_action(cand: Candidate) -> Action:
    return Action(
        "create_webitel_user",
        "WebitelAccount",
        cand.record.id,
        f"record:{cand.record.id}",
        f"{cand.username} (record {cand.record.id})",
        new={"username": cand.username, "name": cand.name, "email": cand.email, "extension": cand.extension},
    )


def delete_action(webitel_id: str, label: str, record_id: str, on_delete: str) -> Action:
    return Action(
        "delete_webitel_user",
        "WebitelAccount",
        record_id,
        f"webitel_user:{webitel_id}",
        label,
        int(webitel_id),
        old={"record": record_id},
        new={"permanent": on_delete == "permanent"},
    )


def update_webitel_action(
    user,
    record_id: str,
    label: str,
    changes: dict[str, str],
    old: dict[str, str],
    *,
    link_extra: dict[str, str],
) -> Action:
    """A PATCH of the Webitel user; ``id`` is its record's, so the link can be written when it lands."""
    return Action(
        "update_webitel_user",
        "WebitelAccount",
        record_id,
        f"webitel_user:{user.id}",
        label,
        user.id,
        old=old,
        new=changes,
        link_extra=link_extra,
    )
