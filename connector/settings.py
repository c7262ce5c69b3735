"""Settings of the two clients (the ``[webitel]``, ``[creatio]`` and ``[retry]`` tables).

Secrets are ``SecretStr``: their ``repr`` and ``str`` show ``**********`` and only
``get_secret_value()`` reveals them, at the moment a request needs them.

Limits against a server that misbehaves: ``timeout_s`` is the deadline of one request (connect and
the whole body), ``max_response_mb`` the largest body accepted, ``max_pages`` the most pages one
list read may take when the server gives no count to derive a limit from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# Webitel's engine caps a page at 1000 rows and silently answers 40 rows for anything larger
# (webitel/engine model/search_list.go: PER_PAGE_MAXIMUM = 1000, PER_PAGE_DEFAULT = 40).
# Inferred: the webitel.go users/licence service shares the rule; a larger setting is refused.
WEBITEL_MAX_PAGE_SIZE = 1000
# Creatio answers at most 20,000 records per OData request (reference creatio-api.md section 5).
CREATIO_MAX_PAGE_SIZE = 20000
CREATIO_MAX_BATCH = 100
# Decision: 32 MB for Webitel (a page of 1000 users is about 1 MB) and 64 MB for Creatio (a full
# page of 20,000 rows is about 10 MB, and a large site's $metadata some tens of MB).
WEBITEL_MAX_RESPONSE_MB = 32
CREATIO_MAX_RESPONSE_MB = 64
# Decision: 10,000 pages: ten million rows at the largest Webitel page, far more than any domain
# holds, yet a server that never ends a list is stopped after 10,000 requests rather than never.
DEFAULT_MAX_PAGES = 10_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// URL, e.g. https://host.example.com")
    return value.rstrip("/")


def _check_ca_file(value: str | None) -> str | None:
    """A CA bundle file (or a folder of hashed certificates) that exists and can be read."""
    if value is None:
        return None
    # Decision: checked with verify_tls = false too: the key names a file that must be there.
    # Inferred: a relative path is relative to the working directory, as requests reads it.
    path = Path(value).expanduser()
    try:
        if path.is_dir():
            os.listdir(path)  # Decision: a folder of c_rehash'ed certificates works too (requests)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
    except FileNotFoundError:
        raise ValueError(f"no such file: {value}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    return str(path)


class RetrySettings(_Section):
    """``[retry]``: bounds of the retry policy shared by both clients."""

    max_attempts: int = Field(5, ge=1, le=20)
    base_wait_s: float = Field(0.5, ge=0)
    max_wait_s: float = Field(30.0, ge=0)
    total_s: float = Field(120.0, gt=0)


class WebitelSettings(_Section):
    """``[webitel]``: where Webitel is and how to authenticate."""

    url: str = Field(description="API base URL including /api, e.g. https://webitel.example.com/api")
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    domain: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)
    page_size: int = Field(WEBITEL_MAX_PAGE_SIZE, ge=1, le=WEBITEL_MAX_PAGE_SIZE)
    max_response_mb: int = Field(WEBITEL_MAX_RESPONSE_MB, ge=1, le=4096)
    max_pages: int = Field(DEFAULT_MAX_PAGES, ge=1)

    _url = field_validator("url")(classmethod(lambda cls, v: _check_url(v)))
    _ca_file = field_validator("ca_file")(classmethod(lambda cls, v: _check_ca_file(v)))

    @model_validator(mode="after")
    def _credentials(self) -> "WebitelSettings":
        if self.token is None and not (self.username and self.password):
            raise ValueError(
                "missing credentials: set webitel.token, or webitel.username and webitel.password "
                "(secrets usually come from WCSYNC_WEBITEL__TOKEN / WCSYNC_WEBITEL__PASSWORD)"
            )
        return self

    @property
    def verify(self) -> bool | str:
        return self.ca_file if (self.verify_tls and self.ca_file) else self.verify_tls


class CreatioSettings(_Section):
    """``[creatio]``: where Creatio is and how to authenticate (the object model is ``jobs.config``'s)."""

    url: str = Field(description="site root, e.g. https://mycompany.creatio.com")
    odata_path: str = "/0/odata"
    auth: Literal["forms", "oauth"] = "forms"
    username: str | None = None
    password: SecretStr | None = None
    identity_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_s: float = Field(60.0, gt=0, le=600)
    page_size: int = Field(CREATIO_MAX_PAGE_SIZE, ge=1, le=CREATIO_MAX_PAGE_SIZE)
    batch_size: int = Field(CREATIO_MAX_BATCH, ge=1, le=CREATIO_MAX_BATCH)
    # IIS refuses query strings over 2048 characters by default (requestLimits maxQueryString);
    # lookups in chunks stay under this many characters of URL.
    max_url_length: int = Field(2000, ge=256, le=65536)
    max_response_mb: int = Field(CREATIO_MAX_RESPONSE_MB, ge=1, le=4096)
    # A read with $count stops at the pages the count allows; this caps reads without one.
    max_pages: int = Field(DEFAULT_MAX_PAGES, ge=1)

    _url = field_validator("url")(classmethod(lambda cls, v: _check_url(v)))
    _ca_file = field_validator("ca_file")(classmethod(lambda cls, v: _check_ca_file(v)))

    @field_validator("identity_url")
    @classmethod
    def _identity_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("odata_path")
    @classmethod
    def _odata_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected a path starting with '/', e.g. /0/odata (or /odata on .NET 8 sites)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials(self) -> "CreatioSettings":
        if self.auth == "forms" and not (self.username and self.password):
            raise ValueError(
                'missing credentials: auth = "forms" needs creatio.username and creatio.password '
                "(the password usually comes from WCSYNC_CREATIO__PASSWORD)"
            )
        if self.auth == "oauth" and not (self.identity_url and self.client_id and self.client_secret):
            raise ValueError(
                'missing credentials: auth = "oauth" needs creatio.identity_url, creatio.client_id '
                "and creatio.client_secret (the secret usually comes from WCSYNC_CREATIO__CLIENT_SECRET)"
            )
        return self

    @property
    def verify(self) -> bool | str:
        return self.ca_file if (self.verify_tls and self.ca_file) else self.verify_tls
