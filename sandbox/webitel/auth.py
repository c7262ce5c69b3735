"""Tokens of the sandbox Webitel API: the static personal access token and login sessions."""

from __future__ import annotations

import secrets
from typing import Callable

from sandbox.base import Request
from sandbox.seed.types import Credentials
from sandbox.webitel.wire import ApiError

HEADER = "x-webitel-access"


def token_of(request: Request) -> str:
    """The access token a request carries: header ``X-Webitel-Access`` or query ``access_token``."""
    # Decision: ``Authorization: Bearer`` is ignored; reference §1.3 / open question 3 say it is
    # verified only for the engine's own parser, not for the webitel.go gateway.
    return (request.header(HEADER) or request.arg("access_token") or "").strip()


class Sessions:
    """Issues, checks and ends session tokens; the static token from the seed never expires."""

    def __init__(self, credentials: Credentials, domain: str, now_ms: Callable[[], int], lifetime_s: int):
        self.credentials = credentials
        self.domain = domain
        self.now_ms = now_ms
        self.lifetime_s = lifetime_s
        self._expiry: dict[str, int] = {}  # session token -> expiry in ms

    def login(self, body: object) -> dict:
        """Check a ``POST /login`` body and open a session.

        Args:
            body: ``{"username", "password", "domain"}`` or ``{"username": "user@domain", "password"}``.

        Returns:
            The token object ``{access_token, token_type, expires_in}``.

        Raises:
            ApiError: 400 when username or password is missing, 401 on wrong credentials.
        """
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("password"), str) or not body["username"] or not body["password"]:
            # Decision: a login without username/password is a bad request, not an auth failure.
            raise ApiError(400, "app.login.bad_request", "username and password are required")
        username, _, domain = body["username"].partition("@")
        domain = str(body.get("domain") or domain)
        creds = self.credentials
        # Decision: only the seed's admin can log in; either the seed domain or the credentials
        # domain is accepted (they are normally the same), and an omitted domain means "this one".
        known_domains = {self.domain.lower(), creds.webitel_domain.lower()}
        if (username.lower() != creds.webitel_username.lower() or body["password"] != creds.webitel_password
                or (domain and domain.lower() not in known_domains)):
            raise ApiError(401, "app.login.invalid_credentials", "invalid username or password")
        token = secrets.token_urlsafe(24)
        self._expiry[token] = self.now_ms() + self.lifetime_s * 1000
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime_s}

    def check(self, request: Request) -> str:
        """Return the request's valid token, or raise 401 (missing, unknown or expired)."""
        # Decision: the error ids below are the sandbox's own; the real ids are not in the reference.
        token = token_of(request)
        if not token:
            raise ApiError(401, "app.context.session.unauthenticated",
                           "no access token: send header X-Webitel-Access")
        if token == self.credentials.webitel_token:
            return token
        expiry = self._expiry.get(token)
        if expiry is None:
            raise ApiError(401, "app.context.session.invalid", "access token is not valid")
        if self.now_ms() >= expiry:
            del self._expiry[token]
            raise ApiError(401, "app.context.session.expired", "access token has expired")
        return token

    def expires_at(self, token: str) -> int:
        """Expiry of a session token in ms; 0 for the static token, which never expires."""
        return self._expiry.get(token, 0)

    def logout(self, token: str) -> None:
        """End a login session; the static personal token stays valid (it is not a session)."""
        self._expiry.pop(token, None)

    def expire_all(self) -> None:
        """Invalidate every login session (not the static token)."""
        self._expiry.clear()
