"""Creatio's own types and constants, and the parsing of its wire values (reference creatio-api.md).

Creatio's wire quirks are absorbed here (sections 2.5 and 2.7):

- GUIDs come in any case; they become lower-case ``str``. An empty lookup is the all-zero GUID,
  never ``null``; it becomes ``None``.
- Empty text is ``""`` and stays ``""`` (it is a value, not a missing one).
- Date-times are ISO 8601 with ``Z`` and up to 7 fractional digits (.NET ticks); they become aware
  UTC datetimes (ticks beyond microseconds are dropped). ``0001-01-01T00:00:00Z``
  (``DateTime.MinValue``, Creatio's empty date) becomes ``None``.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .odata import GUID_RE

ColumnType = Literal["guid", "text", "bool", "int", "datetime"]

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
# CommunicationType "Extension" (constant InnerPhone), section 3.4.
EXTENSION_COMMUNICATION_TYPE = "e9d91e45-8d92-4e38-95a0-ef8aa28c9e7a"
# SysAdminUnitTypeValue of a user, section 3.5.
SYS_ADMIN_UNIT_USER = 4

# Creatio's own objects, as far as the connector reads or writes them (section 3).
STANDARD_ENTITIES: dict[str, dict[str, ColumnType]] = {
    "Contact": {"Id": "guid", "Name": "text", "Email": "text", "AccountId": "guid", "Phone": "text",
                "MobilePhone": "text", "JobTitle": "text"},
    "Account": {"Id": "guid", "Name": "text", "Code": "text"},
    "SysAdminUnit": {"Id": "guid", "Name": "text", "ContactId": "guid", "AccountId": "guid",
                     "SysAdminUnitTypeValue": "int", "Active": "bool", "Email": "text"},
    "ContactCommunication": {"Id": "guid", "ContactId": "guid", "CommunicationTypeId": "guid",
                             "Number": "text", "Primary": "bool"},
}
# Every BaseEntity also carries these (section 3.1).
BASE_COLUMNS: dict[str, ColumnType] = {"CreatedOn": "datetime", "ModifiedOn": "datetime"}

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
