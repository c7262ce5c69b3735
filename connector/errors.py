"""The one error hierarchy of webitel-creatio-sync, grouped by what the caller does next.

::

    SyncError                      root of everything this project raises on purpose
    ├── ConfigError                bad configuration or usage: fix the config (exit 2)
    ├── ConnectorError             talking to Webitel or Creatio went wrong
    │   ├── TransientError         timeouts, dropped connections, 429, 5xx: retried, fatal once
    │   │   │                      attempts run out
    │   │   ├── Unreachable        refused, DNS, TLS, connect timeout: named, retried little
    │   │   └── RateLimited        429, carries the server's Retry-After
    │   ├── ApiError               the server gave a definite answer: not retried
    │   │   ├── AuthError          401 or a failed login: stop the run
    │   │   ├── PermissionDenied   403 that a re-login did not cure: stop or skip
    │   │   ├── NotFound           404 (also a LookupError)
    │   │   ├── Conflict           a uniqueness clash (409, duplicate key): report, never retry
    │   │   └── BadRequest         other 4xx (also a ValueError): this record is wrong
    │   └── BadResponse            an answer we cannot read (HTML instead of JSON, bad shape)
    ├── RecordError                one record cannot be processed: report it, the run goes on
    ├── Refused                    an administrator's action breaks a sync rule (a licence refusal)
    └── StateError                 the state store cannot serve this run
        ├── LockBusy               another run holds the run lock: try again later
        └── StateSchemaError       the store was written by a newer version: upgrade this one

Every ``ConnectorError`` carries the system, method, URL *path* (never the query string, which
may hold personal data), status, the server's error id and message, and the request id when one
is given. Messages are built by ``ConnectorError.__str__`` from those fields only, so a secret can
reach an error only if a server echoes it. ``HttpClient`` scrubs a server's error body before it
reads a message from it; as a last line of defence every ``ConnectorError`` and ``RecordError``
scrubs its text fields, when it is made, of every secret a live client holds
(``connector.secrets``: passwords, tokens, session cookies, in all their encodings).
"""

from __future__ import annotations

from typing import Iterable

from . import secrets as _secrets


class SyncError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(SyncError):
    """The configuration or the command line is wrong; ``exit 2``.

    Args:
        message: what is wrong, naming the file and the key path where known.
    """


class ConnectorError(SyncError):
    """A call to Webitel or Creatio failed."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        error_id: str = "",
        request_id: str = "",
    ) -> None:
        held = _secrets.live_secrets()
        message, path, error_id, request_id = (
            _secrets.redact(text, held) for text in (message, path, error_id, request_id))
        super().__init__(message)
        self.message = message
        self.system = system
        self.method = method
        self.path = path
        self.status = status
        self.error_id = error_id
        self.request_id = request_id

    def __str__(self) -> str:
        where = " ".join(part for part in (self.system, self.method, self.path) if part)
        status = f" -> {self.status}" if self.status is not None else ""
        ident = f" [{self.error_id}]" if self.error_id else ""
        req = f" (request {self.request_id})" if self.request_id else ""
        head = f"{where}{status}{ident}: " if where or status else ""
        return f"{head}{self.message}{req}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(system={self.system!r}, method={self.method!r}, path={self.path!r}, "
            f"status={self.status!r}, error_id={self.error_id!r}, message={self.message!r})"
        )


class TransientError(ConnectorError):
    """A failure that may pass: timeouts, dropped connections, 429 and 5xx.

    ``maybe_processed`` says whether the server may have acted on the request before failing
    (a read timeout, a 502 from a proxy). A request that may have been processed is retried only
    when it is idempotent.
    """

    def __init__(self, message: str, *, maybe_processed: bool = True, retry_after: float | None = None,
                 **fields) -> None:
        super().__init__(message, **fields)
        self.maybe_processed = maybe_processed
        self.retry_after = retry_after


class Unreachable(TransientError):
    """The server could not be reached at all; ``reason`` says how, for the operator.

    ``refused`` (nothing listens there), ``dns`` (the host name does not resolve), ``tls`` (the
    certificate or the handshake failed), ``timeout`` (no connection in time), ``dropped`` (the
    connection broke). A refused or unresolvable address is retried at most ``RETRIES[reason]``
    times: a wrong address does not become right in a few seconds, and an operator waits.
    """

    RETRIES = {"refused": 2, "dns": 2, "tls": 0}

    def __init__(self, message: str, *, reason: str, **fields) -> None:
        super().__init__(message, **fields)
        self.reason = reason


class RateLimited(TransientError):
    """429 Too Many Requests: the server did not act on the request."""

    def __init__(self, message: str, *, retry_after: float | None = None, **fields) -> None:
        super().__init__(message, maybe_processed=False, retry_after=retry_after, **fields)


class ApiError(ConnectorError):
    """The server answered with a definite error; repeating the request will not help."""


class AuthError(ApiError):
    """401, or a login that the server refused (wrong credentials, locked user, expired password)."""


class PermissionDenied(ApiError):
    """403: the credentials are valid but lack a right (or a licence) for this call."""


class NotFound(ApiError, LookupError):
    """404: the object or route does not exist."""


class Conflict(ApiError):
    """A uniqueness clash: duplicate username, extension, e-mail or primary key.

    ``field`` names the clashing field when the server says which (``username``, ``extension``,
    ``email``, ``Id``).
    """

    def __init__(self, message: str, *, field: str = "", **fields) -> None:
        super().__init__(message, **fields)
        self.field = field


class BadRequest(ApiError, ValueError):
    """Another 4xx: the request (usually one record) is wrong."""


class BadResponse(ConnectorError):
    """The server answered something we cannot read: HTML for JSON, a body of the wrong shape."""


class RecordError(SyncError):
    """One record cannot be processed; it is reported and the run goes on.

    Args:
        message: what is wrong.
        system: "webitel" or "creatio".
        object: the object kind, e.g. "user", "Contact".
        record: the record's identity as an admin knows it, e.g. ``"ann (id 17)"``.
        field: the offending field, when one is to blame.
    """

    def __init__(self, message: str, *, system: str = "", object: str = "", record: str = "",
                 field: str = "") -> None:
        held = _secrets.live_secrets()
        message, record, field = (_secrets.redact(text, held) for text in (message, record, field))
        super().__init__(message)
        self.message = message
        self.system = system
        self.object = object
        self.record = record
        self.field = field

    def __str__(self) -> str:
        who = " ".join(part for part in (self.system, self.object, self.record) if part)
        field = f" field {self.field!r}" if self.field else ""
        return f"{who}{field}: {self.message}" if who or field else self.message


class Refused(SyncError):
    """An administrator's action breaks a sync rule (a licence expired, not yet valid, no seat left,
    an unknown user); nothing was changed."""


class StateError(SyncError):
    """The state store cannot serve this run."""


class LockBusy(StateError):
    """The run lock is held by someone else (another run is in progress); ``holder`` describes them."""

    def __init__(self, name: str, holder: dict | None) -> None:
        self.name = name
        self.holder = holder
        if holder:
            who = (f"{holder['holder']} (host {holder['host']}, pid {holder['pid']}, since "
                   f"{holder['acquired_at']:%Y-%m-%d %H:%M:%S} UTC, lease until "
                   f"{holder['expires_at']:%H:%M:%S} UTC)")
        else:
            who = "another worker"
        super().__init__(f"another run is in progress: run lock {name!r} is held by {who}")


class StateSchemaError(StateError):
    """The database holds a state store written by a newer version of this program."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value in ``text`` with ``***``, in every form it may take.

    Args:
        text: any text about to reach a log, a report or an exception.
        secrets: the secret values in force (passwords, tokens, cookies); empty ones are ignored.
            Values under 8 characters are replaced only as whole tokens (``connector.secrets``).
    """
    return _secrets.redact(text, secrets)


def cut(text: str, limit: int = 300) -> str:
    """``text`` on one line (runs of white space as one space), at most ``limit`` characters.

    Text a server wrote is cut before it becomes part of an error: a body echoed into a message
    must not carry megabytes into logs, reports and the state store.
    """
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
