"""The worker's one web app (Starlette): ``/healthz`` and ``/metrics``, and with a console, the API
(``/api/...``) and the console's pages.

Probes stay open and cheap (``/healthz``, ``/metrics``, ``HEAD`` as well as ``GET``); everything
else passes the rules of ``access`` first. Every answer says ``Cache-Control: no-store``, and the
pages forbid framing, inline scripts and foreign resources (there are none: the stylesheet ships in
the package), so a page cannot be dressed up or read by another site.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.logs import scrub
from jobs.worker.console.access import Access

log = logging.getLogger("wcsync.worker")

PROBES = ("/healthz", "/metrics")
HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
)


def build_app(
    *,
    health: Callable[[], tuple[bool, dict[str, Any]]],
    metrics: Callable[[], tuple[str, bytes]],
    console=None,
    access: Access | None = None,
) -> ASGIApp:
    """The app: probes always; the API and the pages when ``console`` (a ``ConsoleOps``) is given.

    Args:
        health: ``(healthy, body)`` of ``/healthz``.
        metrics: ``(content_type, body)`` of ``/metrics``.
        console: The operations behind the API and the pages; None serves the probes alone.
        access: Who may use them (default: nobody but this machine, no login).
    """

    def healthz(request: Request) -> Response:
        try:
            ok, body = health()
        except Exception as exc:  # e.g. the state store is unreachable: that is unhealthy
            log.warning("health check failed: %s", exc)
            ok, body = False, {"healthy": False, "reason": scrub(f"cannot read the run history: {exc}")}
        return Response(
            json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n",
            200 if ok else 503,
            media_type="application/json",
        )

    def metrics_text(request: Request) -> Response:
        content_type, payload = metrics()
        return Response(payload, headers={"content-type": content_type})

    # Sync endpoints: Starlette runs them on its thread pool, so a slow store never blocks the loop.
    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    if console is not None:
        from jobs.worker.console import api, pages

        access = access or Access()
        routes += api.routes(console)
        routes += pages.routes(console, access)
        routes.append(
            Mount("/static", StaticFiles(packages=[("jobs.worker.console", "static")]), name="static")
        )
    app: ASGIApp = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    return Headers(Guard(app, access) if console is not None and access is not None else app)


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": getattr(exc, "detail", None) or "not found"}, 404)
    return PlainTextResponse("not found: try /healthz or /metrics\n", 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": f"{request.method} is not allowed here"}, 405, headers=getattr(exc, "headers", None)
    )


class Headers:
    """Adds ``HEADERS`` to every answer (and is the app as the server sees it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in have)]
            await send(message)

        await self.app(scope, receive, with_headers)


class Guard:
    """Rules 1 and 2 of ``access`` before any route but the probes; the pages check rule 3."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.access.network_refusal(request)
        status = 403
        if refusal is None and scope["path"].startswith("/api/"):
            status, refusal = self.access.api_refusal(request) or (0, None)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        headers = {"www-authenticate": 'Bearer realm="webitel-creatio-sync"'} if status == 401 else None
        if scope["path"].startswith("/api/"):
            answer: Response = JSONResponse({"error": refusal}, status, headers=headers)
        else:
            answer = PlainTextResponse(f"{refusal}\n", status, headers=headers)
        await answer(scope, receive, send)


async def blocking(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call (the store, Webitel, Creatio) off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)
