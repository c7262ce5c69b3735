"""A small loopback HTTP server that misbehaves on purpose, for the tests of hostile servers.

``HostileServer(handler)`` serves ``handler(seen) -> Reply`` over real sockets (HTTP/1.1, keep-alive,
optionally TLS). A ``Reply`` can do what the sandbox's whole-body answers cannot: trickle its
status line, headers and body a piece at a time, send a body of any size (or no end at all) as it
is generated, announce a length it never sends, or end the body only by closing the connection.
The server records every request (``requests``) and counts the body bytes it managed to send
(``body_bytes``), so a test can tell how far a client let it go.

``echo`` renders a request the way a careless server puts it into an error message, and
``make_certificate`` a self-signed certificate for ``127.0.0.1`` (with the ``openssl`` command).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

# Headers a careless server's echo shows first: the ones carrying credentials.
SENSITIVE = ("cookie", "bpmcsrf", "authorization", "x-webitel-access")


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    """What the server sends back.

    Attributes:
        status: the status code. reason: the reason phrase (default: the standard one).
        body: bytes, text, a JSON value (dict or list), or an iterable of byte pieces sent as they
            come (no Content-Length unless ``length`` is given: the body then ends when the server
            closes the connection).
        headers: extra headers.
        every_s: a pause before each piece of an iterable body, and before each byte of the
            status line and headers when ``trickle_head`` is set.
        length: the Content-Length announced for an iterable body.
    """

    status: int = 200
    body: Any = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    every_s: float = 0.0
    length: int | None = None
    trickle_head: bool = False


def echo(seen: Seen, form: str = "raw") -> str:
    """The request as a careless server echoes it, credentials first: ``raw`` (the lines as
    received), ``json`` (headers and body as one JSON text), ``base64``, ``base64url`` or ``url``."""
    order = sorted(seen.headers, key=lambda name: (name not in SENSITIVE, name))
    lines = [f"{seen.method} {seen.path}"] + [f"{name}: {seen.headers[name]}" for name in order]
    text = "\r\n".join(lines) + "\r\n\r\n" + seen.body.decode("utf-8", "replace")
    if form == "raw":
        return text
    if form == "json":
        return json.dumps({"headers": {n: seen.headers[n] for n in order},
                           "body": seen.body.decode("utf-8", "replace")})
    if form == "base64":
        return base64.b64encode(text.encode()).decode()
    if form == "base64url":
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    if form == "url":
        return quote(text, safe="")
    raise ValueError(f"unknown echo form {form!r}")


ECHO_FORMS = ("raw", "json", "base64", "base64url", "url")


def forms_of(secret: str) -> list[str]:
    """How text may carry ``secret``: as is, JSON-escaped, URL-encoded, base64 (standard and
    URL-safe), and each line of a multi-line one the same ways."""
    lines = [line.strip() for line in secret.splitlines()]
    parts = [secret] + ([line for line in lines if any(c.isalnum() for c in line)] if len(lines) > 1 else [])
    out: set[str] = set()
    for part in parts:
        data = part.encode()
        out |= {part, json.dumps(part)[1:-1], json.dumps(part, ensure_ascii=False)[1:-1],
                quote(part, safe=""), quote_plus(part), base64.b64encode(data).decode().rstrip("="),
                base64.urlsafe_b64encode(data).decode().rstrip("=")}
    return sorted(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        seen = Seen(self.command, split.path, parse_qs(split.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()}, body)
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(seen)
        reply = owner.handler(seen)
        try:
            self._write(reply)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _write(self, reply: Reply) -> None:
        owner = self.server.owner
        body = reply.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = [("Content-Type", "application/json; charset=utf-8")]
        elif isinstance(body, str):
            body = body.encode()
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        else:
            headers = []
        headers += reply.headers
        whole = isinstance(body, (bytes, bytearray))
        if whole:
            headers.append(("Content-Length", str(len(body))))
        elif reply.length is not None:
            headers.append(("Content-Length", str(reply.length)))
        else:
            headers.append(("Connection", "close"))
            self.close_connection = True
        reason = reply.reason if reply.reason is not None else self.responses.get(reply.status, ("",))[0]
        head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        if reply.trickle_head:
            for byte in head.encode("latin-1"):
                if owner.stopping.wait(reply.every_s):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif whole:  # one write: a head and a body sent apart wait on delayed ACKs (40 ms a request)
            self.wfile.write(head.encode("latin-1") + bytes(body))
            self.wfile.flush()
            with owner.lock:
                owner.body_bytes += len(body)
            return
        else:
            self.wfile.write(head.encode("latin-1"))
        pieces: Iterable[bytes] = [bytes(body)] if whole else body
        for piece in pieces:
            if not whole and reply.every_s and owner.stopping.wait(reply.every_s):
                return
            self.wfile.write(piece)
            self.wfile.flush()
            with owner.lock:
                owner.body_bytes += len(piece)
        if reply.length is not None and not whole:
            self.close_connection = True  # the announced length may not have come


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "HostileServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):  # type: ignore[no-untyped-def]
        conn, address = super().get_request()
        with self.owner.lock:
            self.owner.connections.append(conn)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is what these tests do; nothing to report."""


class HostileServer:
    """A loopback server answering every request with ``handler(seen)``.

    Args:
        handler: the answer to each request.
        tls: (certificate file, key file) to serve HTTPS, or None.
    """

    def __init__(self, handler: Callable[[Seen], Reply], *, tls: tuple[Path, Path] | None = None) -> None:
        self.handler = handler
        self.lock = threading.Lock()
        self.requests: list[Seen] = []
        self.connections: list[socket.socket] = []
        self.body_bytes = 0
        self.stopping = threading.Event()
        self._httpd = _Server(self)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True,
                                                     do_handshake_on_connect=False)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def calls(self, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.requests if path is None or s.path == path]

    def start(self) -> "HostileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def make_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate and key for 127.0.0.1 and localhost, or None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return cert, key

