"""The worker's HTTP server: the app of ``jobs.worker.console.app`` under uvicorn, on a thread.

``/healthz`` and ``/metrics`` only read (the health answer comes from the worker's ``health()``
callable, the metrics from its registry), and run on the server's thread pool, so a slow scrape
or a slow page never delays a run, and a run never delays a probe.

The socket is bound here, before the server's thread starts: a port in use is an error the caller
sees at once (not a log line on another thread), and port 0 is known as soon as ``start`` returns.
uvicorn is told to leave logging alone (the worker's JSON lines stay the only format) and keeps
its access log off: probes come every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any, Callable

import uvicorn

from jobs.worker.console.app import build_app

log = logging.getLogger("wcsync.worker")
START_TIMEOUT_S = 10.0
GRACEFUL_S = 5  # open connections (a page still loading) get this long when the server stops


class StatusServer:
    """Serves ``GET``/``HEAD /healthz`` (200 or 503, JSON) and ``/metrics`` (Prometheus text), and
    with ``console`` the API and the web console.

    Args:
        host: Interface to bind (127.0.0.1 unless the checks come from another host).
        port: Port to bind; 0 picks a free one (see ``port`` after ``start``).
        health: Returns ``(healthy, body)``.
        metrics: Returns ``(content_type, body)``.
        console: A ``ConsoleOps``: serve the API and the pages too.
        access: Who may use them (``jobs.worker.console.access.Access``).

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], tuple[str, bytes]],
        console=None,
        access=None,
    ) -> None:
        self.app = build_app(health=health, metrics=metrics, console=console, access=access)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
            # A TLS proxy on this host may say who the client is and that it used https (for the
            # Secure cookie); nobody else may, whatever FORWARDED_ALLOW_IPS says.
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1,::1",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self._socket.getsockname()[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> StatusServer:
        """Start serving; returns once the server answers (or raises when it cannot start)."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise OSError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(GRACEFUL_S + 5)
        self._socket.close()

    def _serve(self) -> None:
        # A loop of this thread's own; uvicorn installs no signal handlers off the main thread.
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except Exception:
            log.exception("the HTTP server stopped on an error")
