"""Column values: how each column type is validated, stored, defaulted and written on the wire.

Stored values are chosen so that Python's ``==``/``<`` give Creatio's answers directly:

- ``guid``: lower-case 8-4-4-4-12 string; an empty lookup is the all-zero GUID (never ``None``).
- ``text``: ``str``; empty text is ``""`` (never ``None``).
- ``bool`` / ``int``: Python ``bool`` / ``int``.
- ``datetime``: a fixed-width UTC string ``YYYY-MM-DDTHH:MM:SS.fffffffZ`` (7 fractional digits,
  .NET tick precision), so plain string comparison is chronological; an empty date is
  ``0001-01-01T00:00:00.0000000Z`` (DateTime.MinValue).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.creatio.errors import odata_error
from sandbox.creatio.schema import EMPTY_GUID, ColumnType

GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Date-time with a mandatory offset; seconds and up to 7 fractional digits optional.
DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})"
)
# Decision: an empty date is DateTime.MinValue on the wire, "0001-01-01T00:00:00Z", as seen in
# real Creatio OData 4 payloads (e.g. Contact.BirthDate in public client docs), not null.
EMPTY_DATETIME = "0001-01-01T00:00:00.0000000Z"

EDM_TYPES: dict[str, str] = {
    "guid": "Edm.Guid", "text": "Edm.String", "bool": "Edm.Boolean", "int": "Edm.Int32",
    "datetime": "Edm.DateTimeOffset",
}
DEFAULTS: dict[str, Any] = {
    "guid": EMPTY_GUID, "text": "", "bool": False, "int": 0, "datetime": EMPTY_DATETIME,
}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def canonical_datetime(text: str) -> str | None:
    """Parse an ISO 8601 date-time with an offset into the stored UTC form.

    Args:
        text: e.g. ``2024-01-01T00:00:00Z``, ``2024-02-07T21:35:26.683Z``,
            ``2024-01-01T02:00:00+02:00``.

    Returns:
        ``YYYY-MM-DDTHH:MM:SS.fffffffZ`` in UTC, or ``None`` if ``text`` is not such a date-time
        (a missing offset counts as invalid, like Microsoft.OData's DateTimeOffset parser).
    """
    match = DATETIME_RE.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        try:
            moment -= sign * delta
        except OverflowError:
            return None
    ticks = (fraction or "").ljust(7, "0")
    return f"{_iso(moment)}.{ticks}Z"


def _iso(moment: datetime) -> str:
    # isoformat zero-pads the year to four digits (strftime does not on every platform).
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def timestamp_to_canonical(seconds: float) -> str:
    """The stored form of a Unix timestamp (from the app clock)."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{_iso(moment)}.{moment.microsecond:06d}0Z"


def wire_datetime(stored: str) -> str:
    """The wire form Creatio prints: trailing zero ticks trimmed, like .NET's ``.FFFFFFF``.

    Inferred from real payloads (``...13:46:11Z``, ``...26.683Z``, ``...32.33577Z``).

    ``...26.6830000Z`` -> ``...26.683Z``; ``...11.0000000Z`` -> ``...11Z``.
    """
    fraction = stored[20:27].rstrip("0")
    return f"{stored[:19]}.{fraction}Z" if fraction else f"{stored[:19]}Z"


def coerce(column: str, kind: ColumnType, value: Any, entity: str) -> Any:
    """Validate one written value and return its stored form.

    Args:
        column: Column name, for the error message.
        kind: The column type.
        value: The JSON value from the request body (or seed).
        entity: Entity name, for the error message.

    Raises:
        ODataError: 400 when the value does not fit the column type.
    """
    if value is None:
        # Decision: null clears a lookup (all-zero GUID), a text ("") or a date (MinValue), as
        # Creatio stores no NULLs in these columns; Boolean and Int32 are not nullable.
        if kind in ("guid", "text", "datetime"):
            return DEFAULTS[kind]
        raise _bad_value(column, kind, value, entity)
    if kind == "guid":
        if isinstance(value, str) and GUID_RE.fullmatch(value):
            return value.lower()
    elif kind == "text":
        if isinstance(value, str):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and INT32_MIN <= value <= INT32_MAX:
            return value
    elif kind == "datetime":
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.isoformat()
        if isinstance(value, str):
            stored = canonical_datetime(value)
            if stored is not None:
                return stored
    raise _bad_value(column, kind, value, entity)


def _bad_value(column: str, kind: ColumnType, value: Any, entity: str):
    shown = value if isinstance(value, str) else repr(value)
    return odata_error(
        400,
        f"Cannot convert the literal '{shown}' to the expected type '{EDM_TYPES[kind]}' "
        f"of property '{column}' on type 'Terrasoft.Configuration.{entity}'.",
        "Microsoft.OData.ODataException",
    )


def to_wire(kind: ColumnType, stored: Any) -> Any:
    """The JSON value of a stored value."""
    return wire_datetime(stored) if kind == "datetime" else stored
