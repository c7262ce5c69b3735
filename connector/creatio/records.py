"""Typed records of Creatio rows: Creatio's standard objects and the configured Webitel objects.

Every record class maps its fields through one declarative table ``(field, column, type)``: for
Creatio's standard objects (``Contact``, ``Account``, ``SysAdminUnit``, ``ContactCommunication``)
the column is Creatio's own name; for the Webitel objects it is the attribute of the configured
object model (``connector.creatio.objects.ObjectModel``) holding the site's column name, so the
same code reads the default ``WebitelUser`` objects and the older ``WSysAccount``. A column the
profile sets to ``None`` does not exist there: it is neither selected nor written, and its field
reads as ``None``.

``columns`` gives the ``$select`` list, ``from_row`` reads an OData row, ``to_row`` builds a write
body. A value that does not fit its column raises ``RecordError`` naming the entity, record and
column, so the run can skip that one record.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Mapping

from ..errors import ConfigError, RecordError, cut
from .objects import ObjectModel
from .odata import Guid, datetime_literal
from .values import EMPTY_GUID, PARSERS, ColumnType, parse_guid

Mapped = tuple[tuple[str, str, ColumnType], ...]


class Row:
    """One OData row with typed getters.

    Args:
        data: the row as decoded from JSON.
        entity: the entity name, for error messages.
    """

    def __init__(self, data: Mapping[str, Any], entity: str = "") -> None:
        if not isinstance(data, Mapping):
            # A server may put anything in "value": a number or a string is one bad record.
            shown = cut(repr(data), 60)
            raise RecordError(f"the row is {type(data).__name__} {shown}, not an object", system="creatio",
                              object=entity)
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
        return f"id {cut(value, 60)}" if isinstance(value, str) else ""


def write_value(kind: ColumnType, value: Any) -> Any:
    """A field value in the form Creatio accepts in a write body.

    Lookups are GUID strings, the empty GUID for None (Creatio has no null lookup); text None is
    ``""``; date-times are UTC ISO strings (naive ones are refused).
    """
    if kind == "guid":
        return EMPTY_GUID if value is None else str(Guid(value))
    if kind == "text":
        return "" if value is None else str(value)
    if kind == "datetime":
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"not a datetime: {value!r}")
        return datetime_literal(value)
    return value


class _Record:
    """Shared reading and writing over a record's field table."""

    # No instance dict: the records are slotted (tens of thousands of them in a run).
    __slots__ = ()

    # (field, attribute of the model's object table holding the column name, column type)
    FIELDS: ClassVar[Mapped] = ()

    @classmethod
    def table(cls, model: ObjectModel) -> Any:
        """The model's object table for this record (entity name and column names)."""
        raise NotImplementedError

    @classmethod
    def entity(cls, model: ObjectModel) -> str:
        return cls.table(model).entity

    @classmethod
    def mapped(cls, model: ObjectModel) -> list[tuple[str, str, ColumnType]]:
        """``(field, column, type)`` for every field whose column exists in this profile."""
        table = cls.table(model)
        out = []
        for field, attribute, kind in cls.FIELDS:
            column = getattr(table, attribute)
            if column:
                out.append((field, column, kind))
        return out

    @classmethod
    def _reading(cls, model: ObjectModel) -> tuple[str, tuple[tuple[str, str, ColumnType], ...]]:
        """(entity, mapped fields) of ``model``, worked out once per model rather than per row."""
        key = (cls, id(model))
        found = _READING.get(key)
        if found is None or found[0] is not model:
            if len(_READING) >= 64:
                _READING.clear()
            found = _READING[key] = (model, cls.entity(model), tuple(cls.mapped(model)))
        return found[1], found[2]

    @classmethod
    def mapped_fields(cls, model: ObjectModel) -> frozenset[str]:
        """The fields whose column exists in this profile."""
        return frozenset(field for field, _, _ in cls.mapped(model))

    @classmethod
    def columns(cls, model: ObjectModel) -> list[str]:
        """The ``$select`` list: ``Id`` and every existing column."""
        return ["Id", *(column for _, column, _ in cls.mapped(model))]

    @classmethod
    def from_row(cls, data: Mapping[str, Any], model: ObjectModel):
        """The record of an OData row (selected with ``columns(model)``).

        Raises:
            RecordError: a column is missing or its value does not fit.
        """
        return _read(cls, data, *cls._reading(model))

    @classmethod
    def to_row(cls, record_or_changes: Any, model: ObjectModel) -> dict[str, Any]:
        """A write body with Creatio column names.

        Args:
            record_or_changes: a whole record (a create: ``Id``, every existing column and the
                profile's constant ``defaults``), or a dict of field name → new value (an
                update: those columns only).
            model: the object model.

        Raises:
            ValueError: an unknown field name, or a value that does not fit its column.
        """
        mapped = {field: (column, kind) for field, column, kind in cls.mapped(model)}
        if isinstance(record_or_changes, cls):
            body: dict[str, Any] = {"Id": str(Guid(record_or_changes.id))}
            for field, (column, kind) in mapped.items():
                body[column] = write_value(kind, getattr(record_or_changes, field))
            body.update(getattr(cls.table(model), "defaults", {}) or {})
            return body
        known = {f.name for f in fields(cls)} - {"id"}
        body = {}
        for field, value in dict(record_or_changes).items():
            if field not in known:
                raise ValueError(f"{cls.__name__} has no field {field!r}")
            if field in mapped:  # a column this profile lacks is silently not written
                column, kind = mapped[field]
                body[column] = write_value(kind, value)
        return body


@dataclass(frozen=True, slots=True)
class WebitelUserRecord(_Record):
    """A "Webitel Users" record: one telephony user linked to a Creatio contact/user."""

    FIELDS: ClassVar[Mapped] = (
        ("name", "name", "text"), ("username", "username", "text"), ("webitel_id", "webitel_id", "text"),
        ("extension", "extension", "text"), ("contact_id", "contact", "guid"),
        ("sys_admin_unit_id", "sys_admin_unit", "guid"), ("active", "active", "bool"),
    )

    id: str
    name: str | None = None
    username: str | None = None
    webitel_id: str | None = None
    extension: str | None = None
    contact_id: str | None = None
    sys_admin_unit_id: str | None = None
    active: bool | None = None

    @classmethod
    def table(cls, model: ObjectModel) -> Any:
        return model.webitel_user


@dataclass(frozen=True, slots=True)
class LicenseRecord(_Record):
    """A Webitel licence as pushed to Creatio (read-only there)."""

    FIELDS: ClassVar[Mapped] = (
        ("serial", "serial", "text"), ("product", "product", "text"), ("name", "name", "text"),
        ("valid_from", "valid_from", "datetime"), ("valid_till", "valid_till", "datetime"),
        ("limit", "limit", "int"), ("used", "used", "int"), ("concurrent", "concurrent", "bool"),
    )

    id: str
    serial: str = ""
    product: str = ""
    name: str = ""
    valid_from: datetime | None = None
    valid_till: datetime | None = None
    limit: int = 0
    used: int = 0
    concurrent: bool = False

    @classmethod
    def table(cls, model: ObjectModel) -> Any:
        if model.webitel_license is None:
            raise ConfigError(f"the {model.profile!r} object profile has no licence object")
        return model.webitel_license


@dataclass(frozen=True, slots=True)
class GrantRecord(_Record):
    """A "User Licenses" row: one licence granted to one Webitel user record."""

    FIELDS: ClassVar[Mapped] = (
        ("user_id", "user", "guid"), ("license_id", "license", "guid"),
    )

    id: str
    user_id: str | None = None
    license_id: str | None = None

    @classmethod
    def table(cls, model: ObjectModel) -> Any:
        if model.webitel_user_license is None:
            raise ConfigError(f"the {model.profile!r} object profile has no user-licence object")
        return model.webitel_user_license


# (record class, id of the model) -> (the model, its entity, its mapped fields); see ``_reading``.
_READING: dict[tuple[type, int], tuple[ObjectModel, str, tuple]] = {}


def _read(cls: type, data: Mapping[str, Any], entity: str, mapped) -> Any:
    # Decision: a row that reads cleanly (all but a few) takes one pass with no Row around it; one
    # that fails at all is read again the checked way, which raises the precise RecordError. Both
    # read the columns in the same order, so the first failure is the same one.
    if type(data) is dict:
        try:
            rid = parse_guid(data["Id"])
            values = {field: PARSERS[kind](data[column]) for field, column, kind in mapped}
        except (KeyError, ValueError):
            pass
        else:
            if rid is not None:
                return cls(rid, **values)
    row = Row(data, entity)
    return cls(row.id(), **{field: row.get(column, kind) for field, column, kind in mapped})


class _Standard:
    """A record of one of Creatio's own objects: ``ENTITY`` and ``FIELDS`` name its columns."""

    __slots__ = ()  # as _Record's

    ENTITY: ClassVar[str] = ""
    FIELDS: ClassVar[Mapped] = ()

    @classmethod
    def columns(cls) -> list[str]:
        """The ``$select`` list: ``Id`` and every mapped column."""
        return ["Id", *(column for _, column, _ in cls.FIELDS)]

    @classmethod
    def from_row(cls, data: Mapping[str, Any]) -> Any:
        """The record of an OData row (selected with ``columns()``).

        Raises:
            RecordError: a column is missing or its value does not fit.
        """
        return _read(cls, data, cls.ENTITY, cls.FIELDS)


@dataclass(frozen=True, slots=True)
class Contact(_Standard):
    """A ``Contact`` (a person in the CRM)."""

    ENTITY: ClassVar[str] = "Contact"
    FIELDS: ClassVar[Mapped] = (("name", "Name", "text"), ("email", "Email", "text"),
                                ("account_id", "AccountId", "guid"))

    id: str
    name: str
    email: str
    account_id: str | None


@dataclass(frozen=True, slots=True)
class Account(_Standard):
    """An ``Account`` (a company)."""

    ENTITY: ClassVar[str] = "Account"
    FIELDS: ClassVar[Mapped] = (("name", "Name", "text"),)

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class SysUser(_Standard):
    """A system user: a ``SysAdminUnit`` row of type 4; ``name`` is the login."""

    ENTITY: ClassVar[str] = "SysAdminUnit"
    FIELDS: ClassVar[Mapped] = (("name", "Name", "text"), ("contact_id", "ContactId", "guid"),
                                ("active", "Active", "bool"))

    id: str
    name: str
    contact_id: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class ContactCommunication(_Standard):
    """A contact's phone, e-mail or extension (``type_id`` is the CommunicationType)."""

    ENTITY: ClassVar[str] = "ContactCommunication"
    FIELDS: ClassVar[Mapped] = (
        ("contact_id", "ContactId", "guid"),
        ("type_id", "CommunicationTypeId", "guid"),
        ("number", "Number", "text"),
    )

    id: str
    contact_id: str | None
    type_id: str | None
    number: str
