"""The sandbox licence-key format: round trip and every refusal reason."""

from __future__ import annotations

import base64
import json

import pytest

from sandbox.webitel.certificate import (
    DEFAULT_CUSTOMER, CertificateError, make_certificate, read_certificate, sign_payload,
)

KEY = "test-signing-key"
LICENSE = {
    "id": "serial-1", "product": "CALL_CENTER", "name": "Call centre", "not_before": 1_000,
    "not_after": 2_000, "limit": 10, "competitive": False, "scope": ["cc_agent", "users"],
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: object) -> str:
    return sign_payload(json.dumps(payload).encode(), KEY)


def _reason(text: str, key: str = KEY) -> str:
    with pytest.raises(CertificateError) as caught:
        read_certificate(text, key)
    return caught.value.reason


def test_round_trip_keeps_every_field():
    text = make_certificate([LICENSE], KEY, issued_at=1_500)
    assert text.startswith("WCS1.") and text.count(".") == 2
    assert read_certificate(text, KEY) == {
        "customer": DEFAULT_CUSTOMER, "issued_at": 1_500, "licenses": [LICENSE],
    }


def test_custom_customer_and_surrounding_whitespace():
    customer = {"id": "c-2", "organization": "Acme"}
    text = make_certificate([], KEY, customer=customer, issued_at=7)
    assert read_certificate(f"\n  {text}\n", KEY) == {"customer": customer, "issued_at": 7, "licenses": []}


def test_optional_licence_fields_default():
    lic = {k: v for k, v in LICENSE.items() if k not in ("name", "competitive", "scope")}
    payload = {"customer": DEFAULT_CUSTOMER, "issued_at": 1, "licenses": [lic]}
    got = read_certificate(_signed(payload), KEY)["licenses"][0]
    assert (got["name"], got["competitive"], got["scope"]) == ("", False, [])


def test_make_certificate_drops_unknown_licence_keys():
    text = make_certificate([{**LICENSE, "remain": 3, "users": []}], KEY, issued_at=1)
    assert read_certificate(text, KEY)["licenses"] == [LICENSE]


@pytest.mark.parametrize("text, reason", [
    ("", "wrong prefix: expected WCS1"),
    ("WCS2.abc.def", "wrong prefix: expected WCS1"),
    ("-----BEGIN CERTIFICATE-----", "wrong prefix: expected WCS1"),
    ("WCS1.abc", "malformed: expected three dot-separated parts"),
    ("WCS1.a.b.c", "malformed: expected three dot-separated parts"),
    ("WCS1.ab$c.def", "payload is not base64url"),
    ("WCS1..def", "payload is not base64url"),
    ("WCS1.abcd.d+f/", "signature is not base64url"),
    ("WCS1.abcde.abcd", "payload is not base64url"),
])
def test_malformed_keys_are_refused_with_a_reason(text, reason):
    assert _reason(text) == reason


def test_wrong_key_is_a_bad_signature():
    assert _reason(make_certificate([LICENSE], "another-key")) == "bad signature"


def test_tampered_payload_is_a_bad_signature():
    prefix, payload, signature = make_certificate([LICENSE], KEY, issued_at=1).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["licenses"][0]["not_after"] = 9_999_999
    assert _reason(f"{prefix}.{_b64(json.dumps(data).encode())}.{signature}") == "bad signature"


def test_signed_garbage_is_not_json():
    assert _reason(sign_payload(b"not json {", KEY)) == "payload is not JSON"
    assert _reason(sign_payload(b"\xff\xfe", KEY)) == "payload is not JSON"
    assert _reason(sign_payload(b"[1, 2]", KEY)) == "payload is not a JSON object"


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p.pop("customer"), "missing field: customer"),
    (lambda p: p["customer"].pop("organization"), "missing field: customer.organization"),
    (lambda p: p.pop("issued_at"), "missing field: issued_at"),
    (lambda p: p.update(issued_at="1"), "wrong type: issued_at"),
    (lambda p: p.pop("licenses"), "missing field: licenses"),
    (lambda p: p["licenses"][0].pop("product"), "missing field: licenses[0].product"),
    (lambda p: p["licenses"][0].pop("not_after"), "missing field: licenses[0].not_after"),
    (lambda p: p["licenses"][0].update(limit="5"), "wrong type: licenses[0].limit"),
    (lambda p: p["licenses"][0].update(limit=True), "wrong type: licenses[0].limit"),
    (lambda p: p["licenses"][0].update(limit=-1), "wrong value: licenses[0].limit"),
    (lambda p: p["licenses"][0].update(id=""), "missing field: licenses[0].id"),
    (lambda p: p["licenses"][0].update(scope="users"), "wrong type: licenses[0].scope"),
    (lambda p: p["licenses"][0].update(competitive="yes"), "wrong type: licenses[0].competitive"),
    (lambda p: p["licenses"].append("x"), "wrong type: licenses[1]"),
])
def test_missing_or_mistyped_fields_are_named(mutate, reason):
    payload = {"customer": dict(DEFAULT_CUSTOMER), "issued_at": 1, "licenses": [dict(LICENSE)]}
    mutate(payload)
    assert _reason(_signed(payload)) == reason


def test_reasons_never_contain_the_key_text():
    text = make_certificate([LICENSE], "other")
    reason = _reason(text)
    assert text.split(".")[1] not in reason and text.split(".")[2] not in reason
