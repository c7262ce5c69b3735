"""Reading Creatio error bodies (reference creatio-api.md section 2.9).

Shapes recognised, most specific first:

- OData 4: ``{"error": {"code", "message", "innererror": {"message", "internalexception": {...}}}}``;
  the innermost message is the useful one ("An error has occurred." sits on top).
- OAuth / proxies: ``{"error": "invalid_client", "error_description": "..."}``.
- DataService / AuthService envelope: ``{"Code": <n>, "Message" | "Exception": ...}``.
- ASP.NET: ``{"Message", "ExceptionType"}``; routing miss: ``{"Message", "MessageDetail"}``.
- HTML pages from IIS or a proxy: only the ``<title>`` is kept, never the page.
- Empty or unreadable bodies: the HTTP reason.

A duplicate key from the database (Creatio answers HTTP 500) is reported as a uniqueness clash so
that ``HttpClient`` raises ``Conflict`` instead of retrying it; ``conflict_field`` is ``"Id"`` when
the clash is on the primary key (our client-chosen Id).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import requests

from ..http import ErrorInfo

MAX_MESSAGE = 500
DUPLICATE_RE = re.compile(
    r"duplicate key value violates unique constraint|violation of primary key constraint|"
    r"violation of unique key constraint|cannot insert duplicate key", re.IGNORECASE)
# The constraint or index a duplicate-key message names: PostgreSQL quotes it with ", SQL Server with '.
CONSTRAINT_RE = re.compile(r"""(?:constraint|index)\s+["'\[]?([^"'\]\s.]+)""", re.IGNORECASE)
# PostgreSQL's detail line: Key ("Id")=(...) already exists.
KEY_DETAIL_RE = re.compile(r"""Key \(\s*"?([A-Za-z0-9_]+)"?\s*\)=""")
TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def parse_error(response: requests.Response) -> ErrorInfo:
    """Turn a Creatio error response into ``ErrorInfo``; never raises.

    Args:
        response: an answer with an error status (or a batch sub-response rebuilt as one).
    """
    reason = response.reason or f"HTTP {response.status_code}"
    request_id = response.headers.get("X-Request-Id", "")
    text = response.text if response.content else ""
    if not text.strip():
        return ErrorInfo(message=reason, request_id=request_id)
    try:
        body = json.loads(text)
    except ValueError:
        return ErrorInfo(message=_from_text(text, reason), request_id=request_id)
    if not isinstance(body, dict):
        return ErrorInfo(message=_short(text), request_id=request_id)
    message, error_id, details = _from_json(body)
    message = message or reason
    return ErrorInfo(message=_short(message), error_id=error_id, request_id=request_id,
                     conflict_field=duplicate_key_field(" ".join([message, *details])))


def duplicate_key_field(text: str) -> str | None:
    """The clashing column of a duplicate-key database message, ``""`` if unknown, None if no clash.

    The primary key (``PRIMARY KEY``, a ``PK...``/``..._pkey`` constraint, or no name at all)
    counts as ``"Id"``: Creatio entities are keyed by ``Id``. A named unique index (for example
    ``IUSysAdminUnitName``) is a clash on some other column and must not pass for ``Id``.
    """
    if not DUPLICATE_RE.search(text):
        return None
    key = KEY_DETAIL_RE.search(text)
    if key:
        return key.group(1)
    if "primary key" in text.lower():
        return "Id"
    name = CONSTRAINT_RE.search(text)
    if name is None:
        return "Id"
    lowered = name.group(1).lower()
    return "Id" if lowered.startswith("pk") or lowered.endswith("pkey") else ""


def _from_json(body: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(message, error id, every message seen) of a JSON error body."""
    error = body.get("error")
    if isinstance(error, dict):
        messages = _odata_messages(error)
        innermost = next((m for m in reversed(messages) if m), "")
        return innermost, str(error.get("code") or ""), messages
    if isinstance(error, str):
        description = body.get("error_description") or body.get("message") or ""
        message = f"{error}: {description}" if description else error
        return message, error, [message]
    if "Code" in body and not isinstance(body.get("Code"), bool):
        message = _text(body.get("Message")) or _text(body.get("Exception"))
        return message, str(body.get("Code")), [message]
    if "Message" in body:
        message = _text(body.get("Message"))
        detail = _text(body.get("MessageDetail")) or _text(body.get("ExceptionMessage"))
        joined = f"{message} {detail}".strip() if detail and detail != message else message
        error_type = _text(body.get("ExceptionType"))
        return joined, error_type, [joined]
    return _short(json.dumps(body, ensure_ascii=False)), "", []


def _odata_messages(error: dict[str, Any]) -> list[str]:
    """Messages from the outer error down through innererror and nested internalexceptions."""
    messages = [_text(error.get("message"))]
    node = error.get("innererror")
    depth = 0
    while isinstance(node, dict) and depth < 10:
        messages.append(_text(node.get("message")))
        node = node.get("internalexception")
        depth += 1
    return messages


def _text(value: Any) -> str:
    """A message field as text: a string, or the ``Message`` of a nested exception object."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return _text(value.get("Message") or value.get("message"))
    return ""


def _from_text(text: str, reason: str) -> str:
    """The ``<title>`` of an HTML page, or the first line of plain text."""
    if "<" in text and re.search(r"<(html|!doctype|head|body)\b", text, re.IGNORECASE):
        title = TITLE_RE.search(text)
        shown = " ".join(html.unescape(title.group(1)).split()) if title else ""
        return f"HTML page: {_short(shown)}" if shown else f"HTML page ({reason})"
    return _short(text.strip().splitlines()[0])


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
