"""The console without a scheduled worker: for ``demo --console``, which keeps its sandbox running
so that a new user can explore the console (runs start from the console's buttons)."""

from __future__ import annotations

import signal
import threading
from typing import TextIO

from jobs.config import AppConfig
from jobs.logs import register_secrets
from jobs.worker.console.access import Access
from jobs.worker.console.ops import ConsoleOps, history_health
from jobs.worker.http import StatusServer
from jobs.worker.metrics import Metrics


def serve_console(
    config: AppConfig,
    *,
    out: TextIO,
    host: str = "127.0.0.1",
    port: int = 0,
    stop: threading.Event | None = None,
) -> None:
    """Serve the API and the console on ``host:port`` until Ctrl-C, SIGTERM or ``stop``.

    Without a ``[console]`` token the console answers on this machine only, without a login
    (``access``), which is what a demo on a laptop wants.
    """
    from jobs.wiring import state_store

    stop = stop or threading.Event()
    access = Access.from_config(config)
    register_secrets(access.secrets())
    metrics = Metrics()
    with state_store(config) as store:
        ops = ConsoleOps(config, store, health=history_health(config, store), stop_requested=stop.is_set)
        server = StatusServer(
            host,
            port,
            health=ops.health,
            console=ops,
            access=access,
            metrics=lambda: (metrics.content_type, metrics.render()),
        ).start()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            print(f"console: {server.url}/  (Ctrl-C stops it and the sandbox)", file=out, flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                stop.set()
        finally:
            server.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
