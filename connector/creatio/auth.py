"""Creatio authentication: forms (cookie) login or OAuth 2.0 client credentials.

Both implement ``connector.http.Auth``; ``HttpClient.request`` allows one re-login per attempt
when ``needs_relogin`` says the session died.

Forms (reference creatio-api.md sections 1.1-1.3): ``AuthService.svc/Login`` sets the session
cookies (``.ASPXAUTH``, ``BPMCSRF``, ...) in the session's cookie jar; every later request carries
them plus the headers ``BPMCSRF: <cookie>`` and ``ForceUseSession: true``. A dead session shows as
401, a redirect to the login page, a 403 (stale CSRF token) or a login page served with 200.

OAuth (section 1.4): a bearer token from ``{identity_url}/connect/token``, cached for its lifetime.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

import requests
from pydantic import SecretStr

from ..errors import ApiError, AuthError, BadResponse, cut
from ..http import MAX_ID, HttpClient, json_body
from ..settings import CreatioSettings

log = logging.getLogger(__name__)

LOGIN_PATH = "/ServiceModel/AuthService.svc/Login"
TOKEN_PATH = "/connect/token"
SESSION_COOKIES = (".ASPXAUTH", "BPMCSRF")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Renew a token this long before it expires, so a request never leaves with a dying token.
RENEW_MARGIN_S = 60.0
DEFAULT_TOKEN_LIFETIME_S = 3600.0


def cookie_value(jar: requests.cookies.RequestsCookieJar, name: str) -> str | None:
    """The value of cookie ``name`` (the last one set if several paths carry it), or None."""
    value = None
    for cookie in jar:
        if cookie.name == name:
            value = cookie.value
    return value


class FormsAuth:
    """User name and password through ``AuthService.svc/Login``.

    Args:
        username: the Creatio login.
        password: its password; revealed only into the login body.
        site_url: the site root, e.g. ``https://mycompany.creatio.com``.
    """

    def __init__(self, username: str, password: SecretStr, *, site_url: str) -> None:
        self.username = username
        self._password = password
        # Decision: the unprefixed path; it works on .NET Framework and .NET sites alike (section 1.1).
        self.login_url = site_url.rstrip("/") + LOGIN_PATH
        self._logged_in = False
        self._lock = threading.Lock()

    def apply(self, http: HttpClient, headers: dict[str, str]) -> None:
        """Log in if there is no session yet, then add the CSRF and session headers."""
        if not self._has_session(http):
            with self._lock:  # parallel first requests log in once
                if not self._has_session(http):
                    http.login()
        csrf = cookie_value(http.session.cookies, "BPMCSRF")
        if csrf:
            headers["BPMCSRF"] = csrf
        headers["ForceUseSession"] = "true"

    def _has_session(self, http: HttpClient) -> bool:
        # A site with CSRF checks off sets no BPMCSRF, and .NET sites may not use .ASPXAUTH:
        # once a login succeeded, a missing cookie is left to needs_relogin instead of a login
        # before every request.
        return self._logged_in or any(cookie_value(http.session.cookies, name) for name in SESSION_COOKIES)

    def needs_relogin(self, response: requests.Response) -> bool:
        """401, a redirect to the login page, a 403 (stale CSRF token) or a login page with 200."""
        status = response.status_code
        if status in (401, 403):
            return True
        if status in REDIRECTS:
            return "login" in response.headers.get("Location", "").lower()
        if status == 200 and "text/html" in response.headers.get("Content-Type", "").lower():
            return "NuiLogin" in response.text
        return False

    def login(self, http: HttpClient) -> None:
        """Log in and keep the session cookies in ``http.session``.

        Raises:
            AuthError: the server refused the credentials (``Code != 0``) or answered without a
                numeric ``Code``.
        """
        body = {"UserName": self.username, "UserPassword": self._password.get_secret_value()}
        # A login creates no data, so repeating it after a transient fault is harmless. Bad
        # credentials answer 200 with Code 1, which is never retried (that would lock the user).
        response = http.request("POST", self.login_url, route=LOGIN_PATH, json=body,
                                headers={"ForceUseSession": "true"}, authenticated=False, idempotent=True)
        fields = dict(system="creatio", method="POST", path=LOGIN_PATH, status=response.status_code)
        try:
            payload = json_body(response, system="creatio")
        except BadResponse:
            payload = None  # an HTML page instead of the JSON envelope: no numeric Code
        code = payload.get("Code") if isinstance(payload, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise AuthError("login answered without a numeric Code", **fields)
        if code != 0:
            message = cut(http.scrub(str(payload.get("Message") or "login refused")))
            raise AuthError(f"login refused (Code {code}): {message}", error_id=cut(str(code), MAX_ID),
                            **fields)
        self._logged_in = True
        if not any(cookie_value(http.session.cookies, name) for name in SESSION_COOKIES):
            log.warning("creatio login succeeded but set neither .ASPXAUTH nor BPMCSRF")

    def secrets(self) -> list[str]:
        """The password; the session's cookies (``.ASPXAUTH``, ``BPMCSRF``, ...) are the
        ``HttpClient``'s, which holds every cookie value the session got as a secret."""
        return [self._password.get_secret_value()]

    def __repr__(self) -> str:
        return f"FormsAuth(username={self.username!r}, password=**********, login_url={self.login_url!r})"


class OAuthAuth:
    """OAuth 2.0 client credentials against Creatio's Identity Service.

    Args:
        identity_url: the Identity Service root (system setting ``OAuth20IdentityServerUrl``).
        client_id: the integrated application's client id.
        client_secret: its secret; revealed only into the token request body.
        clock: monotonic seconds, injected so tests control the token's age.
    """

    def __init__(self, identity_url: str, client_id: str, client_secret: SecretStr, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token_url = identity_url.rstrip("/") + TOKEN_PATH
        self.client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        # Decision: the last few tokens stay secrets after renewal: a renewed token is still valid
        # at the Identity Service until it expires, and an error about it may be logged later.
        self._tokens: deque[str] = deque(maxlen=8)
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._renew_at

    def apply(self, http: HttpClient, headers: dict[str, str]) -> None:
        """Fetch a token if there is none or it is about to expire; add the bearer header."""
        if not self._valid():
            with self._lock:
                if not self._valid():
                    http.login()
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"

    def needs_relogin(self, response: requests.Response) -> bool:
        """An expired or revoked token answers 401 (section 1.4)."""
        return response.status_code == 401

    def login(self, http: HttpClient) -> None:
        """Fetch a new token.

        Raises:
            AuthError: the Identity Service refused the client (e.g. ``invalid_client``) or
                answered without a token.
        """
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self._client_secret.get_secret_value()}
        # The lifetime counts from the moment the request leaves, not when the answer arrives.
        sent_at = self._clock()
        try:
            response = http.request("POST", self.token_url, route=TOKEN_PATH, data=form,
                                    authenticated=False, idempotent=True)
        except ApiError as exc:
            if isinstance(exc, AuthError):
                raise
            # invalid_client / invalid_grant answer 400: a credentials problem, not a bad record.
            raise AuthError(f"token request refused: {exc.message}", system="creatio", method="POST",
                            path=TOKEN_PATH, status=exc.status, error_id=exc.error_id) from None
        payload = json_body(response, system="creatio")
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            error = payload.get("error") if isinstance(payload, dict) else None
            error = cut(http.scrub(str(error)), MAX_ID) if error else "no error given"
            raise AuthError(f"token request answered without an access token ({error})",
                            system="creatio", method="POST", path=TOKEN_PATH, status=response.status_code)
        lifetime = payload.get("expires_in", DEFAULT_TOKEN_LIFETIME_S)
        try:
            lifetime = float(lifetime)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME_S
        # A very short lifetime still gets half of it used, rather than a fetch before every call.
        self._renew_at = sent_at + lifetime - min(RENEW_MARGIN_S, lifetime / 2)
        self._tokens.append(token)
        self._token = token

    def secrets(self) -> list[str]:
        """The client secret and the access tokens fetched (the last few)."""
        return [s for s in (self._client_secret.get_secret_value(), *self._tokens) if s]

    def __repr__(self) -> str:
        return (f"OAuthAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
                "client_secret=**********)")


def make_auth(settings: CreatioSettings, *,
              clock: Callable[[], float] = time.monotonic) -> FormsAuth | OAuthAuth:
    """The auth for ``settings.auth`` (``CreatioSettings`` has already checked the credentials)."""
    if settings.auth == "oauth":
        assert settings.identity_url and settings.client_id and settings.client_secret
        return OAuthAuth(settings.identity_url, settings.client_id, settings.client_secret, clock=clock)
    assert settings.username and settings.password
    return FormsAuth(settings.username, settings.password, site_url=settings.url)
