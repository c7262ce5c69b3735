"""Typed Webitel objects. Nothing outside ``connector`` sees Webitel's raw JSON.

Quirks absorbed here (reference webitel-api.md section 1.5): int64 values arrive as JSON strings,
licence and token times as Unix milliseconds (also as strings), ``"0"`` or an absent value for
"not set", and empty fields are omitted altogether.

A user is parsed for what the sync reads of it (id, username, name, email, extension and the
serials of its licences). Everything else the server sends (``devices``, ``roles``,
``presence``, ``created_by``... in the vendor's recorded traffic) is ignored, and the few other
fields kept for display (audit times, a grant's product and dates) never make a user unreadable:
an odd value there reads as empty, so one server quirk in a field nobody uses cannot drop a user
from the import (and have its record taken for vanished).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass

MS_PER_DAY = 86_400_000
# Webitel's ids are int64 (reference section 1.5); a user id is a positive one.
MAX_INT64 = 2**63 - 1


def positive_id(value: object) -> int:
    """A Webitel id as sent (a JSON number or a string of digits) as an int in ``1..2**63-1``.

    ``true``, ``-1``, ``0``, ``1.5`` or 40 digits are no id: a boolean would otherwise read as 1,
    which is another user.
    """
    problem = f"must be a whole number from 1 to {MAX_INT64}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(problem)
    if isinstance(value, str):
        # Decision: digits only, as int64 values come as JSON strings; no sign, no spaces.
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError(problem)
        value = int(value)
    if not 1 <= value <= MAX_INT64:
        raise ValueError(problem)
    return value


def from_ms(value: object) -> datetime | None:
    """A Unix-milliseconds value (number or numeric string) as an aware UTC datetime; 0 is None."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected Unix milliseconds")
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


# Decision: a value the sync never decides on that cannot be read is empty, not the user's error
# (module docstring); the fields the sync decides on stay strict.
def lenient_ms(value: object) -> datetime | None:
    """``from_ms`` for a time the sync never decides on: a value it cannot read is None."""
    try:
        return from_ms(value)
    except (ValueError, OverflowError, OSError):
        return None


def lenient_text(value: object) -> str:
    """Text the sync only shows: a number as its digits, anything else that is no text as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def to_ms(value: datetime | None) -> int:
    """An aware datetime as Unix milliseconds (0 for None)."""
    return 0 if value is None else int(value.timestamp() * 1000)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Ref(_Model):
    """An ``ObjectId`` ``{id, name}``."""

    id: int = 0
    name: str = ""


# Users and their grants exist once per telephony user (tens of thousands in a run), so they are
# slotted pydantic dataclasses: the same validation, about a fifth of a BaseModel's memory.
_PER_USER = ConfigDict(populate_by_name=True)


@dataclass(frozen=True, slots=True, config=_PER_USER)
class LicenseGrant:
    """One licence held by a user (``LicenseUser`` in the user's ``license`` list)."""

    serial: str = Field(validation_alias=AliasChoices("id", "serial"))
    product: str = Field("", validation_alias=AliasChoices("prod", "product"))
    name: str = ""  # usually absent in the vendor's recorded traffic, as is "scope"
    issued_at: datetime | None = None
    expires_at: datetime | None = None

    # Shown by `licenses --users`, never decided on: an odd value reads as empty (module docstring).
    _ms = field_validator("issued_at", "expires_at", mode="before")(
        classmethod(lambda cls, v: lenient_ms(v)))
    _shown = field_validator("product", "name", mode="before")(classmethod(lambda cls, v: lenient_text(v)))


@dataclass(frozen=True, slots=True, config=_PER_USER)
class WebitelUser:
    """A Webitel user as far as the sync needs it (build with ``WebitelUser.parse``)."""

    id: int
    username: str = ""
    name: str = ""
    email: str = ""
    extension: str = ""
    licenses: tuple[LicenseGrant, ...] = Field((), validation_alias=AliasChoices("license", "licenses"))
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    # Inferred: User.updated_at is documented only as "unix"; the sandbox and the licence fields use
    # milliseconds, so milliseconds it is (reference open question 8). The sync decides nothing on
    # them: a time in another format reads as None rather than dropping the user.
    _ms = field_validator("updated_at", "deleted_at", mode="before")(
        classmethod(lambda cls, v: lenient_ms(v)))
    _id = field_validator("id", mode="before")(classmethod(lambda cls, v: positive_id(v)))

    @field_validator("username", "name", "email", "extension", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # Numbers are fine as text (an extension sent as 1017); objects and lists are not.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return "" if value is None else value

    @property
    def serials(self) -> frozenset[str]:
        return frozenset(grant.serial for grant in self.licenses)

    @staticmethod
    def parse(raw: object) -> "WebitelUser":
        """Validate one user as Webitel sends it; extra keys are ignored.

        Raises:
            pydantic.ValidationError: a field the sync reads does not fit.
        """
        return _USER.validate_python(raw)


class License(_Model):
    """One licence of the registry (``LicenseV1``)."""

    serial: str = Field(validation_alias=AliasChoices("id", "serial"))
    product: str = ""
    name: str = ""
    valid_from: datetime | None = Field(None, validation_alias=AliasChoices("not_before", "valid_from"))
    valid_till: datetime | None = Field(None, validation_alias=AliasChoices("not_after", "valid_till"))
    limit: int = 0
    remain: int = 0
    concurrent: bool = Field(False, validation_alias=AliasChoices("competitive", "concurrent"))
    scope: tuple[str, ...] = ()

    _ms = field_validator("valid_from", "valid_till", mode="before")(classmethod(lambda cls, v: from_ms(v)))

    @property
    def used(self) -> int:
        """Seats in use, as the admin UI shows it: ``limit - remain``."""
        return self.limit - self.remain

    @property
    def title(self) -> str:
        return self.name or self.product

    def days_left(self, now: datetime) -> int | None:
        """Days until expiry, as the admin UI computes it: ``ceil((not_after - now) / 1 day)``."""
        if self.valid_till is None:
            return None
        return math.ceil((to_ms(self.valid_till) - to_ms(now)) / MS_PER_DAY)


class LicenseHolder(_Model):
    """A user holding a licence (``ProductUser`` from ``/products/{serial}/users``)."""

    user: Ref
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    sessions: int = 0

    _ms = field_validator("issued_at", "expires_at", mode="before")(classmethod(lambda cls, v: from_ms(v)))


class Customer(_Model):
    """The tenant's licence certificate (``GET /api/customer``)."""

    id: str = ""
    organization: str = ""
    valid_from: datetime | None = Field(None, validation_alias=AliasChoices("not_before", "valid_from"))
    valid_till: datetime | None = Field(None, validation_alias=AliasChoices("not_after", "valid_till"))
    licenses: tuple[License, ...] = Field((), validation_alias=AliasChoices("license", "licenses"))

    _ms = field_validator("valid_from", "valid_till", mode="before")(classmethod(lambda cls, v: from_ms(v)))


_USER = TypeAdapter(WebitelUser)
