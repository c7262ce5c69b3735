"""The one request path both clients share: session, timeouts, auth, re-login, retries, counters.

Each client builds one ``HttpClient`` and sends every call through ``HttpClient.request``. One
attempt is: attach auth, send (redirects are never followed: a redirect to a login page must not
be parsed as data), re-login once if the auth says the session died, map the status to an error
of ``connector.errors``. ``connector.retry.call_with_retry`` repeats attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urljoin

import requests

from . import errors
from .errors import redact
from .retry import RETRY_STATUSES, RetryPolicy, call_with_retry, parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = "webitel-creatio-sync/0.1"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ErrorInfo:
    """What a server said about a failure, parsed by the system's own ``parse_error``."""

    message: str = ""
    error_id: str = ""
    request_id: str = ""
    conflict_field: str | None = None  # set when the body says "this is a uniqueness clash"


class Auth(Protocol):
    """How a client authenticates; one object per system, attached to its ``HttpClient``."""

    def apply(self, http: "HttpClient", headers: dict[str, str]) -> None:
        """Add credentials to an outgoing request, logging in first if there is no session."""

    def needs_relogin(self, response: requests.Response) -> bool:
        """Whether ``response`` says the session died and one fresh login may cure it."""

    def login(self, http: "HttpClient") -> None:
        """Log in now (through ``http.request(..., authenticated=False)``)."""

    def secrets(self) -> list[str]:
        """Secret values in force, to scrub from any text that leaves the client."""


class RequestCounter:
    """Thread-safe count of requests by (method, route, status); status 0 is a network failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def add(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)

    def total(self, method: str | None = None, route: str | None = None) -> int:
        """Requests so far, optionally of one method and/or one route."""
        with self._lock:
            return sum(n for (m, r, _), n in self._counts.items()
                       if (method is None or m == method) and (route is None or r == route))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class HttpClient:
    """A ``requests.Session`` with a base URL, timeouts, TLS verification, auth and retries.

    Args:
        system: "webitel" or "creatio", for errors and counters.
        base_url: what relative paths are joined to.
        timeout_s: read timeout; the connect timeout is the smaller of this and 10 s.
        verify: TLS verification (``True``, ``False`` or a CA bundle path).
        retry: the retry bounds.
        parse_error: turns an error response into ``ErrorInfo``.
        auth: the system's auth, or None.
        session: a ready session (proxies, adapters), or None for a new one.
        sleep: injected into the retry policy so tests do not wait.
    """

    def __init__(self, *, system: str, base_url: str, timeout_s: float = 30.0, verify: bool | str = True,
                 retry: RetryPolicy | None = None,
                 parse_error: Callable[[requests.Response], ErrorInfo] | None = None,
                 auth: Auth | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = (min(10.0, timeout_s), timeout_s)
        self.retry = retry or RetryPolicy()
        self.parse_error = parse_error or (lambda response: ErrorInfo(message=response.reason or ""))
        self.auth = auth
        self.session = session or requests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = USER_AGENT
        self.sleep = sleep
        self.counter = RequestCounter()
        self._login_lock = threading.Lock()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (a path relative to the base, or an absolute URL)."""
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def request(self, method: str, path: str, *, route: str | None = None,
                params: Mapping[str, Any] | list[tuple[str, Any]] | None = None, json: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None,
                idempotent: bool | None = None, authenticated: bool = True,
                secrets: tuple[str, ...] = ()) -> requests.Response:
        """Send one call with retries; return the response or raise a ``ConnectorError``.

        Args:
            method: the HTTP method.
            path: relative to the base URL (no query string: pass ``params``).
            route: the path template for counters and logs (default ``path``).
            params: query parameters; a list of pairs keeps repeated names.
            json: a JSON body. data: a form body.
            headers: extra headers.
            idempotent: whether a repeat is harmless; default by method (POST is not).
            authenticated: False for the login call itself.
            secrets: values sent in this request that must be scrubbed from any error (a licence key).
        """
        method = method.upper()
        route = route or path
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS

        def attempt() -> requests.Response:
            relogged = False
            while True:
                response = self._send(method, path, route, params, json, data, headers, authenticated)
                if authenticated and self.auth and not relogged and self.auth.needs_relogin(response):
                    relogged = True
                    log.info("%s session expired; logging in again", self.system)
                    self.login()
                    continue
                self.raise_for_status(response, method, path, secrets=secrets)
                return response

        return call_with_retry(attempt, policy=self.retry, idempotent=idempotent, sleep=self.sleep,
                               describe=f"{self.system} {method} {route}")

    def login(self) -> None:
        """Log in through the auth (serialised, so parallel callers do not log in twice at once)."""
        if self.auth is None:
            return
        with self._login_lock:
            self.auth.login(self)

    def _send(self, method: str, path: str, route: str, params: Any, json: Any, data: Any,
              headers: Mapping[str, str] | None, authenticated: bool) -> requests.Response:
        send_headers = dict(headers or {})
        if authenticated and self.auth is not None:
            self.auth.apply(self, send_headers)
        try:
            response = self.session.request(method, self.url(path), params=params, json=json, data=data,
                                            headers=send_headers, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            self.counter.add(method, route, 0)
            raise self._network_error(exc, method, path) from None
        self.counter.add(method, route, response.status_code)
        return response

    def _network_error(self, exc: requests.RequestException, method: str, path: str) -> errors.TransientError:
        # A refused or timed-out *connect* never reached the server; anything later may have.
        never_sent = isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc))
        kind = type(exc).__name__
        return errors.TransientError(f"network error ({kind})", maybe_processed=not never_sent,
                                     system=self.system, method=method, path=_path_only(self.url(path)))

    def raise_for_status(self, response: requests.Response, method: str, path: str, *,
                         secrets: tuple[str, ...] = ()) -> None:
        """Raise the ``ConnectorError`` that ``response`` stands for; return on success."""
        status = response.status_code
        if 200 <= status < 300:
            return
        info = self.parse_error(response) if status >= 400 else ErrorInfo(
            message=f"unexpected redirect to {_path_only(response.headers.get('Location', '?'))}")
        secrets = [*(self.auth.secrets() if self.auth else []), *secrets]
        fields = dict(system=self.system, method=method, path=_path_only(self.url(path)), status=status,
                      error_id=info.error_id, request_id=info.request_id)
        message = redact(info.message or response.reason or f"HTTP {status}", secrets)
        if info.conflict_field is not None:
            raise errors.Conflict(message, field=info.conflict_field, **fields)
        if status == 429:
            raise errors.RateLimited(
                message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **fields
            )
        if status in RETRY_STATUSES:
            raise errors.TransientError(
                message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **fields
            )
        error_class = {
            401: errors.AuthError,
            403: errors.PermissionDenied,
            404: errors.NotFound,
            409: errors.Conflict,
        }.get(status)
        if error_class is None:
            error_class = (
                errors.BadRequest
                if 400 <= status < 500
                else (errors.BadResponse if status < 400 else errors.ApiError)
            )
        raise error_class(message, **fields)


def json_body(response: requests.Response, *, system: str) -> Any:
    """The response body as JSON, or ``BadResponse`` (e.g. an HTML login page) naming the path."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise errors.BadResponse(
            f"expected JSON, got {kind}",
            system=system,
            method=response.request.method if response.request else "",
            path=_path_only(response.url or ""),
            status=response.status_code,
        ) from None


def _path_only(url: str) -> str:
    """The path of a URL without scheme, host or query string (queries may hold personal data)."""
    if "://" in url:
        url = "/" + url.split("://", 1)[1].partition("/")[2]
    return url.split("?", 1)[0]
