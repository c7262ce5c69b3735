"""Licences, their holders and the customer (licence key upload) of the sandbox Webitel API.

Every function takes the ``WebitelApp`` as ``app`` and uses its ``store``, ``catalog``, ``customer``,
``domain``, ``now_ms``, ``stats`` and ``credentials``.
"""

from __future__ import annotations

from typing import Mapping

from sandbox.webitel.certificate import CertificateError, read_certificate
from sandbox.webitel.search import LICENSES_PAGE_DEFAULT, first, flag, like, listing, paging, sort_keys
from sandbox.webitel.wire import (
    DEFAULT_LICENSE_FIELDS, LICENSE_FIELDS, ApiError, license_wire, ms, object_id, omit_empty, page_body,
)

LICENSE_SORT_FIELDS = ("id", "product", "name", "not_before", "not_after", "limit", "remain", "competitive")
DOMAIN_ID = "1"  # the sandbox serves one domain (dc)


def remain_of(app, lic: dict) -> int:
    """Grants still available for a licence right now."""
    return app.catalog.remain(lic, app.store.holder_count(lic["id"]))


def _holders(app, serial: str) -> list[dict]:
    return [app.store.get(i) for i in sorted(app.store.holders(serial))]


def list_licenses(app, params: Mapping[str, list[str]]) -> dict:
    """``GET /license`` (≡ ``/products``): the licence catalogue, filtered, sorted and paged.

    Args:
        app: The WebitelApp.
        params: Query parameters: ``id``/``product`` (repeated), ``valid``, ``user.id``, ``q``,
            ``fields``, ``sort``, ``page``, ``size``.

    Returns:
        ``{page, next, items: [LicenseV1]}``.
    """
    page, size = paging(params, LICENSES_PAGE_DEFAULT)
    now = app.now_ms()
    serials = set(params.get("id", []))
    products = {p.lower() for p in params.get("product", [])}
    user_id = first(params, "user.id")
    held = None
    if user_id:
        user = app.store.get(int(user_id)) if user_id.isdigit() else None
        held = set(user["license"]) if user else set()
    pattern = like(first(params, "q")) if first(params, "q") else None
    valid_only = flag(params, "valid")
    rows = []
    for lic in app.catalog.all():
        remain = remain_of(app, lic)
        if (serials and lic["id"] not in serials) or (products and lic["product"].lower() not in products):
            continue
        if held is not None and lic["id"] not in held:
            continue
        if pattern and not (pattern.fullmatch(lic["product"]) or pattern.fullmatch(lic["name"])):
            continue
        # "valid": grantable now (customers.proto: only licences available to be granted).
        if valid_only and not (app.catalog.is_current(lic, now) and (lic["competitive"] or remain > 0)):
            continue
        rows.append((lic, remain))
    # Decision: without ``sort`` licences come in catalogue order (seed order, then new serials).
    for name, desc in reversed(sort_keys(params, LICENSE_SORT_FIELDS)):
        rows.sort(key=lambda row, n=name: row[1] if n == "remain" else row[0][n], reverse=desc)
    fields = [f for f in listing(params, "fields") if f in LICENSE_FIELDS] or list(DEFAULT_LICENSE_FIELDS)
    offset = (page - 1) * size
    chosen = rows[offset:offset + size]
    items = [license_wire(lic, remain, fields, _holders(app, lic["id"]) if "users" in fields else None)
             for lic, remain in chosen]
    return page_body(page, items, len(rows) > offset + size)


def product_users(app, serial: str, params: Mapping[str, list[str]]) -> dict:
    """``GET /products/{serial}/users``: who holds a licence, paged, optionally ``q`` on username.

    Raises:
        ApiError: 404 for an unknown serial.
    """
    lic = app.catalog.get(serial)
    if lic is None:
        raise ApiError(404, "app.license.not_found", f"license not found: {serial}")
    page, size = paging(params, LICENSES_PAGE_DEFAULT)
    holders = _holders(app, serial)
    if first(params, "q"):
        pattern = like(first(params, "q"))
        holders = [u for u in holders if pattern.fullmatch(u["username"])]
    offset = (page - 1) * size
    items = [
        # ``sessions`` counts active sessions of concurrent licences; always 0 here, so omitted.
        omit_empty({"user": object_id(user), "domain": {"id": DOMAIN_ID, "name": app.domain},
                    "issued_at": ms(lic["not_before"]), "expires_at": ms(lic["not_after"]), "sessions": 0})
        for user in holders[offset:offset + size]
    ]
    return page_body(page, items, len(holders) > offset + size)


def customer_wire(app) -> dict:
    """The Customer object, unwrapped; its not_before/not_after span all its licences."""
    # Decision: reference open question 9 — the gateway unwraps ``{"customer": ...}`` as it does
    # for users.
    lics = app.catalog.all()
    customer = app.customer
    return omit_empty({
        "id": customer["id"], "organization": customer["organization"],
        "created_at": ms(customer["created_at"]), "updated_at": ms(customer["updated_at"]),
        "issued_at": ms(customer["issued_at"]),
        "not_before": ms(min((lic["not_before"] for lic in lics), default=0)),
        "not_after": ms(max((lic["not_after"] for lic in lics), default=0)),
        "license": [license_wire(lic, remain_of(app, lic)) for lic in lics],
        "dnsrv": [{"id": DOMAIN_ID, "name": app.domain}],
    })


def _invalid(reason: str) -> ApiError:
    # The key itself is never echoed: it is a secret of the customer.
    return ApiError(400, "app.customer.certificate.invalid", f"invalid certificate: {reason}")


def upload_certificate(app, body: object, params: Mapping[str, list[str]]) -> dict:
    """``PUT /customer`` ``{"certificate": key}``: add new licences and extend existing ones.

    The upload is all-or-nothing. For a serial already in the catalogue the key replaces
    ``not_before``, ``not_after``, ``limit``, ``name`` and ``scope``; grants are kept.

    Returns:
        The updated Customer object.

    Raises:
        ApiError: 400 ``app.customer.certificate.invalid`` saying why the key was refused.
    """
    text = body.get("certificate") if isinstance(body, dict) else None
    # The spec lists ``certificate`` as a query parameter; the admin UI sends a body (reference §3.1).
    text = text or first(params, "certificate")
    if not text:
        raise _invalid("no certificate given")
    try:
        payload = read_certificate(text, app.credentials.license_signing_key)
    except CertificateError as error:
        raise _invalid(error.reason) from None
    if payload["customer"]["id"] != app.customer["id"]:
        # Decision: a key issued to another customer is refused rather than replacing the tenant.
        raise _invalid("issued to another customer")
    for lic in payload["licenses"]:
        known = app.catalog.get(lic["id"])
        # Decision: a serial keeps its product and kind; a key that changes them is refused.
        if known and (known["product"] != lic["product"] or known["competitive"] != lic["competitive"]):
            raise _invalid(f"license {lic['id']} changes product or kind")
    for lic in payload["licenses"]:
        app.catalog.put(lic)
    app.customer.update(organization=payload["customer"]["organization"] or app.customer["organization"],
                        issued_at=payload["issued_at"], updated_at=app.now_ms())
    app.stats.record_write()
    return customer_wire(app)
