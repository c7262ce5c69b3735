"""What every sandbox app shares: request and response values, and per-server statistics.

An app is any object with ``handle(request: Request) -> Response``. It never touches sockets;
``sandbox.server.SandboxServer`` serves it over real loopback HTTP, injecting faults and counting
requests. Apps are tested directly through ``handle`` and end to end through the server.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Request:
    """One HTTP request as an app sees it.

    ``path`` is percent-decoded and has no query string. ``query`` maps each name to all its
    values in order (repeated parameters such as ``fields=id&fields=name``). ``raw_query`` is the
    undecoded query string. Header names in ``headers`` are lower-case.
    """

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw_query: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of a repeated query parameter."""
        return list(self.query.get(name, []))

    @property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        raw = self.header("cookie")
        if raw:
            try:
                jar.load(raw)
            except Exception:  # a malformed Cookie header reads as no cookies
                return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def json(self) -> Any:
        """The body decoded as JSON; raises ``ValueError`` on a malformed body."""
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    """One HTTP response. ``headers`` is a list so that several Set-Cookie lines can be sent."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> "Response":
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, [("Content-Type", "application/json; charset=utf-8"), *(headers or [])])

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> "Response":
        return cls(status, text.encode("utf-8"), [("Content-Type", content_type)])

    @classmethod
    def empty(cls, status: int = 204, headers: list[tuple[str, str]] | None = None) -> "Response":
        return cls(status, b"", list(headers or []))


class Stats:
    """Thread-safe request and write counters of one server, plus a hook after each write.

    The server records every request as ``(method, route, status)``; ``route`` is the path with
    ids replaced by placeholders (the app names it through ``app.route(request)``). Apps call ``record_write``
    once per record they create, change or delete (each sub-request of a ``$batch`` counts), so a
    test can stop the client after the K-th write through ``on_write``. ``peak_in_flight`` is the
    most requests the server was serving at once (from the request read to the answer written,
    an injected latency included): a client's concurrency seen from the server, not from timing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.writes = 0
        self.on_write: Callable[[int], None] | None = None
        self.in_flight = 0
        self.peak_in_flight = 0

    def enter(self) -> None:
        """A request is being served."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        """A request has been answered (or dropped)."""
        with self._lock:
            self.in_flight -= 1

    def record_request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1

    def record_write(self) -> None:
        with self._lock:
            self.writes += 1
            count = self.writes
        hook = self.on_write
        if hook is not None:
            hook(count)

    def total(self, method: str | None = None, route_prefix: str = "") -> int:
        """Requests counted so far, optionally only one method and routes under a prefix."""
        with self._lock:
            return sum(
                n
                for (m, route, _status), n in self.requests.items()
                if (method is None or m == method) and route.startswith(route_prefix)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.writes = 0
            self.peak_in_flight = self.in_flight
