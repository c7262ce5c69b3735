"""The sandbox licence-key ("certificate") format, read by ``PUT /api/customer``.

Real Webitel licence keys are signed by Webitel and opaque to us, so the sandbox defines its own::

    WCS1.<base64url(payload JSON, no padding)>.<base64url(HMAC-SHA256(signing_key, payload_bytes))>

The payload is a JSON object::

    {"customer": {"id": str, "organization": str},
     "issued_at": <ms>,
     "licenses": [{"id": serial, "product": str, "name": str, "not_before": <ms>, "not_after": <ms>,
                   "limit": int, "competitive": bool, "scope": [str, ...]}, ...]}

``name``, ``competitive`` and ``scope`` may be left out of a licence (they default to "", false and
[]); every other field is required. The signing key is ``SeedData.credentials.license_signing_key``.
Error reasons never contain the key text itself, so they are safe to put in an HTTP error body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time

PREFIX = "WCS1"
DEFAULT_CUSTOMER = {"id": "5f0c3c1e-7a53-4b8e-9d39-0b1c2e5a7f10", "organization": "Webitel Sandbox"}

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class CertificateError(ValueError):
    """A licence key that cannot be used; ``reason`` says why in words safe to show a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str, part: str) -> bytes:
    # urlsafe_b64decode silently drops characters outside the alphabet, so check them first.
    if not text or not _B64URL.match(text) or len(text) % 4 == 1:
        raise CertificateError(f"{part} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CertificateError(f"{part} is not base64url") from None


def _sign(payload: bytes, key: str) -> bytes:
    return hmac.new(key.encode("utf-8"), payload, hashlib.sha256).digest()


def sign_payload(payload: bytes, key: str) -> str:
    """Wrap raw payload bytes into a signed key without checking them.

    Tests use it to build keys whose signature is right but whose payload is not (bad JSON,
    missing fields); ``make_certificate`` is the normal way to build a key.

    Args:
        payload: The exact bytes to sign and embed.
        key: The signing key.

    Returns:
        The key text ``WCS1.<payload>.<signature>``.
    """
    return f"{PREFIX}.{_b64encode(payload)}.{_b64encode(_sign(payload, key))}"


def make_certificate(
    licenses: list[dict],
    key: str,
    *,
    customer: dict | None = None,
    issued_at: int | None = None,
) -> str:
    """Build a signed sandbox licence key.

    Args:
        licenses: Licence dicts in the seed vocabulary (``id``, ``product``, ``name``,
            ``not_before``, ``not_after``, ``limit``, ``competitive``, ``scope``); other keys are dropped.
        key: The signing key (``credentials.license_signing_key``).
        customer: ``{"id", "organization"}`` the key is issued to; defaults to ``DEFAULT_CUSTOMER``,
            which is also the sandbox server's customer.
        issued_at: Issue time in ms; defaults to the wall clock.

    Returns:
        The key text, ready for ``PUT /api/customer`` ``{"certificate": ...}``.
    """
    fields = ("id", "product", "name", "not_before", "not_after", "limit", "competitive", "scope")
    payload = {
        "customer": dict(customer or DEFAULT_CUSTOMER),
        "issued_at": int(time.time() * 1000) if issued_at is None else issued_at,
        "licenses": [{name: lic[name] for name in fields if name in lic} for lic in licenses],
    }
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return sign_payload(raw, key)


def read_certificate(text: str, key: str) -> dict:
    """Check a sandbox licence key and return its payload, normalised.

    Args:
        text: The key as uploaded; surrounding whitespace is ignored (keys get pasted).
        key: The signing key.

    Returns:
        ``{"customer": {"id", "organization"}, "issued_at": int, "licenses": [dict, ...]}`` where every
        licence has all eight fields with their proper types.

    Raises:
        CertificateError: Wrong prefix or shape, not base64url, bad signature, not JSON, or a
            missing or mistyped field.
    """
    if not isinstance(text, str):
        raise CertificateError("certificate must be a string")
    parts = text.strip().split(".")
    if parts[0] != PREFIX:
        raise CertificateError(f"wrong prefix: expected {PREFIX}")
    if len(parts) != 3:
        raise CertificateError("malformed: expected three dot-separated parts")
    payload = _b64decode(parts[1], "payload")
    signature = _b64decode(parts[2], "signature")
    # The signature is checked before parsing so tampered bytes are never interpreted.
    if not hmac.compare_digest(signature, _sign(payload, key)):
        raise CertificateError("bad signature")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertificateError("payload is not JSON") from None
    return _check_payload(data)


def _require(obj: dict, name: str, kind: type | tuple[type, ...], where: str):
    if name not in obj:
        raise CertificateError(f"missing field: {where}{name}")
    value = obj[name]
    # bool is an int subclass; a licence limit of true is a mistake, not 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CertificateError(f"wrong type: {where}{name}")
    return value


def _check_payload(data: object) -> dict:
    if not isinstance(data, dict):
        raise CertificateError("payload is not a JSON object")
    customer = _require(data, "customer", dict, "")
    out_customer = {
        "id": _require(customer, "id", str, "customer."),
        "organization": _require(customer, "organization", str, "customer."),
    }
    issued_at = _require(data, "issued_at", int, "")
    licenses = []
    for index, lic in enumerate(_require(data, "licenses", list, "")):
        where = f"licenses[{index}]."
        if not isinstance(lic, dict):
            raise CertificateError(f"wrong type: licenses[{index}]")
        scope = lic.get("scope", [])
        if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
            raise CertificateError(f"wrong type: {where}scope")
        out = {
            "id": _require(lic, "id", str, where),
            "product": _require(lic, "product", str, where),
            "name": lic.get("name", "") if isinstance(lic.get("name", ""), str) else None,
            "not_before": _require(lic, "not_before", int, where),
            "not_after": _require(lic, "not_after", int, where),
            "limit": _require(lic, "limit", int, where),
            "competitive": lic.get("competitive", False),
            "scope": list(scope),
        }
        if out["name"] is None:
            raise CertificateError(f"wrong type: {where}name")
        if not isinstance(out["competitive"], bool):
            raise CertificateError(f"wrong type: {where}competitive")
        if not out["id"] or not out["product"]:
            raise CertificateError(f"missing field: {where}{'id' if not out['id'] else 'product'}")
        if out["limit"] < 0:
            raise CertificateError(f"wrong value: {where}limit")
        licenses.append(out)
    return {"customer": out_customer, "issued_at": issued_at, "licenses": licenses}
