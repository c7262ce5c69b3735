"""Typed records of the configured Webitel objects in Creatio (``mappings.profiles.ObjectModel``).

Entity and column names come from the object model, so the same code reads the default
``WebitelUser`` objects and the older ``WSysAccount``. A column the profile sets to ``None`` does not
exist there: it is neither selected nor written, and its field reads as ``None``.

Each record class maps its fields through one declarative table ``(field, model attribute, type)``;
``columns`` gives the ``$select`` list, ``from_row`` reads an OData row, ``to_row`` builds a write
body with PascalCase column names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Mapping

from mappings.profiles import EMPTY_GUID, ColumnType, ObjectModel

from ..errors import ConfigError
from .models import Row
from .odata import Guid, datetime_literal


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

    # (field, attribute of the model's object table holding the column name, column type)
    FIELDS: ClassVar[tuple[tuple[str, str, ColumnType], ...]] = ()

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
    def columns(cls, model: ObjectModel) -> list[str]:
        """The ``$select`` list: ``Id`` and every existing column."""
        return ["Id", *(column for _, column, _ in cls.mapped(model))]

    @classmethod
    def from_row(cls, data: Mapping[str, Any], model: ObjectModel):
        """The record of an OData row (selected with ``columns(model)``).

        Raises:
            RecordError: a column is missing or its value does not fit.
        """
        row = Row(data, cls.entity(model))
        values = {field: row.get(column, kind) for field, column, kind in cls.mapped(model)}
        return cls(id=row.id(), **values)

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

    FIELDS: ClassVar[tuple[tuple[str, str, ColumnType], ...]] = (
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

    FIELDS: ClassVar[tuple[tuple[str, str, ColumnType], ...]] = (
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

    FIELDS: ClassVar[tuple[tuple[str, str, ColumnType], ...]] = (
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
