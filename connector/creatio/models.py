"""Typed values and records of Creatio's standard objects, read from OData rows.

Creatio's wire quirks are absorbed here (reference creatio-api.md sections 2.5 and 2.7):

- GUIDs come in any case; they become lower-case ``str``. An empty lookup is the all-zero GUID,
  never ``null``; it becomes ``None``.
- Empty text is ``""`` and stays ``""`` (it is a value, not a missing one).
- Date-times are ISO 8601 with ``Z`` and up to 7 fractional digits (.NET ticks); they become aware
  UTC datetimes (ticks beyond microseconds are dropped). ``0001-01-01T00:00:00Z``
  (``DateTime.MinValue``, Creatio's empty date) becomes ``None``.

A value that does not fit its column raises ``RecordError`` naming the entity, record and column,
so the run can skip that one record.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from mappings.profiles import EMPTY_GUID, ColumnType

from ..errors import RecordError
from .odata import GUID_RE

DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})")


def parse_guid(value: Any) -> str | None:
    """A lower-case GUID string; None for null, ``""`` or the all-zero GUID.

    Raises:
        ValueError: not a GUID.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not GUID_RE.fullmatch(value):
        raise ValueError(f"not a GUID: {value!r}")
    value = value.lower()
    # Interned: the same contact, account and type GUIDs recur across tens of thousands of rows.
    return None if value == EMPTY_GUID else sys.intern(value)


def parse_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from Creatio's ISO form; None for null, ``""`` or ``DateTime.MinValue``.

    Raises:
        ValueError: not an ISO date-time with an offset.
    """
    if value is None or value == "":
        return None
    match = DATETIME_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not an ISO date-time with a time zone: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if year == "0001" and month == "01" and day == "01":
        return None
    micro = int((fraction or "").ljust(6, "0")[:6])
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                      tzinfo=timezone.utc)
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        moment -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return moment


def parse_text(value: Any) -> str:
    """Text as is (``""`` stays ``""``); null becomes ``""`` as Creatio stores no null text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"not text: {value!r}")
    return value


def parse_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not a Boolean: {value!r}")
    return value


def parse_int(value: Any) -> int:
    # IEEE754Compatible answers send 64-bit numbers as strings.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


PARSERS = {"guid": parse_guid, "text": parse_text, "bool": parse_bool, "int": parse_int,
           "datetime": parse_datetime}


class Row:
    """One OData row with typed getters.

    Args:
        data: the row as decoded from JSON.
        entity: the entity name, for error messages.
    """

    def __init__(self, data: Mapping[str, Any], entity: str = "") -> None:
        self.data = data
        self.entity = entity

    def get(self, column: str, kind: ColumnType) -> Any:
        """The typed value of ``column``.

        Raises:
            RecordError: the column is missing from the row or its value does not fit ``kind``.
        """
        if column not in self.data:
            raise RecordError("column missing from the answer", system="creatio", object=self.entity,
                              record=self._ident(), field=column)
        try:
            return PARSERS[kind](self.data[column])
        except ValueError as exc:
            raise RecordError(str(exc), system="creatio", object=self.entity, record=self._ident(),
                              field=column) from None

    def guid(self, column: str) -> str | None:
        return self.get(column, "guid")

    def text(self, column: str) -> str:
        return self.get(column, "text")

    def boolean(self, column: str) -> bool:
        return self.get(column, "bool")

    def integer(self, column: str) -> int:
        return self.get(column, "int")

    def date_time(self, column: str) -> datetime | None:
        return self.get(column, "datetime")

    def id(self) -> str:
        """The row's ``Id``, which must be a real GUID."""
        value = self.guid("Id")
        if value is None:
            raise RecordError("empty Id", system="creatio", object=self.entity, field="Id")
        return value

    def typed(self, types: Mapping[str, ColumnType]) -> dict[str, Any]:
        """Every column of the row that ``types`` knows, converted; unknown columns are left out.

        Args:
            types: column → type, e.g. ``entity_columns(model)["Contact"]``.
        """
        return {name: self.get(name, kind) for name, kind in types.items() if name in self.data}

    def _ident(self) -> str:
        value = self.data.get("Id")
        return f"id {value}" if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Contact:
    """A ``Contact`` (a person in the CRM)."""

    ENTITY = "Contact"
    SELECT = ("Id", "Name", "Email", "AccountId")

    id: str
    name: str
    email: str
    account_id: str | None

    @classmethod
    def from_row(cls, data: Mapping[str, Any]) -> "Contact":
        row = Row(data, cls.ENTITY)
        return cls(row.id(), row.text("Name"), row.text("Email"), row.guid("AccountId"))


@dataclass(frozen=True, slots=True)
class Account:
    """An ``Account`` (a company)."""

    ENTITY = "Account"
    SELECT = ("Id", "Name")

    id: str
    name: str

    @classmethod
    def from_row(cls, data: Mapping[str, Any]) -> "Account":
        row = Row(data, cls.ENTITY)
        return cls(row.id(), row.text("Name"))


@dataclass(frozen=True, slots=True)
class SysUser:
    """A system user: a ``SysAdminUnit`` row of type 4; ``name`` is the login."""

    ENTITY = "SysAdminUnit"
    SELECT = ("Id", "Name", "ContactId", "Active")

    id: str
    name: str
    contact_id: str | None
    active: bool

    @classmethod
    def from_row(cls, data: Mapping[str, Any]) -> "SysUser":
        row = Row(data, cls.ENTITY)
        return cls(row.id(), row.text("Name"), row.guid("ContactId"), row.boolean("Active"))


@dataclass(frozen=True, slots=True)
class ContactCommunication:
    """A contact's phone, e-mail or extension (``type_id`` is the CommunicationType)."""

    ENTITY = "ContactCommunication"
    SELECT = ("Id", "ContactId", "CommunicationTypeId", "Number")

    id: str
    contact_id: str | None
    type_id: str | None
    number: str

    @classmethod
    def from_row(cls, data: Mapping[str, Any]) -> "ContactCommunication":
        row = Row(data, cls.ENTITY)
        return cls(row.id(), row.guid("ContactId"), row.guid("CommunicationTypeId"), row.text("Number"))
