"""Search parameters (query string or JSON body), paging, ILIKE matching and the user search itself."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Iterator, Mapping

from sandbox.webitel.store import UserStore
from sandbox.webitel.wire import ApiError

# webitel/engine model/search_list.go: PER_PAGE_MAXIMUM = 1000, PER_PAGE_DEFAULT = 40.
# Inferred: webitel.go applies the same maximum (size < 1 or > 1000 falls back to the default),
# and its users' default page holds 16, as the vendor's recorded traffic shows.
PAGE_MAXIMUM = 1000
USERS_PAGE_DEFAULT = 16
LICENSES_PAGE_DEFAULT = 16  # customers.proto comments: licence lists default to size=16

USER_SORT_FIELDS = ("id", "name", "username", "extension", "email", "chat_name", "created_at",
                    "updated_at", "deleted_at")
_WILDCARDS = set("*%_\\")


def params_from_body(body: object) -> dict[str, list[str]]:
    """Turn a JSON search body (``POST /users/search``) into query-string shaped parameters."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "app.request.bad_body", "search body must be a JSON object")
    params: dict[str, list[str]] = {}

    def put(name: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                put(f"{name}.{key}", inner)
        elif isinstance(value, list):
            for item in value:
                put(name, item)
        elif value is not None:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            params.setdefault(name, []).append(text)

    for name, value in body.items():
        put(name, value)
    return params


def first(params: Mapping[str, list[str]], name: str) -> str:
    """The first value of a parameter, or ""."""
    values = params.get(name) or []
    return values[0] if values else ""


def flag(params: Mapping[str, list[str]], name: str) -> bool:
    """A boolean parameter, parsed like Go's strconv.ParseBool; absent means false."""
    text = first(params, name)
    if text in ("", "0", "f", "F", "false", "FALSE", "False"):
        return False
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    raise ApiError(400, "app.request.bad_param", f"{name}: not a boolean")


def integer(params: Mapping[str, list[str]], name: str, default: int) -> int:
    """An integer parameter; absent means ``default``; garbage is a 400 like grpc-gateway's."""
    text = first(params, name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "app.request.bad_param", f"{name}: not an integer") from None


def ids(values: Iterable[str], name: str) -> list[int]:
    """Parse int64 ids given as strings."""
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ApiError(400, "app.request.bad_param", f"{name}: not an integer id") from None


def listing(params: Mapping[str, list[str]], name: str) -> list[str]:
    """A repeated parameter; comma-separated values are split too (``fields=id,name``)."""
    # Decision: comma lists are accepted besides repeats, which the UI sends (reference §1.5).
    return [part.strip() for value in params.get(name, []) for part in value.split(",") if part.strip()]


def paging(params: Mapping[str, list[str]], default_size: int) -> tuple[int, int]:
    """``(page, size)``: page is 1-based (< 1 reads as 1); size outside 1..1000 falls back."""
    page = max(1, integer(params, "page", 1))
    size = integer(params, "size", default_size)
    if size < 1 or size > PAGE_MAXIMUM:
        size = default_size
    return page, size


def sort_keys(params: Mapping[str, list[str]], known: tuple[str, ...]) -> list[tuple[str, bool]]:
    """``sort`` as (field, descending) pairs: ``f``/``+f`` ascending, ``-f``/``!f`` descending."""
    keys = []
    for value in listing(params, "sort"):
        desc = value[0] in "-!"
        name = value[1:] if value[0] in "+-!" else value
        # Decision: unknown sort fields are ignored rather than refused.
        if name in known:
            keys.append((name, desc))
    return keys


@lru_cache(maxsize=256)
def like(pattern: str, case_insensitive: bool = True) -> re.Pattern:
    """Compile an SQL (I)LIKE pattern after Webitel's ``*`` → ``%`` rewrite (engine GetQ).

    ``%`` and ``*`` match any run, ``_`` one character, ``\\`` escapes the next one. Without a
    wildcard the pattern is an exact (case-insensitive for ILIKE) match.
    """
    # Inferred: the server passes ``_`` and ``%`` through to PostgreSQL, so they stay wildcards.
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char in "*%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.S | (re.I if case_insensitive else 0))


@dataclass
class UserQuery:
    """A parsed users search."""

    page: int = 1
    size: int = USERS_PAGE_DEFAULT
    ids: list[int] | None = None
    not_ids: set[int] = field(default_factory=set)
    q: str = ""
    name: str = ""
    username: str = ""
    extension: str = ""
    include_active: bool = True
    include_deleted: bool = False
    fields: list[str] | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, params: Mapping[str, list[str]]) -> "UserQuery":
        """Build a query from query-string shaped parameters."""
        page, size = paging(params, USERS_PAGE_DEFAULT)
        deleted = flag(params, "deleted")
        return cls(
            page=page, size=size,
            ids=ids(params["id"], "id") if params.get("id") else None,
            not_ids=set(ids(params.get("not_id", []), "not_id")),
            q=first(params, "q"), name=first(params, "name"), username=first(params, "username"),
            extension=first(params, "extension"),
            include_active=not deleted, include_deleted=deleted or flag(params, "any"),
            fields=listing(params, "fields") or None, sort=sort_keys(params, USER_SORT_FIELDS),
        )


def _predicates(query: UserQuery) -> list:
    tests = []
    if query.not_ids:
        tests.append(lambda u: u["id"] not in query.not_ids)
    if query.q:
        pattern = like(query.q)
        tests.append(lambda u: any(pattern.fullmatch(u[k]) for k in ("name", "username", "extension")))
    if query.name:
        tests.append(lambda u, p=like(query.name): bool(p.fullmatch(u["name"])))
    if query.username and _WILDCARDS & set(query.username):
        tests.append(lambda u, p=like(query.username): bool(p.fullmatch(u["username"])))
    if query.extension and _WILDCARDS & set(query.extension):
        tests.append(lambda u, p=like(query.extension, False): bool(p.fullmatch(u["extension"])))
    return tests


def _candidates(store: UserStore, query: UserQuery) -> list[int]:
    """Ids to consider, in id order; uses the indexes when an exact filter allows it."""
    narrowed: set[int] | None = set(query.ids) if query.ids is not None else None
    if query.username and not _WILDCARDS & set(query.username):
        found = store.with_username(query.username)
        narrowed = found if narrowed is None else narrowed & found
    if query.extension and not _WILDCARDS & set(query.extension):
        found = store.with_extension(query.extension)
        narrowed = found if narrowed is None else narrowed & found
    if narrowed is None:
        return store.ids(include_active=query.include_active, include_deleted=query.include_deleted)
    keep = []
    for user_id in sorted(narrowed):
        user = store.get(user_id)
        if user and (query.include_deleted if user["deleted_at"] else query.include_active):
            keep.append(user_id)
    return keep


def search_users(store: UserStore, query: UserQuery) -> tuple[list[dict], bool]:
    """Run a users search.

    Args:
        store: The users.
        query: The parsed search.

    Returns:
        ``(users on the requested page, whether a further page exists)``; users are stored dicts.
    """
    candidates = _candidates(store, query)
    tests = _predicates(query)
    offset = (query.page - 1) * query.size
    sort = query.sort or [("id", False)]
    if sort == [("id", False)] and not tests:
        # The common full read: a slice of the sorted id list, O(page).
        chosen = candidates[offset:offset + query.size + 1]
        users = [store.get(i) for i in chosen]
    elif sort in ([("id", False)], [("id", True)]):
        ordered = reversed(candidates) if sort[0][1] else candidates
        users = _take(_matching(store, ordered, tests), offset, query.size + 1)
    else:
        users = list(_matching(store, candidates, tests))
        for name, desc in reversed(sort + [("id", False)]):
            users.sort(key=lambda u, n=name: u[n], reverse=desc)
        users = users[offset:offset + query.size + 1]
    return users[:query.size], len(users) > query.size


def _matching(store: UserStore, ordered: Iterable[int], tests: list) -> Iterator[dict]:
    for user_id in ordered:
        user = store.get(user_id)
        if all(test(user) for test in tests):
            yield user


def _take(items: Iterator[dict], offset: int, count: int) -> list[dict]:
    out = []
    for index, item in enumerate(items):
        if index >= offset + count:
            break
        if index >= offset:
            out.append(item)
    return out
