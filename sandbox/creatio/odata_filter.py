"""``$filter`` text to an abstract syntax tree: a tokenizer and a recursive-descent parser.

Grammar (OData 4 precedence: unary ``not`` binds tighter than comparisons, then ``and``, ``or``)::

    expr       := and_expr ("or" and_expr)*          -> Or(items) when more than one
    and_expr   := comparison ("and" comparison)*     -> And(items) when more than one
    comparison := unary (("eq"|"ne"|"gt"|"ge"|"lt"|"le") unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")" | literal | name "(" [expr ("," expr)*] ")" | name ("/" name)*

``or``/``and`` chains are collected in a loop into one n-ary node, so a filter of hundreds of
ORed terms neither recurses deeply nor builds a deep tree. Only parentheses and ``not`` nest.
Type checking and evaluation live in ``filter_eval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.creatio.errors import odata_error
from sandbox.creatio.values import DATETIME_RE, GUID_RE, canonical_datetime

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
KEYWORDS = {"and", "or", "not", *COMPARISONS}
MAX_DEPTH = 100  # nesting of parentheses / not; keeps the parser far from Python's recursion limit

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
# Anything that starts like a date; used only to give a clear error when DATETIME_RE fails.
_DATE_LIKE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T[0-9:.]*)?")
_PUNCTUATION = {"(": "lparen", ")": "rparen", ",": "comma", "/": "slash"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # lparen rparen comma slash string guid datetime number name end
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # string guid bool null int decimal datetime
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Member:
    path: tuple[str, ...]  # ("Name",) or ("CommunicationType", "Id")
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Any, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Any
    right: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Any
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Any, ...]


def syntax_error(text: str, pos: int, detail: str = ""):
    """A 400 naming the position, worded like Microsoft.OData's ``Syntax error at position``."""
    suffix = f" {detail}" if detail else ""
    return odata_error(400, f"Syntax error at position {pos} in '{text}'.{suffix}",
                       "Microsoft.OData.ODataException")


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _bounded(text: str, end: int) -> bool:
    # A literal must not run straight into a name character ("1abc", GUID followed by "x").
    return end >= len(text) or not _is_name_char(text[end])


def tokenize(text: str) -> list[Token]:
    """Split a ``$filter`` string into tokens; the last token has kind ``end``.

    Raises:
        ODataError: 400 on an unterminated string, a malformed date or an unexpected character.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[ch], ch, i))
            i += 1
        elif ch == "'":
            value, end = _read_string(text, i)
            tokens.append(Token("string", value, i))
            i = end
        else:
            found = _read_literal(text, i)
            if found is None:
                if not (ch.isalpha() or ch == "_"):
                    raise syntax_error(text, i, f"Unexpected character '{ch}'.")
                end = i
                while end < n and _is_name_char(text[end]):
                    end += 1
                found = Token("name", text[i:end], i), end
            tokens.append(found[0])
            i = found[1]
    tokens.append(Token("end", None, n))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string from ``start`` (the opening quote); ``''`` inside is one quote."""
    parts: list[str] = []
    i = start + 1
    while True:
        close = text.find("'", i)
        if close < 0:
            raise syntax_error(text, start, "Unterminated string literal.")
        parts.append(text[i:close])
        if close + 1 < len(text) and text[close + 1] == "'":
            parts.append("'")
            i = close + 2
            continue
        return "".join(parts), close + 1


def _read_literal(text: str, i: int) -> tuple[Token, int] | None:
    """A GUID, date-time or number token at ``i`` and the index after it, or ``None``."""
    match = GUID_RE.match(text, i)
    if match and _bounded(text, match.end()):
        return Token("guid", match.group().lower(), i), match.end()
    if not (text[i].isdigit() or text[i] == "-"):
        return None
    match = DATETIME_RE.match(text, i)
    if match and _bounded(text, match.end()):
        stored = canonical_datetime(match.group())
        if stored is None:
            raise syntax_error(text, i, f"'{match.group()}' is not a valid Edm.DateTimeOffset.")
        return Token("datetime", stored, i), match.end()
    match = _DATE_LIKE_RE.match(text, i)
    if match:
        # Inferred: Creatio's OData 4 takes unquoted DateTimeOffset literals with an offset
        # (reference open question 5); a bare date or a time without offset is rejected.
        raise syntax_error(text, i, f"'{match.group()}' needs a time and a UTC offset, "
                                    "e.g. 2024-01-01T00:00:00Z.")
    match = _NUMBER_RE.match(text, i)
    if match and _bounded(text, match.end()):
        raw = match.group()
        value = float(raw) if "." in raw else int(raw)
        return Token("number", value, i), match.end()
    if text[i] == "-":
        raise syntax_error(text, i, "Unexpected character '-'.")
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "name" and token.value in words

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise syntax_error(self.text, token.pos, f"Expected {what}.")
        return self.advance()

    def expr(self) -> Any:
        items = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Any:
        items = [self.comparison()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.comparison())
        return items[0] if len(items) == 1 else And(tuple(items))

    def comparison(self) -> Any:
        left = self.unary()
        while self.at_keyword(*COMPARISONS):
            token = self.advance()
            left = Compare(token.value, left, self.unary(), token.pos)
        return left

    def unary(self) -> Any:
        if self.at_keyword("not"):
            token = self.advance()
            with _Nesting(self, token.pos):
                return Not(self.unary(), token.pos)
        return self.primary()

    def primary(self) -> Any:
        token = self.advance()
        if token.kind == "lparen":
            with _Nesting(self, token.pos):
                inner = self.expr()
            self.expect("rparen", "')'")
            return inner
        if token.kind == "string":
            return Literal("string", token.value, token.pos)
        if token.kind in ("guid", "datetime"):
            return Literal(token.kind, token.value, token.pos)
        if token.kind == "number":
            kind = "decimal" if isinstance(token.value, float) else "int"
            return Literal(kind, token.value, token.pos)
        if token.kind != "name" or token.value in KEYWORDS:
            shown = "end of input" if token.kind == "end" else f"'{token.value}'"
            raise syntax_error(self.text, token.pos, f"Unexpected {shown}.")
        if token.value in ("true", "false"):
            return Literal("bool", token.value == "true", token.pos)
        if token.value == "null":
            return Literal("null", None, token.pos)
        if self.peek().kind == "lparen":
            return self.call(token)
        path = [token.value]
        while self.peek().kind == "slash":
            self.advance()
            path.append(self.expect("name", "a property name after '/'").value)
        return Member(tuple(path), token.pos)

    def call(self, name: Token) -> Call:
        self.advance()  # "("
        args: list[Any] = []
        with _Nesting(self, name.pos):
            if self.peek().kind != "rparen":
                args.append(self.expr())
                while self.peek().kind == "comma":
                    self.advance()
                    args.append(self.expr())
        self.expect("rparen", "')' or ','")
        return Call(name.value, tuple(args), name.pos)


class _Nesting:
    """Counts nesting depth so that absurd nesting is a 400, never a RecursionError."""

    def __init__(self, parser: _Parser, pos: int) -> None:
        self.parser, self.pos = parser, pos

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_DEPTH:
            raise syntax_error(self.parser.text, self.pos, f"Nesting deeper than {MAX_DEPTH} levels.")

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1


def parse_filter(text: str) -> Any:
    """Parse a ``$filter`` expression.

    Args:
        text: The decoded ``$filter`` value, e.g. ``Name eq 'O''Brien' or not (Active)``.

    Returns:
        The root node (``Or``, ``And``, ``Not``, ``Compare``, ``Call``, ``Member`` or ``Literal``).

    Raises:
        ODataError: 400 with the position of the first syntax error.
    """
    parser = _Parser(text)
    if parser.peek().kind == "end":
        raise syntax_error(text, 0, "The filter is empty.")
    root = parser.expr()
    token = parser.peek()
    if token.kind != "end":
        raise syntax_error(text, token.pos, f"Unexpected '{token.value}'.")
    return root
