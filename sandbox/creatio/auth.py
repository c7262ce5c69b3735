"""Forms sessions (``AuthService.svc/Login`` + cookies + BPMCSRF) and OAuth 2.0 client-credentials
tokens (``/connect/token`` + ``Authorization: Bearer``), reference section 1.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal
from urllib.parse import parse_qs, quote

from sandbox.base import Request, Response
from sandbox.creatio.errors import ODataError, odata_error
from sandbox.seed.types import Credentials

_AUTH_FAILED = {"Message": "Authentication failed.", "StackTrace": None,
                "ExceptionType": "System.Security.Authentication.AuthenticationException"}
_LOGIN_FIELDS = {"Exception": None, "PasswordChangeUrl": None, "RedirectUrl": None}
# Decision: the UserName cookie lives 30 days (Creatio drives it by UserNameExpireDays).
_USERNAME_COOKIE_DAYS = 30


@dataclass
class _Session:
    csrf: str
    user: str
    last_used: float


@dataclass
class _Token:
    client_id: str
    expires_at: float


class Auth:
    """Who may call the OData routes.

    Args:
        credentials: The forms user and the OAuth client.
        clock: Seconds since the epoch (fake in tests).
        session_lifetime_s: Idle time after which a forms session dies (sliding, like
            ``UserSessionTimeout``).
        oauth_token_lifetime_s: Absolute lifetime of an access token (``expires_in``).
        expire_after_requests: Fault: after every K authorised requests all sessions and tokens
            die (the K-th request itself is still served).
        expired_response: ``"401"`` (the ``*.svc`` JSON envelope) or ``"redirect"`` (302 to the
            login page, what ASP.NET does on other routes, reference section 1.3).
    """

    def __init__(self, credentials: Credentials, clock: Callable[[], float], *,
                 session_lifetime_s: float, oauth_token_lifetime_s: float,
                 expire_after_requests: int | None, expired_response: Literal["401", "redirect"]) -> None:
        if expired_response not in ("401", "redirect"):
            raise ValueError(f"expired_session_response must be '401' or 'redirect', "
                             f"not {expired_response!r}")
        if expire_after_requests is not None and expire_after_requests < 1:
            raise ValueError("expire_sessions_after_requests must be at least 1")
        self.credentials = credentials
        self.clock = clock
        self.session_lifetime_s = session_lifetime_s
        self.oauth_token_lifetime_s = oauth_token_lifetime_s
        self.expire_after_requests = expire_after_requests
        self.expired_response = expired_response
        self.sessions: dict[str, _Session] = {}  # .ASPXAUTH value -> session
        self.tokens: dict[str, _Token] = {}
        self._uses = 0

    def expire_all(self) -> None:
        """Kill every forms session and OAuth token now."""
        self.sessions.clear()
        self.tokens.clear()

    def login(self, request: Request) -> Response:
        """``POST .../AuthService.svc/Login`` with ``{"UserName", "UserPassword"}``."""
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("UserName"), str) \
                or not isinstance(body.get("UserPassword"), str):
            return Response.json(400, {"Message": "The request body must be a JSON object with string "
                                                  "UserName and UserPassword.", "StackTrace": None,
                                       "ExceptionType": "System.ArgumentException"})
        creds = self.credentials
        if body["UserName"] != creds.creatio_username or body["UserPassword"] != creds.creatio_password:
            # A failed login is still HTTP 200; only Code says so (reference section 1.1).
            return Response.json(200, {"Code": 1, "Message": "Invalid username or password specified.",
                                       **_LOGIN_FIELDS})
        aspxauth = secrets.token_hex(64).upper()
        csrf = secrets.token_urlsafe(16)
        now = self.clock()
        self.sessions[aspxauth] = _Session(csrf, body["UserName"], now)
        expires = formatdate(now + _USERNAME_COOKIE_DAYS * 86400, usegmt=True)
        cookies = [
            ("Set-Cookie", f"BPMLOADER={secrets.token_hex(12)}; path=/; HttpOnly"),
            ("Set-Cookie", f".ASPXAUTH={aspxauth}; path=/; HttpOnly"),
            ("Set-Cookie", f"BPMCSRF={csrf}; path=/"),
            ("Set-Cookie", f"UserName={quote(body['UserName'])}; expires={expires}; path=/; HttpOnly"),
        ]
        return Response.json(200, {"Code": 0, "Message": "", **_LOGIN_FIELDS}, cookies)

    def issue_token(self, request: Request) -> Response:
        """``POST /connect/token`` (form-encoded client credentials grant)."""
        form = {name: values[0] for name, values in parse_qs(request.body.decode("utf-8", "replace"),
                                                              keep_blank_values=True).items()}
        creds = self.credentials
        no_store = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        known = (creds.creatio_client_id, creds.creatio_client_secret)
        if (form.get("client_id"), form.get("client_secret")) != known:
            return Response.json(400, {"error": "invalid_client"}, no_store)
        if form.get("grant_type") != "client_credentials":
            return Response.json(400, {"error": "unsupported_grant_type"}, no_store)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = _Token(creds.creatio_client_id, self.clock() + self.oauth_token_lifetime_s)
        scope = "ApplicationAccess_" + uuid.uuid5(uuid.NAMESPACE_URL, creds.creatio_client_id).hex
        return Response.json(200, {"access_token": token, "expires_in": int(self.oauth_token_lifetime_s),
                                   "token_type": "Bearer", "scope": scope}, no_store)

    def authorize(self, request: Request) -> None:
        """Check a request to a protected route.

        Raises:
            ODataError: 401 (or 302 in redirect mode) without a live session or token, 403 when a
                live forms session comes without the matching ``BPMCSRF`` header.
        """
        now = self.clock()
        header = request.header("authorization") or ""
        if header[:7].lower() == "bearer ":
            token = self.tokens.get(header[7:].strip())
            if token is None or now >= token.expires_at:
                self.tokens.pop(header[7:].strip(), None)
                # Decision: a bad bearer token is always 401 (S9), never the forms redirect.
                raise ODataError(401, _AUTH_FAILED, [("WWW-Authenticate", 'Bearer error="invalid_token"')],
                                 odata=False)
            self._count_use()
            return
        key = request.cookies.get(".ASPXAUTH")
        session = self.sessions.get(key) if key else None
        if session is None or now - session.last_used >= self.session_lifetime_s:
            if key:
                self.sessions.pop(key, None)
            raise self._unauthenticated(request)
        if request.header("bpmcsrf") != session.csrf:
            # Decision: the 403 carries an OData error body; Creatio's exact body is not documented.
            raise odata_error(403, "The BPMCSRF header is missing or does not match the session's "
                                   "CSRF token.")
        # Decision: only a fully authorised request slides the session's idle timeout.
        session.last_used = now
        self._count_use()

    def _count_use(self) -> None:
        if self.expire_after_requests is None:
            return
        self._uses += 1
        if self._uses >= self.expire_after_requests:
            self._uses = 0
            # Decision: the fault kills OAuth tokens too, so both auth modes see it.
            self.expire_all()

    def _unauthenticated(self, request: Request) -> ODataError:
        if self.expired_response == "redirect":
            target = request.path + (f"?{request.raw_query}" if request.raw_query else "")
            location = f"/Login/NuiLogin.aspx?ReturnUrl={quote(target, safe='')}"
            html = (f'<html><head><title>Object moved</title></head><body><h2>Object moved to '
                    f'<a href="{location}">here</a>.</h2></body></html>')
            return ODataError(302, {}, [("Location", location)], html=html)
        return ODataError(401, _AUTH_FAILED, odata=False)
