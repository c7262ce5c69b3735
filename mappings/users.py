"""Webitel user -> Creatio drafts. Pure functions over plain values.

A "record" here is the logical Webitel-user record (field names of ``WebitelUserObject``); the
object model turns it into real column names when writing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keys import tidy

RECORD_FIELDS = ("name", "username", "webitel_id", "extension", "contact_id", "sys_admin_unit_id", "active")


@dataclass(frozen=True)
class UserFacts:
    """What the mapping needs of a Webitel user (decoupled from the client's model)."""

    id: int
    username: str
    name: str
    email: str
    extension: str


def user_label(username: str | None, webitel_id: object) -> str:
    """How reports name a Webitel user: ``username (id N)``."""
    return f"{(username or '').strip() or '<no username>'} (id {webitel_id})"


def display_name(user: UserFacts) -> str:
    """The person's name as Creatio should show it: the display name, else the username."""
    return tidy(user.name) or tidy(user.username)


def contact_draft(user: UserFacts, *, contact_id: str, account_id: str | None) -> dict:
    """Columns of the Contact created for a user that matched none."""
    draft = {"Id": contact_id, "Name": display_name(user)}
    if tidy(user.email):
        draft["Email"] = tidy(user.email)
    if account_id:
        draft["AccountId"] = account_id
    return draft


def record_values(user: UserFacts, *, contact_id: str | None, sys_admin_unit_id: str | None,
                  extension: str | None) -> dict:
    """The values the Webitel-user record of ``user`` should have, by logical field name.

    Args:
        user: the Webitel user.
        contact_id: the matched or created contact.
        sys_admin_unit_id: the Creatio system user, when one matched.
        extension: the extension to write (None: leave the record's current one alone).
    """
    fields = {"name": display_name(user), "username": tidy(user.username), "webitel_id": str(user.id),
              "contact_id": contact_id, "sys_admin_unit_id": sys_admin_unit_id, "active": True}
    if extension is not None:
        fields["extension"] = extension
    return fields

