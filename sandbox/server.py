"""Serve a sandbox app over real loopback HTTP/1.1, with fault injection and request counting.

The app never sees sockets: the handler turns each HTTP request into ``sandbox.base.Request``,
asks the app for a ``Response`` and writes it back. Connections are kept alive (HTTP/1.1 with
Content-Length on every response) so that clients exercise their connection pools the way they
would against the real systems.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.base import Request, Response, Stats
from sandbox.faults import DROP, ERROR, THROTTLE, FaultInjector, Faults

# Headers the server computes itself; an app's own values would contradict the body we send.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}
# Methods the handler answers; anything else gets the standard library's 501.
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; with Nagle on, the second waits for the client's
        # delayed ACK (about 40 ms a request on Linux), which no real server adds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced: a test run would otherwise print a line per request."""

    def _serve(self) -> None:
        stats = self.server.owner.stats
        stats.enter()
        try:
            self._serve_counted()
        finally:
            stats.leave()

    def _serve_counted(self) -> None:
        owner = self.server.owner
        body = self._read_body()
        request = self._build_request(body)
        route = owner.route_of(request)
        decision = owner.injector.decide(request.method, request.path)
        if decision.latency_s > 0:
            time.sleep(decision.latency_s)
        if decision.kind == DROP:
            # The body was read first so that closing does not reset the connection while the
            # client is still sending; the client sees a clean close with no response.
            owner.stats.record_request(request.method, route, 0)
            self.close_connection = True
            return
        if decision.kind == ERROR:
            response = owner.fault_response(decision.status)
        elif decision.kind == THROTTLE:
            response = owner.fault_response(429, [("Retry-After", owner.faults.retry_after_value())])
        else:
            response = owner.call_app(request)
            tamper = owner.tamper
            if tamper is not None:
                response = tamper(request, response) or response
        owner.stats.record_request(request.method, route, response.status)
        self._write(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers end with an empty line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _build_request(self, body: bytes) -> Request:
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name in self.headers.keys():
            key = name.lower()
            if key not in headers:
                headers[key] = ", ".join(self.headers.get_all(name) or [])
        return Request(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            raw_query=split.query,
        )

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: "SandboxServer") -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.opened = 0
        self.closing = False
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conns_lock:
            if not add:
                self._conns.discard(conn)
                return
            self._conns.add(conn)
            self.opened += 1
            closing = self.closing
        if closing:
            # Accepted just before stop(): end it like the others rather than let it live on.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection so its handler thread ends now."""
        with self._conns_lock:
            self.closing = True
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (or stop() cutting a connection) is normal here, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """One app served on loopback.

    Attributes:
        app: The app (``handle``, ``route`` and ``stats``).
        url: ``http://<host>:<port>`` once started.
        stats: The app's request and write counters; every request is recorded, faulted ones
            included, a dropped connection with status 0.
        faults: The current fault settings; assign a new ``Faults`` at run time to change them.
        tamper: A switch for tests of odd and hostile servers: ``tamper(request, response)`` sees
            every answer of the app and may return another one (None keeps the app's). It can
            echo the request's headers into an error, answer a list page with ``"next": "false"``,
            repeat a page, or send an error envelope with status 200. Faults come first: a
            faulted request never reaches the app or the switch.
    """

    def __init__(self, app: Any, *, faults: Faults | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.injector = FaultInjector(faults)
        self.tamper: Callable[[Request, Response], Response | None] | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._opened_before_stop = 0

    @property
    def stats(self) -> Stats:
        return self.app.stats

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        self.injector.replace(value or Faults())

    @property
    def fault_counts(self) -> dict[str, int]:
        """How many requests got each fault decision (``pass``, ``error``, ``429``, ``drop``,
        ``latency``)."""
        return self.injector.snapshot()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start; with keep-alive, far fewer than requests."""
        return self._httpd.opened if self._httpd is not None else self._opened_before_stop

    @property
    def url(self) -> str:
        if self.port == 0:
            raise RuntimeError("server not started: its port is not known yet")
        return f"http://{self.host}:{self.port}"

    def start(self) -> "SandboxServer":
        """Bind and serve in a daemon thread; returns self. ``port=0`` picks a free port."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        # A short poll interval makes stop() return promptly.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        self._opened_before_stop = httpd.opened
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def route_of(self, request: Request) -> str:
        """The app's route name for counting; the raw path if the app cannot name it."""
        try:
            return self.app.route(request)
        except Exception:
            return request.path

    def fault_response(self, status: int, headers: list[tuple[str, str]] | None = None) -> Response:
        """The answer of an injected fault: the app's own error shape when it has one
        (``app.fault_response``), else a plain JSON error."""
        shape = getattr(self.app, "fault_response", None)
        if shape is not None:
            return shape(status, headers)
        reason = "too many requests" if status == 429 else "sandbox fault"
        return Response.json(status, {"error": reason, "status": status}, headers)

    def call_app(self, request: Request) -> Response:
        """The app's answer; an exception becomes a 500 with a JSON body and serving goes on."""
        try:
            response = self.app.handle(request)
            if not isinstance(response, Response):
                raise TypeError(f"app returned {type(response).__name__}, not Response")
            return response
        except Exception as exc:
            return Response.json(500, {
                "error": "internal server error",
                "detail": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(limit=5).splitlines()[-3:],
            })
