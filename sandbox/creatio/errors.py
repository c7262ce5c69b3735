"""Error responses in the shapes Creatio sends (reference section 2.9).

Handlers raise ``ODataError``; the app turns it into a ``Response``. Batch sub-requests turn it
into a sub-response the same way.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.base import Response

# Content type of Creatio's OData 4 JSON answers.
ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"


class ODataError(Exception):
    """An error answer: HTTP status, JSON payload and extra headers.

    Args:
        status: HTTP status.
        payload: The JSON body.
        headers: Extra headers (``Allow``, ``Location``...).
        odata: ``True`` for OData routes (OData content type); ``False`` for the ASP.NET
            envelopes sent before a request reaches OData (auth failures).
        html: An HTML body to send instead of ``payload`` (the login redirect).
    """

    def __init__(self, status: int, payload: dict[str, Any], headers: list[tuple[str, str]] | None = None,
                 *, odata: bool = True, html: str | None = None) -> None:
        super().__init__(f"{status}: {payload}")
        self.status = status
        self.payload = payload
        self.headers = list(headers or [])
        self.odata = odata
        self.html = html

    def response(self) -> Response:
        """The error as an HTTP response."""
        if self.html is not None:
            response = Response.text(self.status, self.html, "text/html; charset=utf-8")
            response.headers.extend(self.headers)
            return response
        if not self.odata:
            return Response.json(self.status, self.payload, self.headers)
        return odata_json(self.status, self.payload, self.headers)


def odata_json(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response with Creatio's OData content type and ``OData-Version: 4.0``."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, [("Content-Type", ODATA_JSON), ("OData-Version", "4.0"), *(headers or [])])


def odata_error(status: int, message: str, error_type: str = "") -> ODataError:
    """An OData 4 error ``{"error": {"code", "message", "innererror"}}``.

    Args:
        status: HTTP status.
        message: Human-readable text, repeated in ``innererror.message``.
        error_type: .NET exception type shown in ``innererror.type``.
    """
    return ODataError(status, {"error": {
        "code": "", "message": message,
        "innererror": {"message": message, "type": error_type, "stacktrace": ""},
    }})


def server_error(message: str, error_type: str = "") -> ODataError:
    """A 500 "An error has occurred." for an exception thrown while Creatio handled the request,
    with the useful text in ``innererror`` and ``internalexception`` (reference section 2.9).

    Args:
        message: The exception's text.
        error_type: .NET exception type shown in ``internalexception.type`` ("" if unknown).
    """
    return ODataError(500, {"error": {
        "code": "", "message": "An error has occurred.",
        "innererror": {
            "message": message, "type": "", "stacktrace": "",
            "internalexception": {"message": message, "type": error_type, "stacktrace": ""},
        },
    }})


def database_error(message: str) -> ODataError:
    """A 500 raised by the database, with the useful text in ``internalexception`` (section 2.9)."""
    return server_error(message, "Npgsql.PostgresException")


def routing_miss(url: str, name: str) -> ODataError:
    """ASP.NET Web API's 404 for a path no controller serves (reference section 2.9)."""
    return ODataError(404, {
        "Message": f"No HTTP resource was found that matches the request URI '{url}'.",
        "MessageDetail": f"No type was found that matches the controller named '{name}'.",
    })


def method_not_allowed(method: str, allowed: str) -> ODataError:
    """405 with an ``Allow`` header."""
    return ODataError(405, {"Message": f"The requested resource does not support http method '{method}'."},
                      [("Allow", allowed)])
