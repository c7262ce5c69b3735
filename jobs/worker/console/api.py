"""The HTTP API: for automation, and for a Creatio business process ("Call web service") that
starts the import the way ``GetWebitelUsers`` is started.

``GET /api/status``, ``POST /api/runs`` (202 and the run id; 409 while a run is in progress),
``GET /api/runs``, ``GET /api/runs/{id}``, ``GET /api/conflicts`` and ``POST
/api/conflicts/{id}/link|ignore|unignore``. Answers are JSON; an error is ``{"error": "..."}`` with
the status saying what kind (400 a bad body, 404 no such thing, 409 busy, 422 refused by a sync
rule, 502 Webitel or Creatio failed, 503 stopping). Who may call it: see ``access``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.errors import LockBusy, Refused, SyncError

from jobs.commands.history import run_dict
from jobs.logs import scrub
from jobs.worker.console.app import blocking
from jobs.worker.console.ops import JOB_CHOICES, ConsoleOps, NotFound, Stopping

BODY_LIMIT = 64 * 1024  # no request of this API needs more


class BadBody(ValueError):
    """The request body is not what the endpoint takes."""


def routes(ops: ConsoleOps) -> list[Route]:
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(await blocking(ops.overview))

    async def list_runs(request: Request) -> JSONResponse:
        limit = _limit(request.query_params.get("limit"), 20)
        runs = await blocking(ops.runs, limit)
        return JSONResponse({"runs": [run_json(r, report=False) for r in runs]})

    async def start_run(request: Request) -> JSONResponse:
        body = await _body(request, {"job": str, "user": str, "dry_run": bool})
        job = body.get("job") or "all"
        if job not in JOB_CHOICES:
            raise BadBody(f"job: expected one of {', '.join(JOB_CHOICES)}, not {job!r}")
        user = (body.get("user") or "").strip() or None
        launch = await blocking(
            ops.start_run,
            jobs=JOB_CHOICES[job],
            user=user,
            dry_run=bool(body.get("dry_run")),
            by=f"api ({_client(request)})",
        )
        answer = {**launch.as_json(), "status_url": f"/api/runs/{launch.run_id}"}
        return JSONResponse(answer, 202, headers={"location": answer["status_url"]})

    async def get_run(request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]
        try:
            record, launch = await blocking(ops.run, run_id)
        except LookupError as exc:  # a prefix of several runs
            return _error(400, str(exc))
        if record is None and launch is None:
            return _error(404, f"no run {run_id!r}")
        out: dict[str, Any] = (
            run_json(record)
            if record is not None
            else {"run_id": launch.run_id, "outcome": "failed" if launch.done.is_set() else "pending"}
        )
        if launch is not None:
            out["launch"] = launch.as_json()
            if launch.error and record is None:
                out["failure"] = launch.error
            if launch.run_ids[1:] and launch.run_id == out["run_id"]:
                later = [await blocking(ops.store.get_run, i) for i in launch.run_ids[1:]]
                out["later_runs"] = [run_json(r, report=False) for r in later if r is not None]
        return JSONResponse(out)

    async def conflicts(request: Request) -> JSONResponse:
        open_ = await blocking(ops.conflicts)
        ignored = await blocking(ops.ignored)
        return JSONResponse({"conflicts": jsonable(open_), "ignored": jsonable(ignored)})

    async def link(request: Request) -> JSONResponse:
        body = await _body(request, {"contact": str})
        if not body.get("contact"):
            raise BadBody('name the contact: {"contact": "<Contact Id or exact name>"}')
        done = await blocking(
            ops.link, request.path_params["conflict_id"], body["contact"], who=f"api ({_client(request)})"
        )
        return JSONResponse({"linked": jsonable(done)})

    async def ignore(request: Request) -> JSONResponse:
        body = await _body(request, {"reason": str})
        if not (body.get("reason") or "").strip():
            raise BadBody('say why: {"reason": "..."}')
        done = await blocking(
            ops.ignore, request.path_params["conflict_id"], body["reason"], who=f"api ({_client(request)})"
        )
        return JSONResponse({"ignored": jsonable(done)})

    async def unignore(request: Request) -> JSONResponse:
        await _body(request, {})
        done = await blocking(
            ops.unignore, request.path_params["conflict_id"], who=f"api ({_client(request)})"
        )
        return JSONResponse({"unignored": jsonable(done)})

    def guarded(endpoint):
        """The endpoint with every expected error turned into its status and one line."""

        async def call(request: Request) -> JSONResponse:
            try:
                return await endpoint(request)
            except BadBody as exc:
                return _error(400, str(exc))
            except NotFound as exc:
                return _error(404, str(exc))
            except LockBusy as exc:
                holder = {
                    k: v
                    for k, v in (exc.holder or {}).items()
                    if k in ("holder", "host", "pid", "acquired_at")
                }
                return JSONResponse(
                    jsonable({"error": "a run is in progress; try again when it ends", "running": holder}),
                    409,
                )
            except Refused as exc:
                return _error(422, str(exc))
            except Stopping as exc:
                return _error(503, str(exc))
            except SyncError as exc:  # Webitel, Creatio or the state store failed
                return _error(502, str(exc))

        return call

    return [
        Route("/api/status", guarded(status), methods=["GET"]),
        Route("/api/runs", guarded(list_runs), methods=["GET"]),
        Route("/api/runs", guarded(start_run), methods=["POST"]),
        Route("/api/runs/{run_id}", guarded(get_run), methods=["GET"]),
        Route("/api/conflicts", guarded(conflicts), methods=["GET"]),
        Route("/api/conflicts/{conflict_id}/link", guarded(link), methods=["POST"]),
        Route("/api/conflicts/{conflict_id}/ignore", guarded(ignore), methods=["POST"]),
        Route("/api/conflicts/{conflict_id}/unignore", guarded(unignore), methods=["POST"]),
    ]


def run_json(run, *, report: bool = True) -> dict[str, Any]:
    """One run of the history as the API shows it (its stored report too, unless ``report=False``)."""
    out = run_dict(run)
    if report:
        out["report"] = run.report
    return jsonable(out)


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO text (what the engine's dicts hold is not all JSON)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": scrub(message)}, status)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _limit(text: str | None, default: int) -> int:
    try:
        return max(1, min(int(text or default), 500))
    except ValueError:
        return default


async def _body(request: Request, fields: dict[str, type]) -> dict[str, Any]:
    """The JSON object of the body, checked against ``fields`` (an empty body is ``{}``).

    Raises:
        BadBody: not a JSON object, too large, an unknown field, or a value of the wrong type.
    """
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > BODY_LIMIT:
            raise BadBody(f"the body is larger than {BODY_LIMIT // 1024} KiB")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadBody("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadBody(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(fields) or 'none'}")
    for name, kind in fields.items():
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise BadBody(f"{name}: expected {'true or false' if kind is bool else 'text'}")
    return body
