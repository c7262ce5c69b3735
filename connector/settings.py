"""Settings of the two clients (the ``[webitel]``, ``[creatio]`` and ``[retry]`` tables).

Secrets are ``SecretStr``: their ``repr`` and ``str`` show ``**********`` and only
``get_secret_value()`` reveals them, at the moment a request needs them.

Limits against a server that misbehaves: ``timeout_s`` is the deadline of one request (connect and
the whole body), ``max_response_mb`` the largest body accepted, ``max_pages`` the most pages one
list read may take when the server gives no count to derive a limit from.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

log = logging.getLogger(__name__)

# Webitel's engine caps a page at 1000 rows and silently answers its default page for anything
# larger (webitel/engine model/search_list.go: PER_PAGE_MAXIMUM = 1000, PER_PAGE_DEFAULT = 40).
# Inferred: the webitel.go users/licence service shares the cap (its default page holds 16 rows in
# the vendor's recorded traffic); a larger setting is refused.
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
# Decision: 4 requests at a time by default: at 50 ms a round trip, a large import is then bound by
# the servers' work rather than the distance to them, and 4 connections are far below what a
# Creatio site (its web farm serves hundreds of browser users) or a Webitel server tolerates. A
# 429 or 503 halves it for as long as the server asks (connector.pool.Limiter).
DEFAULT_MAX_CONCURRENCY = 4
# Decision: 32 at most: Webitel and Creatio sites are single servers or small clusters, and more
# than a few dozen parallel requests from one client is a load test, not a sync.
MAX_CONCURRENCY = 32
# The OData 4 root is found on the site when odata_path is this (reference creatio-api.md 2.1).
ODATA_AUTO = "auto"
# Decision: path segments that begin a page or a service of a Creatio site, never its root: an
# address pasted from the browser (/0/Nui/ViewModule.aspx#..., /0/Shell/#Section/..., /Shell/...)
# or a service (/0/odata, /ServiceModel/...) is cut at the first of them. "0" is the workspace
# prefix of .NET Framework sites; the client adds it itself where it is needed.
CREATIO_PAGE_SEGMENTS = frozenset({"0", "shell", "nui", "clientapp", "login", "odata", "servicemodel",
                                   "viewmodule.aspx", "nuilogin.aspx"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// URL, e.g. https://host.example.com")
    return value.strip().rstrip("/")


def webitel_api_url(value: str) -> str:
    """The Webitel API base (``<server>/api``) of a server address written with or without ``/api``.

    ``https://webitel.example.com``, ``https://webitel.example.com/`` and
    ``https://webitel.example.com/api/`` all become ``https://webitel.example.com/api``: people
    write the address they open in the browser, the API lives under ``/api`` (reference
    webitel-api.md section 1.1).
    """
    url = _check_url(value)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("expected the server address without ?query or #fragment, "
                         "e.g. https://webitel.example.com")
    # Decision: a server published under a path of its own (https://host/webitel) keeps it.
    return url if parts.path.rstrip("/").lower().endswith("/api") else url + "/api"


# Decision: a pasted address is warned about once per process: a configuration loaded again
# (each scheduled cycle, each client) does not repeat the note.
_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def creatio_site_root(value: str) -> str:
    """The site root of a Creatio address, as written or pasted from the browser.

    A page address (``https://site/0/Nui/ViewModule.aspx#...``, ``https://site/0/Shell/#Section/...``,
    ``https://site/Shell/...``) is cut at its first page segment (``CREATIO_PAGE_SEGMENTS``), its
    query and its fragment; a log warning names what was cut, once per address. A site served
    under a folder of its own (``https://host/creatio``) keeps the folder.
    """
    url = _check_url(value)
    parts = urlsplit(url)
    segments = parts.path.split("/")
    cut_at = next((i for i, s in enumerate(segments) if s.lower() in CREATIO_PAGE_SEGMENTS), len(segments))
    root = f"{parts.scheme}://{parts.netloc}" + "/".join(segments[:cut_at]).rstrip("/")
    if root != url:
        dropped = url[len(root):]
        with _WARNED_LOCK:
            first = url not in _WARNED
            _WARNED.add(url)
        if first:
            log.warning("[creatio] url %s is a page address: using the site root %s (cut %s)",
                        url, root, dropped)
    return root


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

    url: str = Field(description="the server address, with or without /api: https://webitel.example.com")
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
    # Requests at once: PATCHes of users and of their licences (one per user).
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)

    _url = field_validator("url")(classmethod(lambda cls, v: webitel_api_url(v)))
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

    url: str = Field(description="site root, e.g. https://mycompany.creatio.com (a page address is cut)")
    # "auto": the client finds the OData 4 root (/0/odata on .NET Framework, /odata on .NET 8).
    odata_path: str = ODATA_AUTO
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
    # Requests at once: $batch writes and the chunks of a lookup.
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)

    _url = field_validator("url")(classmethod(lambda cls, v: creatio_site_root(v)))
    _ca_file = field_validator("ca_file")(classmethod(lambda cls, v: _check_ca_file(v)))

    @field_validator("identity_url")
    @classmethod
    def _identity_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("odata_path")
    @classmethod
    def _odata_path(cls, value: str) -> str:
        if value.strip().lower() == ODATA_AUTO:
            return ODATA_AUTO
        if not value.startswith("/"):
            raise ValueError('expected "auto" or a path starting with \'/\', e.g. /0/odata '
                             "(or /odata on .NET 8 sites)")
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
