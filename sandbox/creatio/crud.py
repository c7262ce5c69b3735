"""OData entity-set handlers: query, count, read, create, update, delete (reference section 2).

Shared by the app (one HTTP request) and ``$batch`` (one sub-request), so both behave alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.base import Response, Stats
from sandbox.creatio.errors import database_error, method_not_allowed, odata_error, odata_json, routing_miss
from sandbox.creatio.query import execute, parse_options, row_serializer
from sandbox.creatio.rules import SaveRules
from sandbox.creatio.store import DuplicateKey, Row, Store, Table
from sandbox.creatio.values import DEFAULTS, GUID_RE, coerce, timestamp_to_canonical

_SERVER_STAMPED = ("CreatedOn", "ModifiedOn")


@dataclass(frozen=True)
class Resource:
    """A path below the OData root: ``Contact``, ``Contact/$count``, ``Contact(<id>)``."""

    entity: str
    kind: str  # "collection" | "count" | "entity"
    key: str | None = None


def parse_resource(rest: str) -> Resource | None:
    """Parse the part of a path after ``<odata>/``; ``None`` if it is no entity-set path.

    Accepts ``E``, ``E/``, ``E/$count``, ``E(<key>)``, ``E(<key>)/`` and ``E/<key>`` (the form
    seen in ``$batch`` examples and some clients, reference section 2.2).
    """
    rest = rest.removesuffix("/")
    if not rest or rest.startswith("$"):
        return None
    if "(" in rest:
        name, _, tail = rest.partition("(")
        if not tail.endswith(")") or "/" in name or ")" in tail[:-1]:
            return None
        return Resource(name, "entity", tail[:-1])
    parts = rest.split("/")
    if len(parts) == 1:
        return Resource(parts[0], "collection")
    if len(parts) == 2:
        return Resource(parts[0], "count") if parts[1] == "$count" else Resource(parts[0], "entity", parts[1])
    return None


class Entities:
    """Answers entity-set requests against a ``Store``.

    Args:
        store: The tables.
        clock: Seconds since the epoch, for ``CreatedOn``/``ModifiedOn``.
        stats: ``record_write`` is called once per successful create, update or delete.
        odata_path: e.g. ``/0/odata``, for ``@odata.context`` and ``Location``.
        max_page_rows: the site's own row limit per answer (a fault), applied after ``$top``.
        rules: Required columns and save scripts checked on create and update (none if omitted).
    """

    def __init__(self, store: Store, clock: Callable[[], float], stats: Stats, odata_path: str, *,
                 max_page_rows: int | None = None, rules: SaveRules | None = None) -> None:
        self.max_page_rows = max_page_rows
        self.rules = rules
        self.store = store
        self.clock = clock
        self.stats = stats
        self.odata_path = odata_path

    def dispatch(self, method: str, resource: Resource, query: Mapping[str, list[str]], body: bytes,
                 base: str) -> Response:
        """Answer one request; errors are raised as ``ODataError``.

        Args:
            method: HTTP method.
            resource: The parsed path.
            query: Decoded query parameters.
            body: Raw request body.
            base: ``http://host`` of the request, for absolute URLs in answers.
        """
        table = self.store.tables.get(resource.entity)
        if table is None:
            raise routing_miss(f"{base}{self.odata_path}/{resource.entity}", resource.entity)
        if resource.kind == "count":
            if method != "GET":
                raise method_not_allowed(method, "GET")
            options = parse_options(query, table, allow_paging=False)
            return Response.text(200, str(len(self.store.select(table, options.filter))))
        if resource.kind == "collection":
            if method == "GET":
                return self.query(table, query, base)
            if method == "POST":
                return self.create(table, _body_object(body), base)
            raise method_not_allowed(method, "GET, POST")
        key = resource.key or ""
        if not GUID_RE.fullmatch(key):
            # Decision: a key that is no GUID is a 400 (Creatio keys are Edm.Guid).
            raise odata_error(400, f"The key value '{key}' is not a valid Edm.Guid.",
                              "Microsoft.OData.ODataException")
        key = key.lower()
        if method == "GET":
            return self.read(table, key, base)
        if method == "PATCH":
            return self.update(table, key, _body_object(body))
        if method == "DELETE":
            return self.delete(table, key)
        # Decision: PUT (full replace) is not offered; clients PATCH, as clio does.
        raise method_not_allowed(method, "GET, PATCH, DELETE")

    def _context(self, base: str, fragment: str) -> str:
        return f"{base}{self.odata_path}/$metadata#{fragment}"

    def query(self, table: Table, query: Mapping[str, list[str]], base: str) -> Response:
        """``GET <odata>/E`` with query options."""
        options = parse_options(query, table)
        if self.max_page_rows is not None:
            options.top = min(options.top, self.max_page_rows)
        rows, total = execute(self.store, table, options)
        fragment = table.name + (f"({','.join(options.select)})" if options.select else "")
        payload: dict[str, Any] = {"@odata.context": self._context(base, fragment)}
        if options.count:
            payload["@odata.count"] = total
        serialize = row_serializer(table, options.select)
        payload["value"] = [serialize(row) for row in rows]
        return odata_json(200, payload)

    def read(self, table: Table, key: str, base: str) -> Response:
        """``GET <odata>/E(<id>)``."""
        row = self._existing(table, key)
        return odata_json(200, self._entity_payload(table, row, base))

    def _entity_payload(self, table: Table, row: Row, base: str) -> dict[str, Any]:
        return {"@odata.context": self._context(base, f"{table.name}/$entity"), **row_serializer(table)(row)}

    def create(self, table: Table, values: dict[str, Any], base: str) -> Response:
        """``POST <odata>/E``: 201 with the entity and ``Location``."""
        row = build_row(table, values, timestamp_to_canonical(self.clock()), honour_timestamps=False)
        if self.rules is not None:
            self.rules.check_create(table, row)
        try:
            table.insert(row)
        except DuplicateKey:
            # Decision: Creatio on PostgreSQL; a duplicate primary key surfaces as the database
            # error inside a 500 (reference section 2.9).
            raise database_error(f'23505: duplicate key value violates unique constraint "PK{table.name}Id"')
        self.stats.record_write()
        location = f"{base}{self.odata_path}/{table.name}({row['Id']})"
        return odata_json(201, self._entity_payload(table, row, base), [("Location", location)])

    def update(self, table: Table, key: str, values: dict[str, Any]) -> Response:
        """``PATCH <odata>/E(<id>)``: 204."""
        changes = _validated(table, values)
        if "Id" in changes and changes["Id"] != key:
            raise odata_error(400, "The Id of an entity cannot be changed.", "Microsoft.OData.ODataException")
        row = self._existing(table, key)
        changes.pop("Id", None)
        # Decision: CreatedOn/ModifiedOn sent by a client are validated but not stored; the
        # server stamps them, as Creatio's entity events do.
        for column in _SERVER_STAMPED:
            changes.pop(column, None)
        if self.rules is not None:
            self.rules.check_update(table, row, changes)
        if "ModifiedOn" in table.columns:
            changes["ModifiedOn"] = timestamp_to_canonical(self.clock())
        table.update(key, changes)
        self.stats.record_write()
        return Response.empty(204, [("OData-Version", "4.0")])

    def delete(self, table: Table, key: str) -> Response:
        """``DELETE <odata>/E(<id>)``: 204."""
        self._existing(table, key)
        table.delete(key)
        self.stats.record_write()
        return Response.empty(204, [("OData-Version", "4.0")])

    def _existing(self, table: Table, key: str) -> Row:
        row = table.rows.get(key)
        if row is None:
            raise odata_error(404, f"The entity of type 'Terrasoft.Configuration.{table.name}' with "
                                   f"key '{key}' was not found.")
        return row


def _body_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise odata_error(400, "A request body is required.", "Microsoft.OData.ODataException")
    try:
        value = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise odata_error(400, f"The request body is not valid JSON: {exc}", "Microsoft.OData.ODataException")
    if not isinstance(value, dict):
        raise odata_error(400, "The request body must be a JSON object.", "Microsoft.OData.ODataException")
    return value


def _validated(table: Table, values: Mapping[str, Any]) -> Row:
    """Stored forms of the written properties; annotations (``@odata.*``, ``X@...``) are skipped."""
    out: Row = {}
    for name, value in values.items():
        if "@" in name:
            continue
        kind = table.columns.get(name)
        if kind is None:
            raise odata_error(400, f"The property '{name}' does not exist on type "
                                   f"'Terrasoft.Configuration.{table.name}'. Make sure to only use "
                                   "property names that are defined by the type or mark the type as "
                                   "open type.",
                              "Microsoft.OData.ODataException")
        out[name] = coerce(name, kind, value, table.name)
    return out


def build_row(table: Table, values: Mapping[str, Any], now: str, *, honour_timestamps: bool) -> Row:
    """A complete stored row from written values.

    Args:
        table: Target table.
        values: Wire values (a POST body or a seed row).
        now: Stored form of the current time.
        honour_timestamps: Keep given ``CreatedOn``/``ModifiedOn`` (seed, direct insert) instead
            of stamping ``now`` (OData POST).

    Raises:
        ODataError: 400 on an unknown property or a value of the wrong type.
    """
    given = _validated(table, values)
    row: Row = {}
    for column, kind in table.columns.items():
        if column == "Id":
            # A client-supplied Id is honoured; none (or null) gets a new one.
            row["Id"] = given["Id"] if values.get("Id") is not None else str(uuid.uuid4())
        elif column in _SERVER_STAMPED and not (honour_timestamps and values.get(column) is not None):
            row[column] = now
        else:
            row[column] = given.get(column, DEFAULTS[kind])
    return row

