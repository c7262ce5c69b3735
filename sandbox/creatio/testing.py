"""A tiny client that calls ``CreatioApp.handle`` directly, for unit tests (no sockets).

It keeps the cookies of the last login and sends ``BPMCSRF`` like a real client would, or a
bearer token after ``token()``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sandbox.base import Request, Response
from sandbox.creatio.app import CreatioApp

_UNSET: Any = object()


def set_cookies(response: Response) -> dict[str, str]:
    """``name -> full Set-Cookie line`` of a response."""
    return {value.split("=", 1)[0]: value for name, value in response.headers if name.lower() == "set-cookie"}


def header(response: Response, name: str) -> str | None:
    """The first header ``name`` (case-insensitive) of a response."""
    for key, value in response.headers:
        if key.lower() == name.lower():
            return value
    return None


class DirectClient:
    """Sends ``Request`` values straight to an app.

    Args:
        app: The app under test.
        host: Value of the ``Host`` header (absolute URLs in answers use it).
    """

    def __init__(self, app: CreatioApp, host: str = "creatio.test") -> None:
        self.app = app
        self.host = host
        self.cookies: dict[str, str] = {}
        self.bearer: str | None = None

    def login(self, username: str | None = None, password: str | None = None,
              path: str = "/ServiceModel/AuthService.svc/Login") -> Response:
        """Forms login; on ``Code 0`` the cookies are kept for later requests."""
        creds = self.app.auth.credentials
        body = {"UserName": creds.creatio_username if username is None else username,
                "UserPassword": creds.creatio_password if password is None else password}
        response = self.app.handle(Request("POST", path, headers={"host": self.host},
                                           body=json.dumps(body).encode()))
        for name, line in set_cookies(response).items():
            self.cookies[name] = line.split(";", 1)[0].split("=", 1)[1]
        return response

    def token(self, client_id: str | None = None, client_secret: str | None = None,
              grant_type: str = "client_credentials") -> Response:
        """OAuth client-credentials token; on success later requests send it as bearer."""
        creds = self.app.auth.credentials
        form = urlencode({
            "client_id": creds.creatio_client_id if client_id is None else client_id,
            "client_secret": creds.creatio_client_secret if client_secret is None else client_secret,
            "grant_type": grant_type,
        })
        response = self.app.handle(Request("POST", "/connect/token", body=form.encode(), headers={
            "host": self.host, "content-type": "application/x-www-form-urlencoded"}))
        if response.status == 200:
            self.bearer = json.loads(response.body)["access_token"]
        return response

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = _UNSET,
                csrf: str | None = _UNSET, headers: dict[str, str] | None = None) -> Response:
        """One request with the session cookies (and ``BPMCSRF``) or the bearer token.

        Args:
            method: HTTP method.
            path: Decoded path, e.g. ``/0/odata/Contact``.
            query: Query parameters (one value each), e.g. ``{"$filter": "Name eq 'x'"}``.
            body: JSON-encoded unless ``bytes``.
            csrf: Override the ``BPMCSRF`` header; ``None`` sends none.
            headers: Extra headers.
        """
        sent = {"host": self.host}
        if self.bearer:
            sent["authorization"] = f"Bearer {self.bearer}"
        if self.cookies:
            sent["cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        token = self.cookies.get("BPMCSRF") if csrf is _UNSET else csrf
        if token is not None:
            sent["bpmcsrf"] = token
        sent.update({name.lower(): value for name, value in (headers or {}).items()})
        raw = b"" if body is _UNSET else body if isinstance(body, bytes) else json.dumps(body).encode()
        query = query or {}
        return self.app.handle(Request(method, path, query={k: [v] for k, v in query.items()}, headers=sent,
                                       body=raw, raw_query=urlencode(query)))

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("POST", path, body=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> Response:
        return self.request("PATCH", path, body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", path, **kwargs)


def body(response: Response) -> Any:
    """The decoded JSON body."""
    return json.loads(response.body)
