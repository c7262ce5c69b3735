"""A pure, escaped OData 4 ``$filter`` builder (no I/O).

Values never reach a filter through an f-string: ``literal`` turns each Python value into a safe
OData literal, and column names are checked against a strict pattern, so user data cannot change
the shape of a query. Parts passed to ``and_``/``or_``/``not_`` are expected to come from this
module: ``or_`` and ``any_of`` always parenthesise their result, so ``and_`` can join without
extra parentheses (``and`` binds tighter than ``or`` in OData).

Literal forms (reference creatio-api.md section 2.4): strings in single quotes with ``'`` doubled,
GUIDs unquoted (OData 4, not ``guid'...'``), date-times unquoted in UTC with ``Z`` (the OData 4
standard form; Creatio's own examples show none, reference section 6 question 5).
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable
from urllib.parse import quote_plus

GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A column, optionally through navigation properties: ``Name``, ``Contact/Id``.
COLUMN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")


class Guid:
    """A GUID value for a filter: written unquoted and lower-case.

    Plain ``str`` values are always quoted as text; wrap lookup values in ``Guid`` (or pass a
    ``uuid.UUID``) to compare them with a GUID column.

    Args:
        value: the 8-4-4-4-12 hexadecimal form, any case.

    Raises:
        ValueError: ``value`` is not a GUID.
    """

    __slots__ = ("value",)

    def __init__(self, value: str | uuid.UUID) -> None:
        text = str(value)
        if not GUID_RE.fullmatch(text):
            raise ValueError(f"not a GUID: {text!r}")
        self.value = text.lower()

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Guid({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Guid) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def check_column(name: str) -> str:
    """``name`` if it is a valid column (or navigation) name; ValueError otherwise."""
    if not isinstance(name, str) or not COLUMN_RE.fullmatch(name):
        raise ValueError(f"invalid column name: {name!r}")
    return name


def literal(value: Any) -> str:
    """The OData literal of ``value``.

    Args:
        value: str, bool, None, int, float, Decimal, ``Guid``/``uuid.UUID``, an aware ``datetime``
            or a ``date``.

    Raises:
        ValueError: a naive datetime, or a float that is NaN or infinite.
        TypeError: any other type.
    """
    # bool before int (bool is an int), datetime before date (datetime is a date).
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Guid, uuid.UUID)):
        return str(value).lower()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return str(value)
    if isinstance(value, datetime):
        return datetime_literal(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no OData literal for {type(value).__name__}")


def datetime_literal(value: datetime) -> str:
    """An aware datetime in UTC: ``2024-01-01T00:00:00Z``, microseconds only when set.

    Raises:
        ValueError: ``value`` is naive (its time zone would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: attach a time zone (e.g. timezone.utc) before filtering")
    moment = value.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _compare(op: str, name: str, value: Any) -> str:
    return f"{check_column(name)} {op} {literal(value)}"


def eq(name: str, value: Any) -> str:
    """``name eq value``."""
    return _compare("eq", name, value)


def ne(name: str, value: Any) -> str:
    """``name ne value``."""
    return _compare("ne", name, value)


def gt(name: str, value: Any) -> str:
    """``name gt value``."""
    return _compare("gt", name, value)


def ge(name: str, value: Any) -> str:
    """``name ge value``."""
    return _compare("ge", name, value)


def lt(name: str, value: Any) -> str:
    """``name lt value``."""
    return _compare("lt", name, value)


def le(name: str, value: Any) -> str:
    """``name le value``."""
    return _compare("le", name, value)


def and_(*parts: str) -> str:
    """All of ``parts`` (filters from this module); a single part is returned as is."""
    if not parts:
        raise ValueError("and_() needs at least one part")
    return " and ".join(parts)


def or_(*parts: str) -> str:
    """Any of ``parts``, in parentheses so that it nests safely inside ``and_``."""
    if not parts:
        raise ValueError("or_() needs at least one part")
    return "(" + " or ".join(parts) + ")"


def not_(part: str) -> str:
    """The negation of ``part``."""
    return f"not ({part})"


def any_of(name: str, values: Iterable[Any]) -> str:
    """``(name eq v1 or name eq v2 ...)``.

    Raises:
        ValueError: ``values`` is empty (there is no portable "match nothing" filter).
    """
    values = list(values)
    if not values:
        raise ValueError("any_of() needs at least one value")
    return or_(*(eq(name, value) for value in values))


def startswith(name: str, text: str) -> str:
    """``startswith(name,'text')``."""
    return f"startswith({check_column(name)},{literal(text)})"


def contains(name: str, text: str) -> str:
    """``contains(name,'text')``."""
    return f"contains({check_column(name)},{literal(text)})"


def encoded_length(text: str) -> int:
    """Characters ``text`` takes as a query value once ``requests`` URL-encodes it.

    ``requests`` encodes params with ``urllib.parse.urlencode`` (``quote_plus``, nothing safe), so
    a space is one ``+``, a quote three characters (``%27``), a non-ASCII letter six or more.
    """
    return len(quote_plus(text, safe=""))


def chunk_any_of(name: str, values: Iterable[Any], *, max_chars: int) -> list[str]:
    """Split ``any_of(name, values)`` into filters of at most ``max_chars`` encoded characters.

    Every chunk is as large as fits, values keep their order, and a value given twice is looked
    up once. Encoded length is additive over characters, so each value's share is computed once.

    Args:
        name: the column.
        values: the values to look up.
        max_chars: the budget for one encoded ``$filter`` value (see ``encoded_length``).

    Returns:
        One ``any_of`` filter per chunk; empty when ``values`` is empty.

    Raises:
        ValueError: a single value does not fit in ``max_chars`` on its own.
    """
    check_column(name)
    wrap = encoded_length("(") + encoded_length(")")
    separator = encoded_length(" or ")
    chunks: list[list[Any]] = []
    current: list[Any] = []
    used = wrap
    seen: set[str] = set()
    for value in values:
        part = eq(name, value)
        if part in seen:
            continue
        seen.add(part)
        size = encoded_length(part)
        if wrap + size > max_chars:
            raise ValueError(f"one value of {name} needs {wrap + size} encoded characters; the limit is "
                             f"{max_chars}")
        extra = size + (separator if current else 0)
        if current and used + extra > max_chars:
            chunks.append(current)
            current, used, extra = [], wrap, size
        current.append(value)
        used += extra
    if current:
        chunks.append(current)
    return [any_of(name, chunk) for chunk in chunks]
