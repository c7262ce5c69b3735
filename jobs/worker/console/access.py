"""Who may use the API and the console: the network rule, the bearer token, logins and sessions.

Three rules, in this order, for every path but ``/healthz`` and ``/metrics`` (probes stay open):

1. **The network.** Without a ``[console] token`` nothing proves who is asking, so only this
   machine may ask: a client that is not on loopback, a ``Host`` that names another machine (DNS
   rebinding: a web page of another site resolving its name to 127.0.0.1) and a request forwarded
   by a proxy (which would make every visitor look local) are all refused with 403.
2. **The API** (``/api/...``) wants ``Authorization: Bearer <token>`` when a token is configured,
   and answers 401 otherwise. Without a token (loopback only), a ``POST`` must still be JSON: a
   browser cannot send that to another site without asking first, so a page open in a browser on
   this machine cannot start runs behind the administrator's back.
3. **The pages** want a login (the token, or ``[console] password``) when either is configured.
   Sessions live in this process only (a restart logs everyone out, and a cookie carries nothing
   but a random id): the cookie is HttpOnly and SameSite=Strict, and every form carries the
   session's CSRF token, checked on every ``POST``.

Secrets are compared in constant time and never echoed: no answer, page or log line repeats one.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

COOKIE = "wcsync_session"
SESSION_IDLE_S = 12 * 3600
SESSION_LIMIT = 2000  # sessions kept at most; the oldest go first (a flood of visitors cannot fill memory)
LOGIN_FAILURES = 5  # failed logins from one address within LOGIN_WINDOW_S before it must wait
LOGIN_WINDOW_S = 15 * 60
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _secret_text(value: Any) -> str | None:
    """A setting's secret as text (``SecretStr`` or plain), None when unset or blank."""
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _host_name(header: str) -> str:
    """``Host`` without its port (``[::1]:9108`` -> ``[::1]``, ``localhost:9108`` -> ``localhost``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass
class Session:
    """One browser's session: its CSRF token, whether it logged in, and messages for its next page."""

    sid: str
    csrf: str
    seen: float
    authenticated: bool = False
    flashes: list[tuple[str, str]] = field(default_factory=list)


class Access:
    """The rules above for one configuration.

    Args:
        token: ``[console] token``: the API's bearer token, and a console login.
        password: ``[console] password``: another console login (for people, not scripts).
    """

    def __init__(self, token: str | None = None, password: str | None = None) -> None:
        self._token = token or None
        self._password = password or None
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> Access:
        """From ``[console]`` (read with ``getattr``: a configuration without the section has no secrets)."""
        console = getattr(config, "console", None)
        return cls(
            _secret_text(getattr(console, "token", None)), _secret_text(getattr(console, "password", None))
        )

    def secrets(self) -> list[str]:
        """The values to scrub from every log line."""
        return [s for s in (self._token, self._password) if s]

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def login_required(self) -> bool:
        return self._token is not None or self._password is not None

    # --- rule 1: the network ---------------------------------------------------------------

    def network_refusal(self, request: Request) -> str | None:
        """Why this request may not reach the API or the console at all, or None."""
        if self._token is not None:
            return None
        client = request.client.host if request.client else None
        if not is_loopback(client):
            return "the console and the API answer only on this machine until [console] token is set"
        if _host_name(request.headers.get("host", "")) not in LOOPBACK_NAMES:
            return "only http://127.0.0.1 or http://localhost may be used until [console] token is set"
        if any(name in request.headers for name in ("forwarded", "x-forwarded-for", "x-real-ip")):
            return "a request through a proxy needs [console] token to be set"
        return None

    # --- rule 2: the API -------------------------------------------------------------------

    def api_refusal(self, request: Request) -> tuple[int, str] | None:
        """``(status, reason)`` when an API request may not go on, else None."""
        if self._token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not _same(given.strip(), self._token):
                return 401, "a bearer token is required: Authorization: Bearer <[console] token>"
            return None
        if request.method == "POST":
            kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return 415, "send the body as JSON (Content-Type: application/json)"
        return None

    # --- rule 3: the pages -----------------------------------------------------------------

    def session(self, request: Request, *, create: bool = True) -> Session | None:
        """The request's session; a new one (not yet sent) when it has none and ``create``."""
        sid = request.cookies.get(COOKIE, "")
        now = time.monotonic()
        with self._guard:
            found = self._sessions.get(sid)
            if found is not None and now - found.seen > SESSION_IDLE_S:
                del self._sessions[sid]
                found = None
            if found is not None:
                found.seen = now
                return found
            if not create:
                return None
            return self._new_session(now)

    def _new_session(self, now: float) -> Session:
        while len(self._sessions) >= SESSION_LIMIT:
            # Visitors who never logged in go first: a flood of them cannot log an administrator out.
            oldest = min(self._sessions.values(), key=lambda s: (s.authenticated, s.seen))
            del self._sessions[oldest.sid]
        made = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            seen=now,
            authenticated=not self.login_required,
        )
        self._sessions[made.sid] = made
        return made

    def signed_in(self, session: Session | None) -> bool:
        return session is not None and (session.authenticated or not self.login_required)

    def csrf_ok(self, session: Session | None, given: str | None) -> bool:
        return session is not None and bool(given) and _same(str(given), session.csrf)

    def login(self, session: Session, secret: str, client: str) -> Session | None:
        """A new, signed-in session when ``secret`` is the token or the password; None otherwise.

        The session id changes at login, so an id planted in a browser before (session fixation)
        is worth nothing after it.
        """
        if self.throttled(client):
            return None
        good = any(_same(secret, known) for known in (self._token, self._password) if known)
        with self._guard:
            if not good:
                self._failures.setdefault(client, []).append(time.monotonic())
                return None
            self._failures.pop(client, None)
            self._sessions.pop(session.sid, None)
            fresh = self._new_session(time.monotonic())
            fresh.authenticated = True
            fresh.flashes = session.flashes
            return fresh

    def throttled(self, client: str) -> bool:
        """Whether ``client`` failed to log in too often lately (it waits out ``LOGIN_WINDOW_S``)."""
        now = time.monotonic()
        with self._guard:
            recent = [t for t in self._failures.get(client, []) if now - t < LOGIN_WINDOW_S]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            return len(recent) >= LOGIN_FAILURES

    def logout(self, session: Session) -> None:
        with self._guard:
            self._sessions.pop(session.sid, None)


def _same(given: str, known: str) -> bool:
    """Constant-time comparison (of the UTF-8 bytes: ``compare_digest`` takes ASCII text only)."""
    return hmac.compare_digest(given.encode(), known.encode())
