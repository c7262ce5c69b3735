"""The one request path both clients share: session, timeouts, auth, re-login, retries, counters.

Each client builds one ``HttpClient`` and sends every call through ``HttpClient.request``. One
attempt is: attach auth, send (redirects are never followed: a redirect to a login page must not
be parsed as data), read the whole body within the request's deadline and size cap, re-login once
if the auth says the session died, map the status to an error of ``connector.errors``.
``connector.retry.call_with_retry`` repeats attempts.

Limits of one attempt, whatever the server does:

- **Deadline**: connect, headers and the whole body within ``timeout_s`` (requests' own read
  timeout applies to each socket read, so a server sending a byte a second would never time out).
  A watchdog thread shuts the request's socket down when its time is up; the attempt fails as a
  ``TransientError``.
- **Size**: the body is streamed and refused past ``max_response_bytes`` (a ``BadResponse``, never
  retried: the same request would get the same answer). An error body is only cut, at
  ``ERROR_BODY_MAX``: its message is a few hundred characters anyway.
- **TLS**: ``verify`` is passed with every request, so ``verify_tls = false`` and ``ca_file`` win
  over ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (requests lets the environment override a
  session's ``verify``).
- **Concurrency**: an attempt is sent once the client's limiter (``connector.pool.Limiter``) has a
  slot for it: at most ``max_concurrency`` in flight from any number of threads, fewer while the
  server answers 429 or 503; a login waits for a slot like any request.
- **Secrets**: everything the session holds (the auth's password and tokens, every cookie value it
  got) is a secret; error bodies are scrubbed of them before a message is read from them, and the
  message is cut to ``MAX_MESSAGE`` characters before it becomes part of an error.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from . import errors
from . import secrets as secrets_module
from .errors import cut, redact
from .pool import THROTTLE_STATUSES, Limiter
from .retry import RETRY_STATUSES, RetryPolicy, call_with_retry, parse_retry_after
from .settings import DEFAULT_MAX_CONCURRENCY

log = logging.getLogger(__name__)

USER_AGENT = "webitel-creatio-sync/0.1"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
# Decision: an error body is read up to 64 KiB and cut there: Creatio's nested exceptions with
# their stack traces take a few KiB, the message taken from the body is cut to MAX_MESSAGE
# characters anyway, and scrubbing secrets in every encoding costs about 60 ms per 64 KiB.
ERROR_BODY_MAX = 64 * 2**10
# Decision: messages and ids a server wrote are cut to these lengths before they become part of
# an error (so before any log line, report or state row holds them).
MAX_MESSAGE = 300  # the default of errors.cut
MAX_ID = 100
CHUNK = 64 * 2**10
# Decision: a client keeps the last 64 secret values it held (cookies of earlier logins, renewed
# tokens, licence keys it sent) for scrubbing; a worker's client lives for days and logs in again
# and again, and a value older than that belongs to a session long expired.
HELD_MAX = 64
# Decision: Creatio's UserName cookie holds the login name, which the configuration keeps in clear
# (it is no credential); scrubbing it would blank the user name from every line.
NOT_SECRET_COOKIES = frozenset({"UserName"})


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
        """Secret values in force (and renewed ones it held), to scrub from any text that leaves."""


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


# ---- the deadline of one request ----------------------------------------------------------------


def _shutdown(sock: Any) -> None:
    try:
        # The plain socket's shutdown, also under a TLS socket: it wakes a blocked read without
        # touching the TLS state another thread is using.
        if isinstance(sock, socket.socket):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


class _Deadline:
    """The end of one request's time; past it, every socket the request used is shut down."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.done = False
        self.cut = False  # a socket was shut down: whatever was read may be incomplete
        self._sockets: list[Any] = []
        self._lock = threading.Lock()

    def attach(self, sock: Any) -> None:
        with self._lock:
            if self.done or sock is None:
                return
            self._sockets.append(sock)
            if time.monotonic() >= self.at:
                self.cut = True
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return
            for sock in self._sockets:
                self.cut = True
                _shutdown(sock)

    def finish(self) -> bool:
        """Stop watching; whether the deadline cut the request."""
        with self._lock:
            self.done = True
            self._sockets.clear()
            return self.cut


class _Reaper:
    """One daemon thread that expires the deadlines of all requests in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._compact_at = 1024

    def watch(self, deadline: _Deadline) -> None:
        with self._cond:
            if len(self._heap) >= self._compact_at:  # finished deadlines wait for their time otherwise
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._compact_at = max(1024, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wcsync-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    heapq.heappop(self._heap)[2].expire()
                self._cond.wait(self._heap[0][0] - now if self._heap else None)

    def reset_after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the thread did not survive the fork


_REAPER = _Reaper()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_REAPER.reset_after_fork)
_current = threading.local()  # the deadline of the request this thread is sending


def _attach(sock: Any) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(sock)


class _Watched:
    """Connection mix-in: every socket a request uses joins the current request's deadline."""

    sock: Any

    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = super()._new_conn()  # type: ignore[misc]
        _attach(sock)  # before a TLS handshake, which a slow server could drag out too
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection
            _attach(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter over connections whose sockets the request deadline can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):  # type: ignore[no-untyped-def]
        fresh = proxy not in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # Decision: SOCKS proxies keep urllib3's own connections; there, the deadline is checked
        # between chunks of the body only.
        if fresh and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


# ---- the client ---------------------------------------------------------------------------------


class HttpClient:
    """A ``requests.Session`` with a base URL, a deadline, a size cap, TLS verification, auth and
    retries.

    Args:
        system: "webitel" or "creatio", for errors and counters.
        base_url: what relative paths are joined to.
        timeout_s: the deadline of one attempt: connect, headers and the whole body. The connect
            timeout is the smaller of this and 10 s.
        verify: TLS verification (``True``, ``False`` or a CA bundle path), passed with every request.
        retry: the retry bounds.
        parse_error: turns an error response into ``ErrorInfo``.
        auth: the system's auth, or None.
        session: a ready session (proxies, adapters), or None for a new one. Its default adapters
            are replaced by ``DeadlineAdapter``; an adapter of the caller's own is kept, and the
            deadline is then checked between chunks of the body only.
        sleep: injected into the retry policy (and the limiter's ``Retry-After`` hold) so tests do
            not wait.
        max_response_bytes: the largest body accepted.
        max_concurrency: the most requests in flight at once, from any number of threads
            (``connector.pool.Limiter``: halved on 429 or 503, grown back one step per answer).
    """

    def __init__(self, *, system: str, base_url: str, timeout_s: float = 30.0, verify: bool | str = True,
                 retry: RetryPolicy | None = None,
                 parse_error: Callable[[requests.Response], ErrorInfo] | None = None,
                 auth: Auth | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self.timeout = (min(10.0, timeout_s), timeout_s)
        # Passed with every request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a
        # session's verify, never a request's False or CA path. Decision: plain True (verify_tls on,
        # no ca_file) still takes such a bundle, as requests does: it names the host's trust store
        # (a corporate CA), and a wrong one fails loudly rather than turning verification off.
        self.verify = verify
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        self.parse_error = parse_error or (lambda response: ErrorInfo(message=response.reason or ""))
        self.auth = auth
        self.session = session or requests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = USER_AGENT
        # A kept-alive connection for each request in flight: urllib3 keeps 10 by default and
        # closes any beyond, which would cost a TCP (and TLS) handshake a request past ten.
        adapter = DeadlineAdapter(pool_maxsize=max(10, max_concurrency))
        for prefix in ("https://", "http://"):
            if type(self.session.adapters.get(prefix)) is HTTPAdapter:
                self.session.mount(prefix, adapter)
        self.sleep = sleep
        self.counter = RequestCounter()
        # A server's Retry-After holds the other requests back no longer than a retry waits for it.
        self.limiter = Limiter(max_concurrency, sleep=sleep, max_pause_s=self.retry.max_wait_s, name=system)
        self._login_lock = threading.Lock()
        self._logins = 0  # logins so far: a request refused for a session older than the last one
        # only needs sending again, not a login of its own
        self._held: OrderedDict[str, None] = OrderedDict()
        self._held_lock = threading.Lock()
        secrets_module.register(self)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (a path relative to the base, or an absolute URL)."""
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    # ---- secrets --------------------------------------------------------------------------------

    def secrets(self) -> list[str]:
        """Every secret this client holds: the auth's, each cookie value its session got, and the
        values it sent as secrets (a licence key), the last ``HELD_MAX`` of them."""
        with self._held_lock:
            held = list(self._held)
        return [*(self.auth.secrets() if self.auth else []), *held]

    def scrub(self, text: str, extra: Iterable[str] = ()) -> str:
        """``text`` without any secret this client holds (or of ``extra``), in any encoding."""
        return redact(text, [*self.secrets(), *extra])

    def remember(self, values: Iterable[str]) -> None:
        """Hold ``values`` as secrets of this client (an auth calls this for what it learns)."""
        with self._held_lock:
            for value in values:
                if value:
                    self._held[value] = None
                    self._held.move_to_end(value)
            while len(self._held) > HELD_MAX:
                self._held.popitem(last=False)

    def _learn_cookies(self) -> None:
        jar = self.session.cookies
        lock = getattr(jar, "_cookies_lock", None) or contextlib.nullcontext()
        with lock:
            values = [c.value for c in jar if c.value and c.name not in NOT_SECRET_COOKIES]
        with self._held_lock:
            new = [v for v in values if v not in self._held]
        if new:
            self.remember(new)

    # ---- requests -------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, route: str | None = None,
                params: Mapping[str, Any] | list[tuple[str, Any]] | None = None, json: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None,
                idempotent: bool | None = None, authenticated: bool = True,
                secrets: tuple[str, ...] = ()) -> requests.Response:
        """Send one call with retries; return the response (body read) or raise a ``ConnectorError``.

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
        self.remember(secrets)

        def attempt() -> requests.Response:
            relogged = False
            while True:
                response = self._send(method, path, route, params, json, data, headers, authenticated)
                if authenticated and self.auth and not relogged and self.auth.needs_relogin(response):
                    relogged = True
                    self._relogin(_current.logins)
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
            self._logins += 1

    def _relogin(self, seen: int) -> None:
        """Log in again for a request refused after ``seen`` logins, unless another thread already
        did since: requests in flight when a session dies are all refused, and one login serves
        them all (each would otherwise end the session the one before it just opened)."""
        if self.auth is None:
            return
        with self._login_lock:
            if self._logins != seen:
                return
            log.info("%s session expired; logging in again", self.system)
            self.auth.login(self)
            self._logins += 1

    def _send(self, method: str, path: str, route: str, params: Any, json: Any, data: Any,
              headers: Mapping[str, str] | None, authenticated: bool) -> requests.Response:
        send_headers = dict(headers or {})
        if authenticated and self.auth is not None:
            self.auth.apply(self, send_headers)  # may log in: a request of its own, with its own deadline
        _current.logins = self._logins
        # The slot is taken after the auth is applied, so a login (a request of its own, which
        # takes a slot too) is never made by a thread holding one: no deadlock at a limit of 1.
        epoch = self.limiter.acquire()
        deadline = _Deadline(self.timeout_s)
        _REAPER.watch(deadline)
        outer = getattr(_current, "deadline", None)
        _current.deadline = deadline
        response: requests.Response | None = None
        answered: requests.Response | None = None
        was_cut = False
        try:
            try:
                response = self.session.request(
                    method, self.url(path), params=params, json=json, data=data, headers=send_headers,
                    timeout=self.timeout, allow_redirects=False, stream=True, verify=self.verify)
                self._learn_cookies()
                self._read_body(response, deadline, method, path)
                answered = response
            finally:
                _current.deadline = outer
                was_cut = deadline.finish()
                self._release(epoch, None if was_cut else answered)
        except requests.RequestException as exc:
            self.counter.add(method, route, 0)
            if response is not None:
                response.close()
            if was_cut:
                raise self._deadline_error(method, path) from None
            raise self._network_error(exc, method, path) from None
        except errors.ConnectorError:
            self.counter.add(method, route, 0 if response is None else response.status_code)
            raise
        except OSError as exc:
            # requests reads a CA bundle only when it connects: an unreadable one ends up here.
            # Decision: a configuration error (exit 2), not a network error to retry.
            self.counter.add(method, route, 0)
            if "certificate" not in str(exc).lower():
                raise self._network_error(exc, method, path) from None
            raise errors.ConfigError(f"{self.system}: the TLS CA bundle cannot be used: {exc}") from None
        if was_cut:  # the watchdog ended the body early: what was read may look complete but is not
            self.counter.add(method, route, 0)
            response.close()
            raise self._deadline_error(method, path)
        self.counter.add(method, route, response.status_code)
        return response

    def _release(self, epoch: int, response: requests.Response | None) -> None:
        """The slot back to the limiter, with the answer's status (None: no complete answer)."""
        if response is None:
            self.limiter.release(epoch)
            return
        status = response.status_code
        retry_after = (parse_retry_after(response.headers.get("Retry-After"))
                       if status in THROTTLE_STATUSES else None)
        self.limiter.release(epoch, status, retry_after)

    def _read_body(self, response: requests.Response, deadline: _Deadline, method: str, path: str) -> None:
        """Read the body into ``response.content``, within the deadline and the size cap."""
        error = response.status_code >= 400
        limit = min(ERROR_BODY_MAX, self.max_response_bytes) if error else self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if not error and method != "HEAD" and declared.strip().isdigit() and int(declared) > limit:
            response.close()
            raise self._too_large(method, path, response.status_code)
        parts: list[bytes] = []
        size = 0
        # Decision: the cap counts the decoded bytes: a compressed body is measured as it expands.
        for chunk in response.iter_content(CHUNK):
            if size + len(chunk) > limit:
                response.close()  # the rest is never read; the connection is not reused
                if not error:
                    raise self._too_large(method, path, response.status_code)
                parts.append(chunk[: limit - size])
                break
            parts.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline.at:  # an adapter of the caller's own: no watchdog there
                response.close()
                raise self._deadline_error(method, path)
        response._content = b"".join(parts)
        response._content_consumed = True

    def _too_large(self, method: str, path: str, status: int) -> errors.BadResponse:
        limit = self.max_response_bytes / 2**20
        return errors.BadResponse(
            f"the answer is larger than {limit:g} MB (max_response_mb); refused", system=self.system,
            method=method, path=_path_only(self.url(path)), status=status)

    def _deadline_error(self, method: str, path: str) -> errors.TransientError:
        # Decision: transient, like requests' own read timeout: a slow server may answer the next
        # attempt in time; a read is retried, a create only when it carries its own id.
        return errors.TransientError(
            f"no complete answer within {self.timeout_s:g} s (timeout_s)", maybe_processed=True,
            system=self.system, method=method, path=_path_only(self.url(path)))

    def _network_error(self, exc: OSError, method: str, path: str) -> errors.TransientError:
        # A refused or timed-out *connect* never reached the server; anything later may have.
        never_sent = isinstance(exc, requests.ConnectTimeout) or (
            isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc))
        reason, text = _unreachable(exc, self.base_url, self.system)
        fields = dict(system=self.system, method=method, path=_path_only(self.url(path)))
        if reason == "dropped":
            return errors.TransientError(text, maybe_processed=not never_sent, **fields)
        return errors.Unreachable(text, reason=reason, maybe_processed=not never_sent, **fields)

    def raise_for_status(self, response: requests.Response, method: str, path: str, *,
                         secrets: tuple[str, ...] = ()) -> None:
        """Raise the ``ConnectorError`` that ``response`` stands for; return on success.

        The body is scrubbed of every secret before ``parse_error`` reads it, so that a message cut
        to ``MAX_MESSAGE`` characters never ends in the first half of one.
        """
        status = response.status_code
        if 200 <= status < 300:
            return
        held = [*self.secrets(), *secrets]
        clean = _scrubbed(response, held)
        info = self.parse_error(clean) if status >= 400 else ErrorInfo(
            message=f"unexpected redirect to {_path_only(clean.headers.get('Location', '?'))}")
        fields = dict(system=self.system, method=method, path=_path_only(self.url(path)), status=status,
                      error_id=cut(redact(info.error_id, held), MAX_ID),
                      request_id=cut(redact(info.request_id, held), MAX_ID))
        message = cut(redact(info.message or clean.reason or f"HTTP {status}", held))
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


def _scrubbed(response: requests.Response, secrets: list[str]) -> requests.Response:
    """A copy of an error response whose body, reason and header values hold no secret."""
    clean = requests.Response()
    clean.status_code = response.status_code
    clean.url = response.url
    clean.request = response.request
    clean.reason = redact(response.reason or "", secrets)
    clean.headers = CaseInsensitiveDict({k: redact(v, secrets) for k, v in response.headers.items()})
    text = response.text if response.content else ""
    clean._content = redact(text, secrets).encode("utf-8")
    clean.encoding = "utf-8"
    return clean


def json_body(response: requests.Response, *, system: str) -> Any:
    """The response body as JSON, or ``BadResponse`` (e.g. an HTML login page) naming the path."""
    try:
        return response.json()
    except ValueError:
        kind = cut(response.headers.get("Content-Type", "no content type"), 80)
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


def _unreachable(exc: OSError, base_url: str, system: str) -> tuple[str, str]:
    """How a connection failed, named for an operator: (reason, message)."""
    host = urlsplit(base_url).netloc or base_url
    chain = " ".join(repr(e) for e in _causes(exc)).lower()
    if isinstance(exc, requests.exceptions.SSLError) or "sslerror" in chain or "certificate" in chain:
        return "tls", f"TLS failure talking to {host}: {_first_line(exc)} (check verify_tls and ca_file)"
    if any(m in chain for m in ("connection refused", "errno 111", "winerror 10061")):
        return "refused", f"connection refused by {host}: nothing listens there (check [{system}] url)"
    if any(m in chain for m in ("nameresolution", "name or service not known", "getaddrinfo failed",
                                "nodename nor servname", "temporary failure in name resolution")):
        return "dns", f"host name of {host} not found (DNS); check [{system}] url"
    if isinstance(exc, requests.ConnectTimeout) or "connecttimeout" in chain:
        return "timeout", f"no connection to {host} in time (a firewall dropping packets?)"
    return "dropped", f"network error ({type(exc).__name__}): the connection to {host} broke"


def _causes(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        first = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = exc.__cause__ or exc.__context__ or first
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            out.append(reason)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
