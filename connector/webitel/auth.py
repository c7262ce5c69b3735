"""Webitel authentication: a static access token, or a password login with one re-login on 401.

The token travels in ``X-Webitel-Access`` (reference webitel-api.md section 1.3). A personal access
token has no expiry, so a 401 with one is final; a session token from ``POST /api/login`` expires
(its lifetime is undocumented), so a 401 triggers one fresh login.
"""

from __future__ import annotations

from collections import deque

import requests
from pydantic import SecretStr

from ..errors import AuthError
from ..http import HttpClient, json_body

HEADER = "X-Webitel-Access"


class TokenAuth:
    """A personal access token (``/api/users/{id}/tokens``) or any token issued out of band."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def apply(self, http: HttpClient, headers: dict[str, str]) -> None:
        headers[HEADER] = self._token.get_secret_value()

    def needs_relogin(self, response: requests.Response) -> bool:
        return False

    def login(self, http: HttpClient) -> None:
        """Nothing to do: a static token cannot be renewed."""

    def secrets(self) -> list[str]:
        return [self._token.get_secret_value()]

    def __repr__(self) -> str:
        return "TokenAuth(token=**********)"


class LoginAuth:
    """Username and password: ``POST /api/login``, then the session token on every request."""

    def __init__(self, username: str, password: SecretStr, domain: str | None = None) -> None:
        self.username = username
        self._password = password
        self.domain = domain
        self._token: str | None = None
        # Decision: the last few session tokens stay secrets after a re-login: the old one may
        # still be valid at the server, and an error about it may be logged later.
        self._tokens: deque[str] = deque(maxlen=8)

    def apply(self, http: HttpClient, headers: dict[str, str]) -> None:
        if self._token is None:
            http.login()
        if self._token is not None:
            headers[HEADER] = self._token

    def needs_relogin(self, response: requests.Response) -> bool:
        return response.status_code == 401

    def login(self, http: HttpClient) -> None:
        body = {"username": self.username, "password": self._password.get_secret_value()}
        if self.domain:
            body["domain"] = self.domain
        # A login creates nothing, so repeating it after a network fault is harmless.
        response = http.request(
            "POST", "login", route="/login", json=body, authenticated=False, idempotent=True
        )
        payload = json_body(response, system="webitel")
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            # With two-factor authentication on, /login answers {"id": ...} and waits for a code.
            hint = (
                " (two-factor authentication is on for this user: use a personal access token)"
                if (isinstance(payload, dict) and "id" in payload)
                else ""
            )
            raise AuthError(
                f"login answered without an access token{hint}",
                system="webitel",
                method="POST",
                path="/login",
                status=response.status_code,
            )
        if not isinstance(token, str):
            raise AuthError("login answered with an access token that is not a string", system="webitel",
                            method="POST", path="/login", status=response.status_code)
        self._tokens.append(token)
        self._token = token

    def secrets(self) -> list[str]:
        """The password and the session tokens of the last few logins."""
        return [v for v in (self._password.get_secret_value(), *self._tokens) if v]

    def __repr__(self) -> str:
        return f"LoginAuth(username={self.username!r}, password=**********, domain={self.domain!r})"
