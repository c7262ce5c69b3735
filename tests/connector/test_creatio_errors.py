"""parse_error over every Creatio error shape, and how HttpClient turns each into an error class."""

import json

import pytest
import requests
import responses

from connector import errors
from connector.creatio.error_body import duplicate_key_field, parse_error
from connector.http import ErrorInfo, HttpClient
from connector.retry import RetryPolicy

PG_DUPLICATE = ('23505: duplicate key value violates unique constraint "PK_Contact_Id"\n'
                'DETAIL: Key ("Id")=(5a5e3a2c-0b1d-4c3e-9f10-abcdefabcdef) already exists.')


def response(status, body=b"", content_type="application/json", reason=None, headers=None):
    r = requests.Response()
    r.status_code = status
    reasons = {500: "Internal Server Error", 404: "Not Found", 400: "Bad Request", 503: "Service Unavailable"}
    r.reason = reason if reason is not None else reasons.get(status, "")
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r.headers["Content-Type"] = content_type
    r.headers.update(headers or {})
    r.encoding = "utf-8"
    return r


def odata_error(message, inner=None, internal=None, code=""):
    innererror = {"message": inner or message, "type": "", "stacktrace": ""}
    if internal is not None:
        innererror["internalexception"] = {"message": internal, "type": "", "stacktrace": ""}
    return {"error": {"code": code, "message": message, "innererror": innererror}}


@pytest.mark.parametrize("status, body, content_type, expected", [
    # OData 4 error: the innermost message wins over "An error has occurred."
    (500, odata_error("An error has occurred.", "outer text", "RAM consumption limit of 2000 MB"), None,
     ErrorInfo(message="RAM consumption limit of 2000 MB")),
    (400, odata_error("Bad literal", code="0x1"), None, ErrorInfo(message="Bad literal", error_id="0x1")),
    (400, {"error": {"code": "", "message": "Only outer"}}, None, ErrorInfo(message="Only outer")),
    # DataService / AuthService envelopes
    (500, {"Code": 1, "Message": "Server error text"}, None,
     ErrorInfo(message="Server error text", error_id="1")),
    (500, {"Code": 2, "Exception": {"Message": "Nested exception text"}}, None,
     ErrorInfo(message="Nested exception text", error_id="2")),
    (500, {"Code": 3, "Exception": "Plain exception text"}, None,
     ErrorInfo(message="Plain exception text", error_id="3")),
    # ASP.NET exception and routing miss
    (401, {"Message": "Authentication failed.", "StackTrace": None,
           "ExceptionType": "System.Security.Authentication.AuthenticationException"}, None,
     ErrorInfo(message="Authentication failed.",
               error_id="System.Security.Authentication.AuthenticationException")),
    (404, {"Message": "No HTTP resource was found that matches the request URI 'x/0/odata/Foo'.",
           "MessageDetail": "No type was found that matches the controller named 'Foo'."}, None,
     ErrorInfo(message="No HTTP resource was found that matches the request URI 'x/0/odata/Foo'. "
                       "No type was found that matches the controller named 'Foo'.")),
    # OAuth and generic {"error": "<code>"} bodies
    (400, {"error": "invalid_client"}, None, ErrorInfo(message="invalid_client", error_id="invalid_client")),
    (400, {"error": "invalid_grant", "error_description": "expired"}, None,
     ErrorInfo(message="invalid_grant: expired", error_id="invalid_grant")),
    (503, {"error": "sandbox fault", "status": 503}, None,
     ErrorInfo(message="sandbox fault", error_id="sandbox fault")),
    # HTML pages: the title only
    (503, b"<!DOCTYPE html><html><head><title>Service  Unavailable &amp; more</title></head>"
          b"<body><h1>Secret stack trace</h1></body></html>", "text/html",
     ErrorInfo(message="HTML page: Service Unavailable & more")),
    (404, b"<html><body>no title here</body></html>", "text/html",
     ErrorInfo(message="HTML page (Not Found)")),
    # Empty and plain-text bodies
    (500, b"", "text/plain", ErrorInfo(message="Internal Server Error")),
    (502, b"   ", "text/plain", ErrorInfo(message="HTTP 502")),
    (500, b"Request Error\nline two", "text/plain", ErrorInfo(message="Request Error")),
    (500, b"[1, 2]", None, ErrorInfo(message="[1, 2]")),
    (500, {"unknown": "shape"}, None, ErrorInfo(message='{"unknown": "shape"}')),
])
def test_parse_error_shapes(status, body, content_type, expected):
    assert parse_error(response(status, body, content_type or "application/json")) == expected


def test_html_page_is_never_dumped():
    page = b"<html><head><title>Error</title></head><body>" + b"x" * 5000 + b"</body></html>"
    info = parse_error(response(500, page, "text/html"))
    assert info.message == "HTML page: Error"


def test_long_messages_are_cut():
    info = parse_error(response(500, {"Message": "y" * 2000}))
    assert len(info.message) == 500 and info.message.endswith("…")


def test_request_id_header_is_kept():
    info = parse_error(response(500, b"", headers={"X-Request-Id": "req-1"}))
    assert info.request_id == "req-1"


@pytest.mark.parametrize("text, field", [
    (PG_DUPLICATE, "Id"),
    ('duplicate key value violates unique constraint "PK_Contact"', "Id"),
    ('duplicate key value violates unique constraint "contact_pkey"', "Id"),
    ("duplicate key value violates unique constraint", "Id"),
    ("Violation of PRIMARY KEY constraint 'PKContact'. "
     "Cannot insert duplicate key in object 'dbo.Contact'.", "Id"),
    ("Cannot insert duplicate key in object 'dbo.Contact'.", "Id"),
    # A named unique index is a clash on another column, never passed off as our Id.
    ('duplicate key value violates unique constraint "IUSysAdminUnitName"', ""),
    ("Cannot insert duplicate key row in object 'dbo.SysAdminUnit' "
     "with unique index 'IUSysAdminUnitName'.", ""),
    ('duplicate key value violates unique constraint "IX_Login"\n'
     'DETAIL: Key ("Login")=(1001) already exists.', "Login"),
    ("Column 'Name' cannot be null", None),
])
def test_duplicate_key_field(text, field):
    assert duplicate_key_field(text) == field


def test_duplicate_id_in_internal_exception_is_conflict_on_id():
    body = odata_error("An error has occurred.", "An error occurred while saving", PG_DUPLICATE)
    info = parse_error(response(500, body))
    assert info.conflict_field == "Id" and "already exists" in info.message


def test_duplicate_text_only_in_outer_layer_still_counts():
    body = odata_error("Violation of PRIMARY KEY constraint 'PK_X'.", "inner", "innermost")
    assert parse_error(response(500, body)).conflict_field == "Id"


@responses.activate
@pytest.mark.parametrize("status, body, error_class", [
    (500, odata_error("An error has occurred.", "x", PG_DUPLICATE), errors.Conflict),
    (500, odata_error("An error has occurred.", "x", "timeout"), errors.TransientError),
    (404, {"Message": "No HTTP resource", "MessageDetail": "none"}, errors.NotFound),
    (400, odata_error("Cannot convert the literal"), errors.BadRequest),
    (403, odata_error("Forbidden"), errors.PermissionDenied),
    (409, odata_error("Conflict"), errors.Conflict),
    (405, {"Message": "The requested resource does not support http method 'PUT'."}, errors.BadRequest),
])
def test_http_client_maps_parsed_errors(status, body, error_class):
    responses.get("https://creatio.test/0/odata/Contact", json=body, status=status)
    http = HttpClient(system="creatio", base_url="https://creatio.test", parse_error=parse_error,
                      retry=RetryPolicy(max_attempts=1), sleep=lambda s: None)
    with pytest.raises(error_class) as caught:
        http.request("GET", "/0/odata/Contact")
    assert type(caught.value) is error_class
    assert caught.value.status == status and caught.value.path == "/0/odata/Contact"
    if error_class is errors.Conflict and status == 500:
        assert caught.value.field == "Id"
