"""JSON ``$batch`` (reference section 2.8): up to 100 sub-requests run in order through the same
entity handlers as single requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.base import Request, Response
from sandbox.creatio.crud import Entities, parse_resource
from sandbox.creatio.errors import ODataError, odata_error, odata_json, routing_miss

MAX_REQUESTS = 100  # sub-requests per batch (reference section 5)


def _invalid(message: str) -> ODataError:
    return odata_error(400, message, "Microsoft.OData.ODataException")


def _continue_on_error(prefer: str | None) -> bool:
    """Whether ``Prefer`` asks to run past failures (4.01 ``continue-on-error`` or 4.0
    ``odata.continue-on-error``, optionally ``=true``/``=false``)."""
    for item in (prefer or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() in ("continue-on-error", "odata.continue-on-error"):
            return value.strip().lower() != "false"
    return False


def _requests_of(request: Request) -> list[dict[str, Any]]:
    content_type = (request.header("content-type") or "").lower()
    if content_type.startswith("multipart/"):
        # Decision: only the JSON batch format is implemented in the sandbox.
        raise odata_error(501, "multipart/mixed batches are not implemented by the sandbox; send JSON.")
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"The batch request body is not valid JSON: {exc}")
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _invalid("The batch request body must be a JSON object with a 'requests' array.")
    subs = body["requests"]
    if len(subs) > MAX_REQUESTS:
        raise _invalid(f"The batch contains {len(subs)} requests; at most {MAX_REQUESTS} are allowed.")
    seen: set[str] = set()
    for index, sub in enumerate(subs):
        if not isinstance(sub, dict) or not isinstance(sub.get("method"), str) \
                or not isinstance(sub.get("url"), str):
            raise _invalid(f"Batch request #{index} needs string 'method' and 'url' properties.")
        # Decision: 'id' is required and unique, as the JSON batch format prescribes.
        sub_id = sub.get("id")
        if not isinstance(sub_id, str) or not sub_id or sub_id in seen:
            raise _invalid(f"Batch request #{index} needs a unique non-empty string 'id'.")
        seen.add(sub_id)
    return subs


def run_batch(entities: Entities, request: Request, base: str) -> Response:
    """Answer ``POST <odata>/$batch``.

    Sub-requests run in order. Processing stops after the first one answering 4xx/5xx (later ones
    get no entry) unless the outer request has ``Prefer: continue-on-error``.

    Args:
        entities: The entity handlers (they count writes).
        request: The outer request.
        base: ``http://host`` of the request.

    Raises:
        ODataError: 400 for a malformed batch or more than 100 sub-requests.
    """
    subs = _requests_of(request)
    keep_going = _continue_on_error(request.header("prefer"))
    responses = []
    for sub in subs:
        answer = _run_one(entities, sub, base)
        responses.append(answer)
        if answer["status"] >= 400 and not keep_going:
            break
    return odata_json(200, {"responses": responses})


def _run_one(entities: Entities, sub: dict[str, Any], base: str) -> dict[str, Any]:
    method = sub["method"].upper()
    split = urlsplit(sub["url"])  # an absolute URL keeps only its path and query
    path = unquote(split.path)
    odata = entities.odata_path
    try:
        if path.startswith("/"):
            if not path.startswith(odata + "/"):
                raise routing_miss(f"{base}{path}", path.rsplit("/", 1)[-1])
            path = path[len(odata) + 1:]
        resource = parse_resource(path)
        if resource is None:
            raise routing_miss(f"{base}{odata}/{path}", path)
        body = sub.get("body")
        raw = b"" if body is None else body.encode("utf-8") if isinstance(body, str) else \
            json.dumps(body).encode("utf-8")
        query = parse_qs(split.query, keep_blank_values=True)
        response = entities.dispatch(method, resource, query, raw, base)
    except ODataError as exc:
        response = exc.response()
    return _sub_response(sub, response)


def _sub_response(sub: dict[str, Any], response: Response) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in response.headers}
    out: dict[str, Any] = {"id": sub["id"]}
    if sub.get("atomicityGroup") is not None:
        # Decision: the group is echoed back but not enforced as a transaction (no rollback).
        out["atomicityGroup"] = sub["atomicityGroup"]
    out["status"] = response.status
    out["headers"] = headers
    if response.body:
        text = response.body.decode("utf-8")
        out["body"] = json.loads(text) if "json" in headers.get("content-type", "") else text
    return out
