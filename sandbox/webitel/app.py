"""``WebitelApp``: the sandbox Webitel API (users, licences, customer) as a request → response app.

Routing, authentication and wire shaping live here; the behaviour lives in ``users``, ``licenses``,
``search`` and ``account``. The API root is ``/api``. All state changes happen under one lock, so a
threaded server may call ``handle`` concurrently.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable

from sandbox.base import Request, Response, Stats
from sandbox.seed.types import SeedData
from sandbox.webitel import account, licenses, users
from sandbox.webitel.auth import Sessions
from sandbox.webitel.certificate import DEFAULT_CUSTOMER
from sandbox.webitel.search import UserQuery, flag, ids, listing, params_from_body, search_users
from sandbox.webitel.store import LicenseStore, UserStore
from sandbox.webitel.wire import (
    CREATED_FIELDS, DEFAULT_LIST_FIELDS, UPDATED_FIELDS, USER_FIELDS, ApiError, page_body, read_json,
    user_wire,
)

# (template, {method: handler name}); literal paths come before templated ones.
ROUTES = [
    ("/api/login", {"POST": "_login"}),
    ("/api/logout", {"POST": "_logout"}),
    ("/api/userinfo", {"GET": "_userinfo"}),
    ("/api/users", {"GET": "_list_users", "POST": "_create_user", "DELETE": "_delete_users"}),
    ("/api/users/search", {"POST": "_search_users"}),
    ("/api/users/password/settings", {"GET": "_password_settings"}),
    ("/api/users/password/generate", {"POST": "_password_generate"}),
    ("/api/users/{id}", {"GET": "_get_user", "PUT": "_put_user", "PATCH": "_patch_user",
                         "DELETE": "_delete_user"}),
    ("/api/user", {"GET": "_get_user_by_query"}),
    ("/api/license", {"GET": "_list_licenses"}),
    ("/api/products", {"GET": "_list_licenses"}),
    ("/api/products/{id}/users", {"GET": "_product_users"}),
    ("/api/customer", {"GET": "_get_customer", "PUT": "_put_customer"}),
]
_COMPILED = [(t, re.compile("^" + t.replace("{id}", "([^/]+)") + "$"), m) for t, m in ROUTES]
UNMATCHED = "(unmatched)"


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _user_id(text: str) -> int:
    # grpc-gateway answers 400 when a path id does not parse as int64.
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "app.request.bad_param", "id: not an integer id") from None


class WebitelApp:
    """The sandbox Webitel API server app.

    Args:
        seed: Users, licences and credentials to start from (``sandbox.seed.types``).
        now_ms: Clock in Unix milliseconds; defaults to the wall clock. Tests inject a fake one.
        stats: Request/write counters to share with the server; a new one by default.
        require_password: Refuse ``POST /users`` without a password (400).
        token_lifetime_s: Lifetime of tokens issued by ``POST /login``.
    """

    def __init__(
        self,
        seed: SeedData,
        *,
        now_ms: Callable[[], int] | None = None,
        stats: Stats | None = None,
        require_password: bool = True,
        token_lifetime_s: int = 86400,
        honour_sort: bool = True,
    ) -> None:
        self.now_ms = now_ms or _wall_clock_ms
        self.stats = stats or Stats()
        self.require_password = require_password
        # Fault: False answers every users search in id order, whatever ``sort`` asks (a server
        # that ignores sort), so a client's check that the server really sorted can be tested.
        self.honour_sort = honour_sort
        self.credentials = seed.credentials
        self.domain = seed.domain
        self.store = UserStore()
        self.store.load(
            seed.webitel_users,
            self.now_ms(),
            account.seed_admin(seed.webitel_users, seed.credentials.webitel_username),
        )
        # The username of every password generator request, in order ("" when none was sent).
        self.generated_for: list[str] = []
        self.catalog = LicenseStore(seed.licenses)
        self.sessions = Sessions(seed.credentials, seed.domain, self.now_ms, token_lifetime_s)
        now = self.now_ms()
        self.customer = {**DEFAULT_CUSTOMER, "issued_at": now, "created_at": now, "updated_at": 0}
        self._lock = threading.RLock()

    # ----- the app interface -----

    def route(self, request: Request) -> str:
        """The path template of a request for counters, e.g. ``/api/users/{id}``."""
        for template, pattern, _methods in _COMPILED:
            if pattern.match(request.path):
                return template
        return UNMATCHED

    def fault_response(self, status: int, headers: list[tuple[str, str]] | None = None) -> Response:
        """The answer of an injected fault (``sandbox.server``), in Webitel's error shape.

        Errors are ``{id, code, detail, status}`` everywhere in the vendor's recorded traffic, 5xx
        included. Decision: the ids are the sandbox's own (the real ones are not recorded).
        """
        # Decision: the sandbox's own error ids (the recorded traffic shows the shape, not these).
        ids = {
            429: "app.request.too_many_requests",
            500: "app.internal.error",
            502: "app.gateway.bad_gateway",
            503: "app.service.unavailable",
        }
        error = ApiError(status, ids.get(status, "app.internal.error"), f"sandbox fault {status}", headers)
        return error.response()

    def handle(self, request: Request) -> Response:
        """Answer one request; every failure is a Webitel error body ``{id, code, status, detail}``."""
        with self._lock:
            try:
                return self._dispatch(request)
            except ApiError as error:
                return error.response()
            except Exception as error:  # a sandbox bug must still answer like a server would
                return ApiError(500, "app.internal.error", f"{type(error).__name__}: {error}").response()

    def _dispatch(self, request: Request) -> Response:
        for template, pattern, methods in _COMPILED:
            match = pattern.match(request.path)
            if not match:
                continue
            handler = methods.get(request.method.upper())
            if handler is None:
                allow = ", ".join(methods)
                raise ApiError(
                    405,
                    "app.request.method_not_allowed",
                    f"{request.method} is not allowed on {template}",
                    [("Allow", allow)],
                )
            token = "" if template == "/api/login" else self.sessions.check(request)
            return getattr(self, handler)(request, *match.groups(), token=token)
        raise ApiError(404, "app.request.not_found", f"no such endpoint: {request.path}")

    # ----- direct helpers (no HTTP) for tests and the demo -----

    def user(self, user_id: int) -> dict | None:
        """A user in the seed vocabulary (plus audit fields and password), or None."""
        with self._lock:
            user = self.store.get(int(user_id))
            return account.seed_view(user) if user else None

    def user_by_username(self, name: str) -> dict | None:
        """The user with this username (case-insensitive, soft-deleted included), or None."""
        with self._lock:
            found = sorted(self.store.with_username(name))
            return account.seed_view(self.store.get(found[0])) if found else None

    def all_users(self, include_deleted: bool = False) -> list[dict]:
        """Every user in id order, in the seed vocabulary."""
        with self._lock:
            ids_ = self.store.ids(include_active=True, include_deleted=include_deleted)
            return [account.seed_view(self.store.get(i)) for i in ids_]

    def licenses(self) -> list[dict]:
        """Every licence in the seed vocabulary, with ``remain`` computed."""
        with self._lock:
            return [
                {**lic, "scope": list(lic["scope"]), "remain": licenses.remain_of(self, lic)}
                for lic in self.catalog.all()
            ]

    def expire_tokens(self) -> None:
        """Invalidate every login session token (the static token stays valid)."""
        with self._lock:
            self.sessions.expire_all()

    def set_license_grants(self, user_id: int, serials: list[str]) -> None:
        """Set a user's grants without any check (test setup); raises KeyError for an unknown user."""
        with self._lock:
            if self.store.get(int(user_id)) is None:
                raise KeyError(user_id)
            self.store.update(int(user_id), {"license": list(dict.fromkeys(serials))})

    # ----- handlers -----

    def _json(self, payload: dict, status: int = 200) -> Response:
        return Response.json(status, payload)

    def _user_json(self, user: dict, fields: list[str] | None = None) -> Response:
        return self._json(user_wire(user, self.catalog.licenses, self._user_fields(fields) or USER_FIELDS))

    @staticmethod
    def _user_fields(requested: list[str] | None) -> list[str] | None:
        return [f for f in requested if f in USER_FIELDS] if requested else None

    def _login(self, request: Request, token: str) -> Response:
        return self._json(self.sessions.login(read_json(request)))

    def _logout(self, request: Request, token: str) -> Response:
        self.sessions.logout(token)
        return self._json({})

    def _userinfo(self, request: Request, token: str) -> Response:
        return self._json(account.userinfo(self, token))

    def _password_settings(self, request: Request, token: str) -> Response:
        return self._json({"settings": dict(account.PASSWORD_SETTINGS)})

    def _password_generate(self, request: Request, token: str) -> Response:
        body = read_json(request)
        username = body.get("username", "") if isinstance(body, dict) else ""
        self.generated_for.append(str(username or ""))
        return self._json({"password": account.generate_password(str(username or ""))})

    def _list_users(self, request: Request, token: str) -> Response:
        return self._search(UserQuery.parse(request.query))

    def _search_users(self, request: Request, token: str) -> Response:
        return self._search(UserQuery.parse(params_from_body(read_json(request))))

    def _search(self, query: UserQuery) -> Response:
        if not self.honour_sort:
            query.sort = []
        found, has_next = search_users(self.store, query)
        fields = self._user_fields(query.fields) if query.fields else list(DEFAULT_LIST_FIELDS)
        items = [user_wire(user, self.catalog.licenses, fields) for user in found]
        return self._json(page_body(query.page, items, has_next))

    def _get_user(self, request: Request, user_id: str, token: str) -> Response:
        user = self.store.get(_user_id(user_id))
        if user is None or (user["deleted_at"] and not flag(request.query, "any")):
            # Decision: reference open question 4; the engine maps "no rows" to 404.
            raise ApiError(404, "app.user.get.not_found", f"user {user_id} not found")
        return self._user_json(user, listing(request.query, "fields"))

    def _get_user_by_query(self, request: Request, token: str) -> Response:
        if request.arg("id"):
            return self._get_user(request, request.arg("id"), token=token)
        return self._json(account.current_user(self))

    def _create_user(self, request: Request, token: str) -> Response:
        user = users.create(self, read_json(request), request.arg("user_password"))
        return self._json(user_wire(user, self.catalog.licenses, CREATED_FIELDS))

    def _put_user(self, request: Request, user_id: str, token: str) -> Response:
        return self._update_user(request, user_id, replace=True)

    def _patch_user(self, request: Request, user_id: str, token: str) -> Response:
        return self._update_user(request, user_id, replace=False)

    def _update_user(self, request: Request, user_id: str, *, replace: bool) -> Response:
        """``PUT`` (the body replaces the user) and ``PATCH`` (the body's fields change)."""
        user = users.update(self, _user_id(user_id), read_json(request), replace=replace,
                            query_password=request.arg("user_password"))
        return self._json(user_wire(user, self.catalog.licenses, UPDATED_FIELDS))

    def _delete_user(self, request: Request, user_id: str, token: str) -> Response:
        permanent = flag(request.query, "permanent")
        return self._deleted(users.delete(self, [_user_id(user_id)], permanent=permanent))

    def _delete_users(self, request: Request, token: str) -> Response:
        body = read_json(request)
        # HTTP rule ``body: "selection"``: the body is the bare array; an object form and the
        # ``id`` query parameter are accepted too.
        selection = body.get("selection") if isinstance(body, dict) else body
        if selection is None:
            selection = request.args("id")
        if not isinstance(selection, list) or not selection:
            raise ApiError(400, "app.user.delete.bad_request", "body must be a non-empty array of user ids")
        user_ids = ids([str(v) for v in selection], "selection")
        return self._deleted(users.delete(self, user_ids, permanent=flag(request.query, "permanent")))

    def _deleted(self, deleted: list[dict]) -> Response:
        return self._json({"deleted": [user_wire(u, self.catalog.licenses) for u in deleted]})

    def _list_licenses(self, request: Request, token: str) -> Response:
        return self._json(licenses.list_licenses(self, request.query))

    def _product_users(self, request: Request, serial: str, token: str) -> Response:
        return self._json(licenses.product_users(self, serial, request.query))

    def _get_customer(self, request: Request, token: str) -> Response:
        return self._json(licenses.customer_wire(self))

    def _put_customer(self, request: Request, token: str) -> Response:
        return self._json(licenses.upload_certificate(self, read_json(request), request.query))
