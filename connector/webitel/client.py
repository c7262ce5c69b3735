"""The Webitel client: every call is one line over ``HttpClient.request``.

Paths are relative to the configured API base (which ends in ``/api``). Lists are lazy iterators;
anything returning a list is built on them.

Paging (reference section 1.5): ``page``/``size``, and ``{"page", "next", "items"}`` answers. A
list read trusts nothing else: ``next`` must be a real boolean, an answer without ``items`` must
be an empty list and not an error envelope, a page of ids all read before means the server ignores
paging, an id read before is passed on once, and Webitel gives no count, so ``max_pages`` bounds a
read.

The pages after the second are asked ``max_concurrency`` at a time (``connector.pool.Prefetch``)
once the second also says ``next``; they are read in order, by the same rules, and the read stops
at the first page that ends it, having sent at most ``max_concurrency - 1`` requests past it.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import Any, Callable, Iterator

import requests
from pydantic import ValidationError

from ..errors import BadResponse, RecordError, cut
from ..http import MAX_ID, HttpClient, json_body
from ..pool import Prefetch
from ..retry import RetryPolicy
from ..settings import WebitelSettings
from .auth import LoginAuth, TokenAuth
from .error_body import parse_error
from .models import Customer, License, LicenseHolder, WebitelUser

log = logging.getLogger(__name__)

# What the sync reads of a user; the default list output lacks email and license (reference 2.1).
USER_FIELDS = ("id", "username", "name", "email", "extension", "license", "updated_at")
# The keys of a list answer; Webitel leaves out empty ones, so {} or {"page": 1} is an empty list.
PAGE_KEYS = frozenset({"page", "size", "next", "items"})
# Decision: the first page asked ahead of its turn. Pages 1 and 2 are asked one by one, so a list
# of one page costs one request and one of two pages two, as without prefetch; only a list that
# has shown a third page pays for the requests sent past its end.
FIRST_PREFETCHED = 3


class WebitelClient:
    """Users, licences and the licence certificate of one Webitel domain.

    Args:
        settings: the ``[webitel]`` table.
        retry: the retry bounds (``[retry]``).
        session: a ready ``requests.Session``, or None.
        sleep: injected into retries so tests do not wait.
    """

    def __init__(
        self,
        settings: WebitelSettings,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        auth = (
            TokenAuth(settings.token)
            if settings.token is not None
            else LoginAuth(settings.username or "", settings.password, settings.domain)
        )  # type: ignore[arg-type]
        self.http = HttpClient(
            system="webitel",
            base_url=settings.url,
            timeout_s=settings.timeout_s,
            verify=settings.verify,
            retry=retry,
            parse_error=parse_error,
            auth=auth,
            session=session,
            sleep=sleep,
            max_response_bytes=settings.max_response_mb * 2**20,
            max_concurrency=settings.max_concurrency,
        )

    @property
    def counter(self):
        return self.http.counter

    # ---- paging ---------------------------------------------------------------------------------
    def _pages(self, path: str, route: str, params: list[tuple[str, Any]], page_size: int,
               key: Callable[[Any], Any] = lambda item: _id_key(item.get("id")),
               prefetch: bool = True) -> Iterator[Any]:
        """Yield raw items page by page until ``next`` is false or absent, or a page is empty.

        Args:
            key: an item's identity (None: unknown), to pass each item on once and to tell a
                page the server repeats.
            prefetch: once page 2 says ``next``, ask the following pages ``max_concurrency`` at a
                time, read in order by the same rules (at most ``max_concurrency - 1`` requests
                past the page that ends the read are wasted). Off for a caller that stops reading
                early by design.

        Raises:
            BadResponse: an answer that is not a list (an error envelope with status 200 among
                them), ``next`` that is not a boolean, a page of items all read before, or more
                pages than ``settings.max_pages``.
        """
        max_pages = self.settings.max_pages

        def fetch(number: int) -> requests.Response:
            return self.http.request(
                "GET", path, route=route, params=[*params, ("page", number), ("size", page_size)]
            )

        page, seen, previous = 1, set(), set()
        ahead: Prefetch[int, requests.Response] | None = None
        with ExitStack() as stack:
            while True:
                if page > max_pages:
                    raise BadResponse(
                        f"{self.settings.url} kept answering next = true: paging stopped after "
                        f"{max_pages} pages (max_pages)",
                        system="webitel", method="GET", path=route,
                    )
                response = ahead.take(page) if ahead is not None else None
                if response is None:
                    response = fetch(page)
                body = json_body(response, system="webitel")
                items = _items(body, route, response.status_code)
                if not items:
                    return
                fresh, keys = [], set()
                for item in items:
                    ident = key(item) if isinstance(item, dict) else None
                    if ident is not None:
                        keys.add(ident)
                        if ident in seen:
                            continue
                        seen.add(ident)
                    fresh.append(item)
                if not fresh:
                    first = cut(str(key(items[0])), 40)
                    which = "the previous page" if keys <= previous else "pages read before"
                    raise BadResponse(
                        f"page {page} repeats {which} (first id {first}); the server ignores paging",
                        system="webitel", method="GET", path=route,
                    )
                if len(fresh) < len(items):
                    # Decision: an id on two pages (a user added while reading shifts the pages by
                    # one) is passed on once; the first copy is as current as the second.
                    log.warning("webitel GET %s: %d items of page %d came on an earlier page; each is "
                                "read once", route, len(items) - len(fresh), page)
                previous = keys
                yield from fresh
                more = body.get("next")
                if more is None or more is False:
                    return
                if more is not True:
                    # Decision: "false", 1 or "yes" is no answer to "is there more": the read fails
                    # rather than guess, as stopping early would take the rest of the users for
                    # deleted.
                    raise BadResponse(f'"next" is {cut(repr(more), 40)}, not a boolean; paging stopped',
                                      system="webitel", method="GET", path=route,
                                      status=response.status_code)
                page += 1
                workers = self.settings.max_concurrency
                if prefetch and page == FIRST_PREFETCHED and workers > 1 and page < max_pages:
                    # The pages up to max_pages are planned; the window asks them a few at a time.
                    ahead = stack.enter_context(
                        Prefetch(range(page, max_pages + 1), fetch, workers, name="wcsync-pages"))

    # ---- users ----------------------------------------------------------------------------------
    def iter_users(
        self, *, fields: tuple[str, ...] = USER_FIELDS, page_size: int | None = None, prefetch: bool = True,
        **filters: Any
    ) -> Iterator[WebitelUser | RecordError]:
        """Every user of the domain, lazily; a user that does not parse comes as a ``RecordError``.

        Args:
            fields: the output columns to ask for (``fields=`` repeated).
            page_size: rows per page (default from settings, at most 1000).
            prefetch: ask the pages after the second ``max_concurrency`` at a time (see
                ``_pages``); False for a reader that stops early (newest first, to a watermark).
            filters: query filters such as ``username``, ``extension``, ``id`` (a list repeats).
        """
        params: list[tuple[str, Any]] = [("fields", f) for f in fields]
        params += _filter_params(filters)
        for raw in self._pages("users", "/users", params, page_size or self.settings.page_size,
                               prefetch=prefetch):
            yield _parse_user(raw)

    def list_users(self, **kwargs: Any) -> list[WebitelUser]:
        """All users that parse (see ``iter_users``)."""
        return [u for u in self.iter_users(**kwargs) if isinstance(u, WebitelUser)]

    def get_user(self, user_id: int, *, fields: tuple[str, ...] | None = USER_FIELDS) -> WebitelUser:
        """One user. The gateway answers the bare object; a ``{"user": ...}`` wrapper is accepted too."""
        params = [("fields", f) for f in fields] if fields else None
        response = self.http.request("GET", f"users/{int(user_id)}", route="/users/{id}", params=params)
        return _user_or_raise(_unwrap(json_body(response, system="webitel"), "user"))

    def find_user(self, username: str) -> WebitelUser | None:
        """The user whose username equals ``username`` case-insensitively, or None.

        The server's ``username`` filter is an ILIKE (``_`` and ``%`` are wildcards), so the answer is
        checked again here for exact equality.
        """
        wanted = username.casefold()
        for user in self.iter_users(username=username, page_size=50):
            if isinstance(user, WebitelUser) and user.username.casefold() == wanted:
                return user
        return None

    def create_user(self, body: dict[str, Any], *, password: str | None = None) -> WebitelUser:
        """Create a user from an ``InputUser`` body (top level, not wrapped). Not retried blindly.

        Only the new ``id`` of the answer is to be relied on: a write's answer may leave out any
        other field (PATCH and PUT answer a partial user), so an empty extension or licence list
        in it says nothing.

        Args:
            body: ``username``, ``name``, ``email``, ``extension``, ``license`` (list of ``{"id"}``), ...
            password: the initial password; it goes in the body and never into logs.
        """
        payload = dict(body)
        if password is not None:
            payload["password"] = password
        response = self.http.request("POST", "users", route="/users", json=payload, idempotent=False)
        return _user_or_raise(_unwrap(json_body(response, system="webitel"), "user"))

    def patch_user(self, user_id: int, changes: dict[str, Any]) -> None:
        """Change only the given keys (``PATCH`` derives the changed fields from the body).

        Returns nothing: the answer is a partial user (``id, name, username, updated_at,
        updated_by`` in the vendor's recorded traffic), without the extension or the licences, so
        reading them from it would take them for empty. Read the user again to see it.
        """
        self.http.request("PATCH", f"users/{int(user_id)}", route="/users/{id}", json=changes)

    def set_user_licenses(self, user_id: int, serials: list[str] | tuple[str, ...]) -> None:
        """Replace the user's grants with exactly ``serials`` (the list is the complete new set)."""
        self.patch_user(user_id, {"license": [{"id": s} for s in sorted(set(serials))]})

    def delete_user(self, user_id: int, *, permanent: bool = False) -> None:
        """Soft-delete a user (``permanent=True`` removes it for good). A missing user is not an error."""
        from ..errors import NotFound

        params = [("permanent", "true")] if permanent else None
        try:
            self.http.request("DELETE", f"users/{int(user_id)}", route="/users/{id}", params=params)
        except NotFound:
            return

    def password_settings(self) -> dict[str, Any]:
        """The domain's password policy (``GET /api/users/password/settings``)."""
        response = self.http.request("GET", "users/password/settings", route="/users/password/settings")
        body = json_body(response, system="webitel")
        return dict(body.get("settings") or {}) if isinstance(body, dict) else {}

    def generate_password(self, username: str | None = None) -> str:
        """A password that satisfies the domain's policy, made by the server.

        Args:
            username: the login the password is for; the vendor's description of the request
                (``GeneratePasswordRequest.username``: "required to enforce
                password_contains_login policy") says the policy needs it.
        """
        body = {"username": username} if username else {}
        response = self.http.request(
            "POST", "users/password/generate", route="/users/password/generate", json=body, idempotent=True
        )
        body = json_body(response, system="webitel")
        return str(body.get("password") or "") if isinstance(body, dict) else ""

    # ---- licences -------------------------------------------------------------------------------
    def iter_licenses(self, *, page_size: int | None = None, **filters: Any) -> Iterator[License]:
        """The licence registry, lazily.

        Filters: ``product``, ``valid``, ``id``, and ``user.id`` as ``user_id``.
        """
        if "user_id" in filters:
            filters["user.id"] = filters.pop("user_id")
        for raw in self._pages(
            "license", "/license", _filter_params(filters), page_size or self.settings.page_size
        ):
            yield _parse(License, raw, "license")

    def list_licenses(self, **filters: Any) -> list[License]:
        return list(self.iter_licenses(**filters))

    def iter_license_holders(self, serial: str, *, page_size: int | None = None) -> Iterator[LicenseHolder]:
        """Users holding licence ``serial`` (``/products/{serial}/users``: the id is the serial)."""
        path = f"products/{requests.utils.quote(serial, safe='')}/users"
        for raw in self._pages(path, "/products/{id}/users", [], page_size or self.settings.page_size,
                               key=_holder_key):
            yield _parse(LicenseHolder, raw, "license holder")

    def get_customer(self) -> Customer:
        """The tenant's certificate with its licences (bare or ``{"customer": ...}``)."""
        response = self.http.request("GET", "customer", route="/customer")
        return _parse(Customer, _unwrap(json_body(response, system="webitel"), "customer"), "customer")

    def upload_license_key(self, certificate: str) -> Customer:
        """Upload a licence key (``PUT /api/customer`` ``{"certificate": ...}``); the key is a secret.

        Repeating the same upload is harmless, so it is retried like any PUT.
        """
        key = certificate.strip()
        response = self.http.request(
            "PUT", "customer", route="/customer", json={"certificate": key}, secrets=(key,)
        )
        return _parse(Customer, _unwrap(json_body(response, system="webitel"), "customer"), "customer")

    def userinfo(self) -> dict[str, Any]:
        """Who the credentials belong to (``GET /api/userinfo``)."""
        response = self.http.request("GET", "userinfo", route="/userinfo")
        body = json_body(response, system="webitel")
        return body if isinstance(body, dict) else {}


def _items(body: Any, route: str, status: int) -> list[Any]:
    """The items of a list answer, or ``BadResponse`` when the answer is no list."""
    fields = dict(system="webitel", method="GET", path=route, status=status)
    if not isinstance(body, dict):
        raise BadResponse("list answer is not an object", **fields)
    items = body.get("items")
    if items is not None and not isinstance(items, list):
        raise BadResponse("list answer without an items array", **fields)
    if not items and set(body) - PAGE_KEYS:
        # Decision: an answer without items is an empty list only when it holds nothing but the
        # paging keys; {"id", "code", "status", "detail"} with status 200 is an error, and reading
        # it as "no users" would plan every user's record as deleted.
        detail = body.get("detail") or body.get("message") or body.get("status") or body.get("error")
        error_id = body.get("id") if isinstance(body.get("id"), str) else ""
        raise BadResponse(f"list answer without items: {cut(str(detail or sorted(body)), 200)}",
                          error_id=cut(error_id, MAX_ID), **fields)
    return items or []


def _id_key(value: Any) -> Any:
    """An id as a set key ("17" and 17 are one user); None when there is no usable id."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value if isinstance(value, (int, str)) else None


def _holder_key(item: dict) -> Any:
    user = item.get("user")
    return _id_key(user.get("id")) if isinstance(user, dict) else None


def _filter_params(filters: dict[str, Any]) -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = []
    for name, value in filters.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for item in values:
            params.append((name, str(item).lower() if isinstance(item, bool) else item))
    return params


def _unwrap(body: Any, key: str) -> Any:
    if isinstance(body, dict) and set(body) == {key} and isinstance(body[key], dict):
        return body[key]
    return body


def _parse(model: type, raw: Any, what: str):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadResponse(f"unreadable {what}: {_first_problem(exc)}", system="webitel") from None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    return f"field {'.'.join(map(str, err['loc'])) or '?'}: {err['msg']}"


def _parse_user(raw: Any) -> WebitelUser | RecordError:
    try:
        return WebitelUser.parse(raw)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        ident = raw.get("id", "?") if isinstance(raw, dict) else "?"
        name = raw.get("username", "") if isinstance(raw, dict) else ""
        name = cut(name, 60) if isinstance(name, str) else ""
        # An id that is no id is shown quoted, never as "(id <digits>)", which names a real user.
        shown = f"id {ident}" if field != "id" else f"invalid id {cut(repr(ident), 40)}"
        return RecordError(
            f"cannot be read: {err['msg'].removeprefix('Value error, ')}",
            system="webitel",
            object="user",
            record=f"{name or '<no username>'} ({shown})",
            field=field,
        )


def _user_or_raise(raw: Any) -> WebitelUser:
    user = _parse_user(raw)
    if isinstance(user, RecordError):
        raise BadResponse(str(user), system="webitel")
    return user
