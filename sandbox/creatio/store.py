"""Tables of stored rows with lazily built hash indexes.

Each table keeps its rows in a dict by ``Id`` (insertion-ordered, so an unordered query returns
rows in creation order) and, for text and lookup columns that have appeared in an ``eq``, a hash
index ``key -> Ids`` (text keys case-folded). An index is built on first use and kept up to date
on every insert, update and delete afterwards.

An index bucket is a bare Id string while the key is unique and becomes a set on the second Id:
most keys (names, e-mails) are unique, and not creating 100,000 one-element sets halves the time
of the first query that builds the index.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sandbox.creatio.filter_eval import CompiledFilter, IndexLookup, Intersect, Union
from sandbox.creatio.schema import ColumnType

Row = dict[str, Any]


class DuplicateKey(Exception):
    """An insert whose ``Id`` already exists."""


def _add(index: dict[Any, Any], key: Any, row_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = row_id
    elif type(bucket) is str:
        index[key] = {bucket, row_id}
    else:
        bucket.add(row_id)


def _remove(index: dict[Any, Any], key: Any, row_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        return
    if type(bucket) is str:
        if bucket == row_id:
            del index[key]
        return
    bucket.discard(row_id)
    if len(bucket) == 1:
        index[key] = next(iter(bucket))


class Table:
    """One entity's rows.

    Attributes:
        name: Entity name.
        columns: Column name -> type, in ``$metadata`` order.
        rows: ``Id`` -> stored row (every column present, stored forms of ``values``).
    """

    def __init__(self, name: str, columns: dict[str, ColumnType]) -> None:
        self.name = name
        self.columns = columns
        self.rows: dict[str, Row] = {}
        self._order: dict[str, int] = {}  # Id -> insertion number, to sort index hits
        self._next = 0
        self._indexes: dict[str, dict[Any, Any]] = {}  # column -> key -> Id or set of Ids

    def _key(self, column: str, value: Any) -> Any:
        return value.casefold() if self.columns[column] == "text" else value

    def index(self, column: str) -> dict[Any, Any]:
        """The hash index of ``column`` (key -> Id or set of Ids), built now on first use."""
        index = self._indexes.get(column)
        if index is None:
            index = {}
            if self.columns[column] == "text":
                keys = [row[column].casefold() for row in self.rows.values()]
            else:
                keys = [row[column] for row in self.rows.values()]
            for key, row_id in zip(keys, self.rows):
                _add(index, key, row_id)
            self._indexes[column] = index
        return index

    def holders(self, column: str, value: Any) -> set[str]:
        """Ids of the rows whose ``column`` equals ``value`` (text compared case-insensitively)."""
        bucket = self.index(column).get(self._key(column, value))
        if bucket is None:
            return set()
        return {bucket} if type(bucket) is str else set(bucket)

    def insert(self, row: Row) -> None:
        """Add a complete stored row.

        Raises:
            DuplicateKey: a row with this ``Id`` exists.
        """
        row_id = row["Id"]
        if row_id in self.rows:
            raise DuplicateKey(row_id)
        self.rows[row_id] = row
        self._order[row_id] = self._next
        self._next += 1
        for column, index in self._indexes.items():
            _add(index, self._key(column, row[column]), row_id)

    def update(self, row_id: str, changes: Row) -> Row:
        """Apply stored-form ``changes`` to an existing row and return it."""
        row = self.rows[row_id]
        for column, value in changes.items():
            index = self._indexes.get(column)
            if index is not None:
                _remove(index, self._key(column, row[column]), row_id)
                _add(index, self._key(column, value), row_id)
            row[column] = value
        return row

    def delete(self, row_id: str) -> None:
        """Remove a row (it must exist)."""
        row = self.rows.pop(row_id)
        del self._order[row_id]
        for column, index in self._indexes.items():
            _remove(index, self._key(column, row[column]), row_id)

    def _lookup(self, plan: Any) -> set[str]:
        if isinstance(plan, IndexLookup):
            if plan.column == "Id":  # the primary key needs no secondary index
                return {key for key in plan.keys if key in self.rows}
            index = self.index(plan.column)
            found: set[str] = set()
            for key in plan.keys:
                bucket = index.get(key)
                if bucket is None:
                    continue
                if type(bucket) is str:
                    found.add(bucket)
                else:
                    found |= bucket
            return found
        if isinstance(plan, Union):
            return set().union(*(self._lookup(part) for part in plan.parts))
        if isinstance(plan, Intersect):
            parts = sorted((self._lookup(part) for part in plan.parts), key=len)
            return parts[0].intersection(*parts[1:])
        raise TypeError(f"unknown plan {plan!r}")

    def candidates(self, plan: Any) -> Collection[Row]:
        """Rows a filter with ``plan`` may match, in insertion order (all rows for ``None``)."""
        if plan is None:
            return self.rows.values()
        ids = self._lookup(plan)
        if len(ids) * 8 > len(self.rows):
            # Many hits: one ordered pass is cheaper than sorting the hits.
            return [row for row_id, row in self.rows.items() if row_id in ids]
        return [self.rows[row_id] for row_id in sorted(ids, key=self._order.__getitem__)]


class Store:
    """Every table of the Creatio model, plus a counter of predicate evaluations.

    ``rows_evaluated`` grows by the number of rows a filter predicate was run on; tests use it
    to check that an indexed query did not scan the table.
    """

    def __init__(self, entities: dict[str, dict[str, ColumnType]]) -> None:
        self.tables = {name: Table(name, columns) for name, columns in entities.items()}
        self.rows_evaluated = 0

    def select(self, table: Table, compiled: CompiledFilter | None) -> list[Row]:
        """The rows of ``table`` matching ``compiled`` (all rows for ``None``), in insertion order."""
        if compiled is None:
            return list(table.rows.values())
        rows = table.candidates(compiled.plan)
        predicate = compiled.predicate
        matched = [row for row in rows if predicate(row)]
        self.rows_evaluated += len(rows)
        return matched
