"""``/healthz`` and ``/metrics`` on a small HTTP server thread (standard library only).

The handlers only read: the health answer comes from the worker's ``health()`` callable, the
metrics from its registry, so a slow scrape can never delay a run.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger("wcsync.worker")


class StatusServer:
    """Serves ``GET /healthz`` (200 or 503, JSON) and ``GET /metrics`` (Prometheus text); ``HEAD`` too.

    Args:
        host: Interface to bind (127.0.0.1 unless the checks come from another host).
        port: Port to bind; 0 picks a free one (see ``port`` after ``start``).
        health: Returns ``(healthy, body)``.
        metrics: Returns ``(content_type, body)``.
    """

    def __init__(self, host: str, port: int, *, health: Callable[[], tuple[bool, dict[str, Any]]],
                 metrics: Callable[[], tuple[str, bytes]]) -> None:
        handler = type("Handler", (_Handler,),
                       {"health": staticmethod(health), "metrics": staticmethod(metrics)})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    health: Callable[[], tuple[bool, dict[str, Any]]]
    metrics: Callable[[], tuple[str, bytes]]
    server_version = "webitel-creatio-sync"

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self._send(*self._answer())

    def do_HEAD(self) -> None:  # noqa: N802 (the http.server API)
        # Probes that only look at the status (curl -I, some load balancers): GET's headers, no body.
        self._send(*self._answer(), body=False)

    def _answer(self) -> tuple[int, str, bytes]:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            try:
                ok, body = self.health()
            except Exception as exc:  # e.g. the state store is unreachable: that is unhealthy
                log.warning("health check failed: %s", exc)
                ok, body = False, {"healthy": False, "reason": f"cannot read the run history: {exc}"}
            return (200 if ok else 503, "application/json",
                    json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n")
        if path == "/metrics":
            content_type, payload = self.metrics()
            return 200, content_type, payload
        return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"

    def _send(self, status: int, content_type: str, payload: bytes, *, body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
        # Probes hit these every few seconds; keep them out of the worker's log.
        log.debug("http %s", format % args)
