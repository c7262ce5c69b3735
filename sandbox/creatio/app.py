"""The sandbox Creatio app: routing of login, token and OData requests onto auth and handlers.

It is an app, not a server: ``sandbox.server.SandboxServer`` calls ``handle`` once per HTTP
request (from several threads, hence the lock) and counts ``(method, route(request), status)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from sandbox.base import Request, Response, Stats
from sandbox.creatio.auth import Auth
from sandbox.creatio.batch import run_batch
from sandbox.creatio.crud import Entities, build_row, parse_resource
from sandbox.creatio.errors import ODataError, method_not_allowed, odata_json, routing_miss
from sandbox.creatio.metadata import edmx, service_document
from sandbox.creatio.query import row_serializer
from sandbox.creatio.rules import SaveRules
from sandbox.creatio.schema import get_model
from sandbox.creatio.store import DuplicateKey, Store
from sandbox.creatio.values import timestamp_to_canonical
from sandbox.seed.types import SeedData

LOGIN_PATHS = ("/ServiceModel/AuthService.svc/Login", "/0/ServiceModel/AuthService.svc/Login")
TOKEN_PATH = "/connect/token"


class CreatioApp:
    """Creatio's login, OAuth token and OData 4 endpoints over in-memory tables.

    Args:
        seed: ``seed.creatio[entity]`` rows are loaded into the tables; ``seed.credentials``
            holds the forms user and the OAuth client.
        creatio_model: Name of the sandbox's Creatio model (``sandbox.creatio.schema.MODELS``):
            ``"default"`` (``WebitelUser``...) or ``"wsysaccount"`` (``WSysAccount`` and its
            roles). Its entities are the tables; lookup records it ships with are loaded first.
        save_scripts: Run the objects' save scripts (``WSysAccount``: no other record with the
            same ``Login`` or ``Contact``); ``False`` lets such saves through.
        odata_path: OData root (``/0/odata`` on .NET Framework sites, ``/odata`` on .NET).
        session_lifetime_s: Idle timeout of forms sessions (sliding).
        oauth_token_lifetime_s: Lifetime of OAuth access tokens.
        expire_sessions_after_requests: Fault: after every K authorised requests all sessions
            and tokens die.
        expired_session_response: ``"401"`` or ``"redirect"`` (302 to the login page) for
            cookie requests without a live session.
        max_page_rows: Fault: the site's own row limit per answer, below ``$top``. Rows past it
            are cut silently, without a nextLink (a site whose limit is lowered, or a user whose
            read rights hide rows, answers this way).
        clock: Seconds since the epoch.
        stats: Shared counters; a new ``Stats`` if omitted.

    Raises:
        ValueError: an unknown ``creatio_model``, or a seed row does not fit its table.
    """

    def __init__(self, seed: SeedData, *, creatio_model: str = "default", save_scripts: bool = True,
                 odata_path: str = "/0/odata", session_lifetime_s: float = 3600,
                 oauth_token_lifetime_s: float = 3600, expire_sessions_after_requests: int | None = None,
                 expired_session_response: Literal["401", "redirect"] = "401",
                 max_page_rows: int | None = None, clock: Callable[[], float] = time.time,
                 stats: Stats | None = None) -> None:
        self.creatio_model = creatio_model
        self.model = get_model(creatio_model)
        self.odata_path = "/" + odata_path.strip("/")
        self.clock = clock
        self.stats = stats if stats is not None else Stats()
        self.entity_columns = self.model.columns()
        self.store = Store(self.entity_columns)
        self.auth = Auth(seed.credentials, clock, session_lifetime_s=session_lifetime_s,
                         oauth_token_lifetime_s=oauth_token_lifetime_s,
                         expire_after_requests=expire_sessions_after_requests,
                         expired_response=expired_session_response)
        self.entities = Entities(self.store, clock, self.stats, self.odata_path,
                                 max_page_rows=max_page_rows,
                                 rules=SaveRules(self.model, save_scripts=save_scripts))
        self._lock = threading.RLock()
        now = timestamp_to_canonical(clock())
        for name, entity in self.model.entities.items():
            for row in entity.rows:
                self._insert(name, row, now)
        for entity, rows in seed.creatio.items():
            # Decision: seed entities outside this model (e.g. the other model's user object)
            # are skipped, so one seed can serve both models.
            if entity in self.store.tables:
                for row in rows:
                    self._insert(entity, row, now)

    @property
    def rows_evaluated(self) -> int:
        """How many rows filter predicates have been run on so far (index plans keep it low)."""
        return self.store.rows_evaluated

    def rows(self, entity: str) -> list[dict[str, Any]]:
        """The table's rows as OData would return them, in insertion order."""
        with self._lock:
            table = self.store.tables[entity]
            serialize = row_serializer(table)
            return [serialize(row) for row in table.rows.values()]

    def insert(self, entity: str, row: dict[str, Any]) -> dict[str, Any]:
        """Insert a row directly (test setup: no auth, no write count).

        Given ``CreatedOn``/``ModifiedOn`` are kept; missing ones are stamped with the clock. Like
        seed rows, it is a write straight into the database: required columns and save scripts
        are not checked, so a test can plant a state the API would refuse.

        Returns:
            The stored row as OData returns it.

        Raises:
            KeyError: unknown entity.
            ValueError: unknown column, a value of the wrong type or a duplicate ``Id``.
        """
        with self._lock:
            stored = self._insert(entity, row, timestamp_to_canonical(self.clock()))
            return row_serializer(self.store.tables[entity])(stored)

    def _insert(self, entity: str, row: dict[str, Any], now: str) -> dict[str, Any]:
        """Insert one wire-form row and return its stored form."""
        table = self.store.tables[entity]
        try:
            stored = build_row(table, row, now, honour_timestamps=True)
            table.insert(stored)
        except ODataError as exc:
            raise ValueError(f"{entity} row {row!r}: {exc.payload['error']['message']}") from None
        except DuplicateKey:
            raise ValueError(f"{entity} row {row!r}: duplicate Id") from None
        return stored

    def expire_sessions(self) -> None:
        """Kill every forms session and OAuth token now."""
        with self._lock:
            self.auth.expire_all()

    def route(self, request: Request) -> str:
        """The path with ids replaced by ``{id}``, for request counting."""
        path, odata = request.path, self.odata_path
        if path in LOGIN_PATHS or path == TOKEN_PATH:
            return path
        if path in (odata, odata + "/"):
            return odata + "/"
        if path.startswith(odata + "/"):
            rest = path[len(odata) + 1:]
            if rest in ("$metadata", "$batch"):
                return f"{odata}/{rest}"
            resource = parse_resource(rest)
            if resource is not None:
                suffix = {"entity": "({id})", "count": "/$count"}.get(resource.kind, "")
                return f"{odata}/{resource.entity}{suffix}"
        return path

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        with self._lock:
            try:
                return self._handle(request)
            except ODataError as exc:
                return exc.response()

    def _handle(self, request: Request) -> Response:
        path, method, odata = request.path, request.method, self.odata_path
        if path in LOGIN_PATHS:
            if method != "POST":
                raise method_not_allowed(method, "POST")
            return self.auth.login(request)
        if path == TOKEN_PATH:
            if method != "POST":
                raise method_not_allowed(method, "POST")
            return self.auth.issue_token(request)
        base = _base_url(request)
        if path != odata and not path.startswith(odata + "/"):
            raise routing_miss(f"{base}{path}", path.rsplit("/", 1)[-1])
        self.auth.authorize(request)
        rest = path[len(odata) + 1:]
        if rest == "":
            _only(method, "GET")
            return odata_json(200, service_document(self.entity_columns, f"{base}{odata}/$metadata"))
        if rest == "$metadata":
            _only(method, "GET")
            document = edmx(self.entity_columns,
                            {name: entity.lookups for name, entity in self.model.entities.items()},
                            {name: entity.required for name, entity in self.model.entities.items()})
            response = Response.text(200, document, "application/xml; charset=utf-8")
            response.headers.append(("OData-Version", "4.0"))
            return response
        if rest == "$batch":
            _only(method, "POST")
            return run_batch(self.entities, request, base)
        resource = parse_resource(rest)
        if resource is None:
            raise routing_miss(f"{base}{path}", rest)
        return self.entities.dispatch(method, resource, request.query, request.body, base)


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise method_not_allowed(method, allowed)


def _base_url(request: Request) -> str:
    """``scheme://host`` the client used, for absolute URLs in answers."""
    # Decision: the Host header decides (http unless a proxy says otherwise).
    scheme = request.header("x-forwarded-proto") or "http"
    return f"{scheme}://{request.header('host') or 'localhost'}"
