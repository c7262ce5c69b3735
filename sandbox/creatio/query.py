"""Collection query options: ``$filter``, ``$select``, ``$orderby``, ``$top``, ``$skip``, ``$count``.

``parse_options`` validates the options against a table up front (so every mistake is a 400
before any work), ``execute`` runs them, ``row_serializer`` turns stored rows into JSON objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.creatio.errors import odata_error
from sandbox.creatio.filter_eval import CompiledFilter, compile_filter, resolve_column
from sandbox.creatio.odata_filter import parse_filter
from sandbox.creatio.store import Row, Store, Table
from sandbox.creatio.values import wire_datetime

# Records per OData response (reference section 5).
MAX_TOP = 20000
_SUPPORTED = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$format"}
_NOT_IMPLEMENTED = {"$expand", "$search", "$apply", "$compute", "$levels", "$skiptoken", "$deltatoken"}


@dataclass
class QueryOptions:
    """Validated query options of one collection request."""

    filter: CompiledFilter | None = None
    select: list[str] | None = None
    orderby: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    top: int = MAX_TOP
    skip: int = 0
    count: bool = False


def _invalid(message: str):
    return odata_error(400, f"The query specified in the URI is not valid. {message}",
                       "Microsoft.OData.ODataException")


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(f"Query option '{name}' was specified more than once, but it must be "
                       "specified at most once.")
    return values[0]


def _count_value(text: str, name: str) -> int:
    if not text.isdigit():
        raise _invalid(f"Invalid value '{text}' for {name} query option found. "
                       f"The {name} query option requires a non-negative integer value.")
    return int(text)


def parse_options(query: Mapping[str, list[str]], table: Table, *, allow_paging: bool = True) -> QueryOptions:
    """Validate the ``$`` options of a request against ``table``.

    Args:
        query: Decoded query parameters (name -> values).
        table: The entity set queried.
        allow_paging: ``False`` for ``/$count``, where only ``$filter`` applies.

    Returns:
        The options; ``top`` is capped at 20000.

    Raises:
        ODataError: 400 on an unknown option or column, a bad value or a filter error; 501 on
            options the sandbox does not implement (``$expand``...).
    """
    options = QueryOptions()
    for name in query:
        if not name.startswith("$"):
            continue  # custom query options are ignored, as by ASP.NET OData
        # Decision: $expand and friends answer 501 (the sandbox has no joins); unknown $options 400.
        if name in _NOT_IMPLEMENTED:
            raise odata_error(501, f"The query option '{name}' is not implemented by the sandbox.")
        if name not in _SUPPORTED:
            raise _invalid(f"The query parameter '{name}' is not supported.")
    text = _single(query, "$filter")
    if text is not None:
        options.filter = compile_filter(parse_filter(text), table.name, table.columns)
    if not allow_paging:
        return options
    text = _single(query, "$select")
    if text is not None and text.strip() != "*":
        options.select = _parse_select(text, table)
    text = _single(query, "$orderby")
    if text is not None:
        options.orderby = _parse_orderby(text, table)
    text = _single(query, "$top")
    if text is not None:
        # Inferred: a $top above Creatio's 20000-record limit is capped silently, with no
        # @odata.nextLink (reference open question 4).
        options.top = min(_count_value(text, "$top"), MAX_TOP)
    text = _single(query, "$skip")
    if text is not None:
        options.skip = _count_value(text, "$skip")
    text = _single(query, "$count")
    if text is not None:
        if text not in ("true", "false"):
            raise _invalid(f"'{text}' is not a valid count option.")
        options.count = text == "true"
    return options


def _parse_select(text: str, table: Table) -> list[str]:
    wanted = set()
    for item in text.split(","):
        name = item.strip()
        if name not in table.columns:
            raise _invalid(f"Could not find a property named '{name}' on type "
                           f"'Terrasoft.Configuration.{table.name}'.")
        wanted.add(name)
    return [name for name in table.columns if name in wanted]  # $metadata order, like OData


def _parse_orderby(text: str, table: Table) -> list[tuple[str, bool]]:
    order = []
    for item in text.split(","):
        parts = item.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
            raise _invalid(f"Syntax error in $orderby '{text}': expected 'Column [asc|desc]'.")
        column = resolve_column(tuple(parts[0].split("/")), table.name, table.columns)
        order.append((column, len(parts) == 2 and parts[1] == "desc"))
    return order


def execute(store: Store, table: Table, options: QueryOptions) -> tuple[list[Row], int]:
    """Run the options: filter, order, page.

    Returns:
        The page of stored rows and the number of rows matching the filter before paging.
    """
    # Decision: without $orderby rows come in insertion order (real Creatio promises no order).
    rows = store.select(table, options.filter)
    total = len(rows)
    # Stable sorts from the last key to the first give a multi-key order with mixed directions.
    # Decision: text sorts case-insensitively (the collation again); empty dates sort first in
    # ascending order, as NULLs do on MSSQL.
    for column, descending in reversed(options.orderby):
        if table.columns[column] == "text":
            rows.sort(key=lambda row: row[column].casefold(), reverse=descending)
        else:
            rows.sort(key=lambda row: row[column], reverse=descending)
    return rows[options.skip:options.skip + options.top], total


def row_serializer(table: Table, select: list[str] | None = None) -> Callable[[Row], dict[str, Any]]:
    """A function turning a stored row into its JSON object (only ``select`` columns if given)."""
    columns = select or list(table.columns)
    dates = [column for column in columns if table.columns[column] == "datetime"]

    def serialize(row: Row) -> dict[str, Any]:
        out = {column: row[column] for column in columns}
        for column in dates:
            out[column] = wire_datetime(out[column])
        return out

    return serialize
