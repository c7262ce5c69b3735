"""Type-check a parsed ``$filter`` against an entity and compile it to a row predicate and a plan.

Compiling once into closures (instead of walking the tree per row) keeps full scans over tens of
thousands of rows cheap. Alongside the predicate, ``compile_filter`` derives an index plan: which
rows *can* match, from equality on text/lookup columns (see ``store.Table.candidates``). The
predicate is still applied to every candidate, so a plan only ever narrows the scan.

Inferred: string comparisons and string functions are case-insensitive, as with Creatio's
default case-insensitive database collation (MSSQL ``*_CI_AS``); values are case-folded.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.creatio.errors import odata_error
from sandbox.creatio.odata_filter import And, Call, Compare, Literal, Member, Not, Or
from sandbox.creatio.schema import EMPTY_GUID, ColumnType
from sandbox.creatio.values import EDM_TYPES, EMPTY_DATETIME

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

_OPS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
        "lt": operator.lt, "le": operator.le}
_MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OP_KIND = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
            "lt": "LessThan", "le": "LessThanOrEqual"}
_LITERAL_KINDS = {"string": "text", "guid": "guid", "bool": "bool", "null": "null", "int": "int",
                  "decimal": "number", "datetime": "datetime"}
_EDM = {**EDM_TYPES, "number": "Edm.Decimal", "null": "null"}
_STRING_PREDICATES = {
    "contains": lambda hay, needle: needle in hay,
    "startswith": lambda hay, needle: hay.startswith(needle),
    "endswith": lambda hay, needle: hay.endswith(needle),
}
_STRING_TRANSFORMS = {"tolower": str.lower, "toupper": str.upper}


@dataclass(frozen=True)
class IndexLookup:
    """Rows whose ``column`` has one of ``keys`` (case-folded for text)."""

    column: str
    keys: frozenset


@dataclass(frozen=True)
class Union:
    parts: tuple


@dataclass(frozen=True)
class Intersect:
    parts: tuple


@dataclass(frozen=True)
class CompiledFilter:
    """``predicate(row)`` decides a stored row; ``plan`` (or ``None`` = full scan) narrows rows."""

    predicate: Predicate
    plan: Any


@dataclass(frozen=True)
class _Typed:
    kind: str  # a ColumnType, or "number" / "null"
    fn: Callable[[Row], Any]
    column: str | None = None  # set for a bare column reference
    literal: bool = False
    value: Any = None  # the literal value
    plan: Any = None  # for boolean expressions only
    exact: bool = False  # the plan selects exactly the matching rows (pure equality lookups)


class _Compiler:
    def __init__(self, entity: str, columns: dict[str, ColumnType]) -> None:
        self.entity = entity
        self.columns = columns

    def error(self, message: str):
        return odata_error(400, f"The query specified in the URI is not valid. {message}",
                           "Microsoft.OData.ODataException")

    def boolean(self, node: Any) -> _Typed:
        typed = self.expr(node)
        if typed.kind != "bool":
            raise self.error(f"The expression must be of type Edm.Boolean, not {_EDM[typed.kind]}.")
        return typed

    def expr(self, node: Any) -> _Typed:
        if isinstance(node, Or):
            return self.either([self.boolean(item) for item in node.items])
        if isinstance(node, And):
            return self.both([self.boolean(item) for item in node.items])
        if isinstance(node, Not):
            inner = self.boolean(node.operand).fn
            return _Typed("bool", lambda row: not inner(row))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Literal):
            value = node.value
            return _Typed(_LITERAL_KINDS[node.kind], lambda row: value, literal=True, value=value)
        raise TypeError(f"unknown node {node!r}")

    def member(self, node: Member) -> _Typed:
        name = resolve_column(node.path, self.entity, self.columns)
        return _Typed(self.columns[name], operator.itemgetter(name), column=name)

    def either(self, items: list[_Typed]) -> _Typed:
        fns = [item.fn for item in items]
        plan = _union([item.plan for item in items])
        same = _same_column_set(items)
        if same is not None:
            # "Name eq 'a' or Name eq 'b' or ...": one hash-set probe per row instead of n tests.
            column, keys = same
            if self.columns[column] == "text":
                return _Typed("bool", lambda row: row[column].casefold() in keys, plan=plan, exact=True)
            return _Typed("bool", lambda row: row[column] in keys, plan=plan, exact=True)
        return _Typed("bool", lambda row: any(fn(row) for fn in fns), plan=plan)

    def both(self, items: list[_Typed]) -> _Typed:
        fns = [item.fn for item in items]
        plans = tuple(item.plan for item in items if item.plan is not None)
        plan = None if not plans else plans[0] if len(plans) == 1 else Intersect(plans)
        if len(fns) == 2:
            first, second = fns
            return _Typed("bool", lambda row: first(row) and second(row), plan=plan)
        return _Typed("bool", lambda row: all(fn(row) for fn in fns), plan=plan)

    def compare(self, node: Compare) -> _Typed:
        left, right, op = self.expr(node.left), self.expr(node.right), node.op
        if left.literal and not right.literal:
            left, right, op = right, left, _MIRROR[op]  # keep the column on the left
        kinds = {left.kind, right.kind}
        if "null" in kinds:
            return self.compare_null(left, right, op)
        if left.kind != right.kind and kinds != {"int", "number"}:
            raise self.error(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[left.kind]}' and '{_EDM[right.kind]}' for operator kind '{_OP_KIND[op]}'.")
        test, lf, rf = _OPS[op], left.fn, right.fn
        if left.kind == "text":
            if right.literal:
                folded = right.value.casefold()
                fn = lambda row: test(lf(row).casefold(), folded)
            else:
                fn = lambda row: test(lf(row).casefold(), rf(row).casefold())
        elif left.kind == "datetime":
            # Decision: an empty date (stored as MinValue, NULL in Creatio's database) satisfies
            # no comparison with a value, as SQL NULL would not.
            def fn(row: Row) -> bool:
                a, b = lf(row), rf(row)
                return a != EMPTY_DATETIME and b != EMPTY_DATETIME and test(a, b)
        elif left.column is not None and right.literal:
            column, value = left.column, right.value
            fn = lambda row: test(row[column], value)
        else:
            fn = lambda row: test(lf(row), rf(row))
        plan = None
        if op == "eq" and left.column is not None and right.literal and left.kind in ("text", "guid"):
            key = right.value.casefold() if left.kind == "text" else right.value
            plan = IndexLookup(left.column, frozenset([key]))
        return _Typed("bool", fn, plan=plan, exact=plan is not None)

    def compare_null(self, left: _Typed, right: _Typed, op: str) -> _Typed:
        if op not in ("eq", "ne"):
            raise self.error(f"null can only be compared with eq or ne, not {op}.")
        if left.kind == "null" and right.kind == "null":
            result = op == "eq"
            return _Typed("bool", lambda row: result)
        typed = left if right.kind == "null" else right
        # Decision: "eq null" matches an empty lookup (all-zero GUID) or an empty date; text,
        # Boolean and Int32 columns are never NULL in Creatio ("" / false / 0).
        empty = {"guid": EMPTY_GUID, "datetime": EMPTY_DATETIME}.get(typed.kind)
        want_empty = op == "eq"
        if empty is None:
            return _Typed("bool", lambda row: not want_empty)
        fn = typed.fn
        plan = IndexLookup(typed.column, frozenset([empty])) if (
            want_empty and typed.column is not None and typed.kind == "guid") else None
        return _Typed("bool", lambda row: (fn(row) == empty) == want_empty, plan=plan,
                      exact=plan is not None)

    def call(self, node: Call) -> _Typed:
        name = node.name
        arity = 2 if name in _STRING_PREDICATES else 1 if name in _STRING_TRANSFORMS else None
        if arity is None:
            raise self.error(f"An unknown function with name '{name}' was found.")
        if len(node.args) != arity:
            raise self.error(f"The function '{name}' takes {arity} argument(s), got {len(node.args)}.")
        args = [self.expr(arg) for arg in node.args]
        for arg in args:
            if arg.kind != "text":
                raise self.error(f"The function '{name}' needs Edm.String arguments, "
                                 f"got {_EDM[arg.kind]}.")
        if name in _STRING_TRANSFORMS:
            transform, inner = _STRING_TRANSFORMS[name], args[0].fn
            return _Typed("text", lambda row: transform(inner(row)))
        test, hay = _STRING_PREDICATES[name], args[0].fn
        if args[1].literal:
            needle = args[1].value.casefold()
            return _Typed("bool", lambda row: test(hay(row).casefold(), needle))
        other = args[1].fn
        return _Typed("bool", lambda row: test(hay(row).casefold(), other(row).casefold()))


def resolve_column(path: tuple[str, ...], entity: str, columns: dict[str, ColumnType]) -> str:
    """The column a property path names: ``("Name",)`` -> ``Name``, ``("Account", "Id")`` ->
    ``AccountId``.

    Raises:
        ODataError: 400 when the entity has no such column.
    """
    if len(path) == 1 and path[0] in columns:
        return path[0]
    if len(path) == 2 and path[1] == "Id" and columns.get(f"{path[0]}Id") == "guid":
        return f"{path[0]}Id"  # navigation "Account/Id" is the lookup column "AccountId"
    # Decision: only the "<Lookup>/Id" navigation is supported (the sandbox has no joins).
    raise odata_error(400, "The query specified in the URI is not valid. Could not find a property "
                           f"named '{'/'.join(path)}' on type 'Terrasoft.Configuration.{entity}'.",
                      "Microsoft.OData.ODataException")


def _union(plans: list[Any]) -> Any:
    """Union of the plans of OR terms; ``None`` (full scan) if any term has no plan."""
    if not plans or any(plan is None for plan in plans):
        return None
    by_column: dict[str, set] = {}
    others = []
    for plan in plans:
        if isinstance(plan, IndexLookup):
            by_column.setdefault(plan.column, set()).update(plan.keys)
        else:
            others.append(plan)
    merged = [IndexLookup(column, frozenset(keys)) for column, keys in by_column.items()] + others
    return merged[0] if len(merged) == 1 else Union(tuple(merged))


def _same_column_set(items: list[_Typed]) -> tuple[str, frozenset] | None:
    """``(column, keys)`` when every OR term is a plain ``eq`` lookup on one column."""
    column, keys = None, set()
    for item in items:
        plan = item.plan
        if not item.exact or not isinstance(plan, IndexLookup):
            return None
        if column is not None and plan.column != column:
            return None
        column = plan.column
        keys.update(plan.keys)
    return (column, frozenset(keys)) if column is not None else None


def compile_filter(root: Any, entity: str, columns: dict[str, ColumnType]) -> CompiledFilter:
    """Type-check ``root`` against ``columns`` and compile it.

    Args:
        root: A tree from ``odata_filter.parse_filter``.
        entity: Entity name, for error messages.
        columns: The entity's columns and their types.

    Returns:
        The compiled predicate and its index plan.

    Raises:
        ODataError: 400 on an unknown column or function, or incompatible types.
    """
    typed = _Compiler(entity, columns).boolean(root)
    return CompiledFilter(typed.fn, typed.plan)
