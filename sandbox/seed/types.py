"""The shape of sandbox data, shared by the generator (``sandbox.seed``) and both apps.

Everything is plain dicts in the wire vocabulary of each system, so the apps load it as it stands.

Webitel user dict: ``{"id": int, "username": str, "name": str, "email": str, "extension": str,
"license": [serial, ...], "deleted": bool}``; empty strings and empty lists mean "not set" (the
server omits them on the wire).

Webitel licence dict: ``{"id": serial (uuid str), "product": str, "name": str, "not_before": ms,
"not_after": ms, "limit": int, "competitive": bool, "scope": [str, ...]}``; ``remain`` is derived
by the server from the grants.

Creatio rows: ``creatio[entity]`` is a list of dicts keyed by OData column names (``Id`` as a
lower-case GUID string, lookups as ``<Column>Id``, the all-zero GUID for an empty lookup).
``CreatedOn``/``ModifiedOn`` may be omitted; the server fills them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Credentials:
    webitel_username: str = "admin"
    webitel_password: str = "webitel-sandbox-password"
    webitel_domain: str = "demo.webitel.local"
    webitel_token: str = "wbt-sandbox-access-token"
    creatio_username: str = "Supervisor"
    creatio_password: str = "creatio-sandbox-password"
    creatio_client_id: str = "sandbox-client"
    creatio_client_secret: str = "creatio-sandbox-client-secret"
    license_signing_key: str = "sandbox-license-signing-key"


@dataclass
class SeedData:
    domain: str
    webitel_users: list[dict] = field(default_factory=list)
    licenses: list[dict] = field(default_factory=list)
    creatio: dict[str, list[dict]] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials)
    # What the generator planted on purpose, for the demo's explanation and for tests:
    # e.g. {"ambiguous_names": [...], "duplicate_extensions": [...], "no_extension": [...],
    #       "expired_license": serial, "expiring_license": serial, "full_license": serial}
    notes: dict = field(default_factory=dict)
