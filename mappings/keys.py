"""Match keys and deterministic ids.

``normalise_key`` is the one comparison key every matcher uses. The ``*_id`` functions derive
the Creatio Id of everything the connector creates from the source identity (UUID5), so a create
repeated after a crash or a timeout carries the same Id and can never make a duplicate.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

_SPACE = re.compile(r"\s+")
# Control characters (NUL and the like) are never written: a whitespace one becomes a space.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# The product's own UUID5 namespace; changing it would orphan every record already created.
NAMESPACE = uuid.UUID("5b0b3c52-9a55-4c36-9b8e-7f3d1a1d6c21")


def normalise_key(text: str | None) -> str:
    """Unicode NFKC, case-folded, inner whitespace collapsed to one space, trimmed."""
    if not text:
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def extension_key(extension: str | None) -> str:
    """What makes two extensions the same: NFKC (full-width ``０１２３`` is ``0123``), no spaces.

    Every uniqueness check compares this key; the value written stays as the source has it.
    """
    return _SPACE.sub("", unicodedata.normalize("NFKC", extension or ""))


_EXTENSION = re.compile(r"[0-9]{2,15}")


def extension_problem(extension: str | None) -> str | None:
    """Why an extension may not work as a SIP number (not 2 to 15 digits), or None."""
    key = extension_key(extension)
    if not key or _EXTENSION.fullmatch(key):
        return None
    if not key.isascii() or not key.isdigit():
        return f"extension {extension!r} has characters other than digits"
    return f"extension {extension!r} has {len(key)} digits, not 2 to 15"


def tidy(text: str | None) -> str:
    """Whitespace collapsed and trimmed, control characters dropped, case kept: how a name (or any
    text value) is written or looked up."""
    return _SPACE.sub(" ", _CONTROL.sub("", text or "")).strip()


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


def user_record_id(domain: str, webitel_id: int) -> str:
    """Id of the Webitel-user record created for a Webitel user."""
    return _id("webitel-user", normalise_key(domain), webitel_id)


def contact_id(domain: str, webitel_id: int) -> str:
    """Id of the Contact created for a Webitel user that matched none."""
    return _id("contact", normalise_key(domain), webitel_id)


def account_id(name: str) -> str:
    """Id of the Account created under a configured name."""
    return _id("account", normalise_key(name))


def extension_comm_id(domain: str, webitel_id: int | str) -> str:
    """Id of the Extension communication option created on a user's contact (or a record's)."""
    return _id("extension", normalise_key(domain), webitel_id)


def license_record_id(domain: str, serial: str) -> str:
    """Id of the licence catalog record of a Webitel licence serial."""
    return _id("license", normalise_key(domain), serial.lower())


def grant_record_id(domain: str, webitel_id: int, serial: str) -> str:
    """Id of the "User Licenses" row granting ``serial`` to a user."""
    return _id("grant", normalise_key(domain), webitel_id, serial.lower())
