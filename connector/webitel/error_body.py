"""Reading Webitel error bodies.

The live shape is ``{"id": "<dotted.id>", "code": <status>, "status": "<reason>", "detail": "..."}``
(engine ``pkg/werror/error.go``; reference section 4); the Swagger file declares ``rpcStatus``
``{code, message, details}`` instead, kept as a fallback.
"""

from __future__ import annotations

import requests

from ..http import ErrorInfo

# Error ids of uniqueness clashes (reference section 4; webitel/custom store/postgres/custom.go).
# Inferred: duplicates answer 409, but a 400 with one of these ids is a clash too.
CONFLICT_IDS = {
    "app.user.conflict.error": "username",
    "app.user.extension.conflict.error": "extension",
    "app.user.email.conflict.error": "email",
}


def parse_error(response: requests.Response) -> ErrorInfo:
    """Turn a Webitel error response into ``ErrorInfo``; never raises."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ErrorInfo(message=response.reason or f"HTTP {response.status_code}")
    error_id = str(body.get("id") or "")
    message = str(body.get("detail") or body.get("message") or body.get("status") or response.reason or "")
    field = CONFLICT_IDS.get(error_id)
    if field is None and response.status_code == 409:
        field = _guess_field(error_id + " " + message)
    return ErrorInfo(message=message, error_id=error_id, request_id=str(body.get("request_id") or ""),
                     conflict_field=field)


def _guess_field(text: str) -> str:
    text = text.lower()
    for field in ("extension", "email", "username"):
        if field in text:
            return field
    return ""
