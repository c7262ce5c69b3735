"""OData JSON ``$batch``: many writes in one request, one outcome per operation.

Request and response shapes follow reference creatio-api.md section 2.8. At most 100
sub-requests go in one batch; ``Prefer: continue-on-error`` on the outer request keeps the server
going past a failed sub-request.

Each sub-response is judged exactly like a plain response: it is rebuilt as a
``requests.Response`` and passed to ``HttpClient.raise_for_status`` (one status → error mapping,
with Creatio's ``parse_error`` and secret redaction). Two answers count as success because our
writes are idempotent by construction: a POST that carries our client-chosen ``Id`` and meets a
duplicate ``Id`` (it already landed, e.g. on a retried batch), and a DELETE of a record that is
already gone.

``run_batch`` never raises for a failed request: results are data, so the outcomes of earlier
chunks are never lost. A failure of the outer request marks its operations failed with that
error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from http.client import responses as HTTP_REASONS
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from ..errors import BadResponse, Conflict, ConnectorError, NotFound
from ..http import HttpClient, json_body
from .odata import Guid

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
ENTITY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class BatchOp:
    """One sub-request.

    Attributes:
        method: POST (create), PATCH (update), DELETE, PUT or GET.
        entity: the entity set, e.g. ``Contact``.
        id: the record id; required for every method but POST.
        body: the JSON body (a POST carries our own ``Id`` in it).
        ref: the caller's own label, returned untouched in the result.
    """

    method: str
    entity: str
    id: str | None = None
    body: dict[str, Any] | None = None
    ref: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unsupported batch method {self.method!r}")
        if not ENTITY_RE.fullmatch(self.entity):
            raise ValueError(f"invalid entity name {self.entity!r}")
        if self.method != "POST" and self.id is None:
            raise ValueError(f"a {self.method} needs a record id")

    @property
    def url(self) -> str:
        """The sub-request URL relative to the service root: ``Contact`` or ``Contact(<guid>)``."""
        return self.entity if self.id is None else f"{self.entity}({Guid(self.id)})"

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless: by id, or a create carrying our own Id."""
        if self.method == "POST":
            return bool(self.body) and "Id" in self.body
        return True


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one ``BatchOp``.

    Attributes:
        op: the operation.
        status: the sub-response status, or None when there was none.
        ok: whether the operation's effect is in place.
        error: what went wrong when not ``ok``.
        body: the sub-response body (the created record on a 201).
        already_existed: a create whose record was already there with our Id.
    """

    op: BatchOp
    status: int | None
    ok: bool
    error: ConnectorError | None = None
    body: Any = None
    already_existed: bool = False


def build_request(ops: list[BatchOp], first_id: int = 1) -> dict[str, Any]:
    """The JSON body of one ``$batch`` request; sub-request ids are ``str(first_id + index)``."""
    requests_ = []
    for index, op in enumerate(ops):
        sub: dict[str, Any] = {"method": op.method, "url": op.url, "id": str(first_id + index),
                               "headers": {"Content-Type": "application/json"}}
        if op.body is not None:
            sub["body"] = op.body
        requests_.append(sub)
    return {"requests": requests_}


def run_batch(http: HttpClient, odata_path: str, ops: list[BatchOp], *, chunk_size: int,
              continue_on_error: bool = True) -> list[BatchResult]:
    """Send ``ops`` in chunks of ``chunk_size`` and return one result per op, in order.

    Args:
        http: the Creatio request path.
        odata_path: the OData service path, e.g. ``/0/odata``.
        ops: the operations.
        chunk_size: sub-requests per batch (Creatio allows 100).
        continue_on_error: ask the server to go on after a failed sub-request; when False, the
            chunks after a failure are not sent either.
    """
    if not 1 <= chunk_size <= 100:
        raise ValueError("chunk_size must be between 1 and 100")
    results: list[BatchResult] = []
    stopped = False
    for start in range(0, len(ops), chunk_size):
        chunk = ops[start:start + chunk_size]
        if stopped:
            results.extend(_not_executed(op, "not sent: an earlier sub-request failed") for op in chunk)
            continue
        chunk_results = _run_chunk(http, odata_path, chunk, start + 1, continue_on_error)
        results.extend(chunk_results)
        stopped = not continue_on_error and not all(r.ok for r in chunk_results)
    return results


def _run_chunk(http: HttpClient, odata_path: str, ops: list[BatchOp], first_id: int,
               continue_on_error: bool) -> list[BatchResult]:
    headers = {"Accept": "application/json"}
    if continue_on_error:
        headers["Prefer"] = "continue-on-error"
    path = f"{odata_path}/$batch"
    try:
        response = http.request("POST", path, route=path, json=build_request(ops, first_id), headers=headers,
                                idempotent=all(op.idempotent for op in ops))
        payload = json_body(response, system="creatio")
        answers = payload.get("responses") if isinstance(payload, dict) else None
        if not isinstance(answers, list):
            raise BadResponse("batch answer has no responses list", system="creatio", method="POST",
                              path=path, status=response.status_code)
    except ConnectorError as exc:
        log.warning("creatio batch of %d operations failed: %s", len(ops), exc)
        return [BatchResult(op, exc.status, False, exc) for op in ops]
    by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
    return [_result(http, odata_path, op, by_id.get(str(first_id + index))) for index, op in enumerate(ops)]


def _result(http: HttpClient, odata_path: str, op: BatchOp, answer: dict[str, Any] | None) -> BatchResult:
    if answer is None:
        return _not_executed(op, "not executed")
    try:
        status = int(answer.get("status"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return BatchResult(op, None, False, BadResponse("sub-response without a status", system="creatio",
                                                       method=op.method, path=op.url))
    body = answer.get("body")
    if 200 <= status < 300:
        return BatchResult(op, status, True, None, body)
    error = _error(http, odata_path, op, status, answer.get("headers"), body)
    if op.method == "POST" and op.idempotent and isinstance(error, Conflict) and error.field == "Id":
        return BatchResult(op, status, True, None, body, already_existed=True)
    if op.method == "DELETE" and isinstance(error, NotFound):
        return BatchResult(op, status, True, None, body)
    return BatchResult(op, status, False, error, body)


def _error(http: HttpClient, odata_path: str, op: BatchOp, status: int, headers: Any,
           body: Any) -> ConnectorError:
    """The error a plain response with this status, headers and body would raise."""
    fake = requests.Response()
    fake.status_code = status
    fake.reason = HTTP_REASONS.get(status, "")
    fake.headers = CaseInsensitiveDict(headers if isinstance(headers, dict) else {})
    if body is None:
        fake._content = b""
    else:
        fake._content = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    fake.encoding = "utf-8"
    path = f"{odata_path}/{op.url}"
    fake.url = http.url(path)
    try:
        http.raise_for_status(fake, op.method, path)
    except ConnectorError as exc:
        return exc
    return BadResponse(f"unexpected status {status}", system="creatio", method=op.method, path=path,
                       status=status)


def _not_executed(op: BatchOp, message: str) -> BatchResult:
    return BatchResult(op, None, False, BadResponse(message, system="creatio", method=op.method, path=op.url))
