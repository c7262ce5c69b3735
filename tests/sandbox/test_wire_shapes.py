"""The sandbox's wire shapes, checked over real sockets with plain ``requests`` against the reference.

Each assertion names the reference fact it pins (reference/webitel-api.md, creatio-api.md).
"""

from __future__ import annotations

import requests
import pytest

from sandbox.harness import start_sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def box():
    with start_sandbox(30, seed=2, now_ms=1_790_000_000_000) as sandbox:
        yield sandbox


def webitel(box, method, path, **kw):
    headers = {"X-Webitel-Access": box.data.credentials.webitel_token, **kw.pop("headers", {})}
    return requests.request(method, f"{box.webitel_url}{path}", headers=headers, timeout=10, **kw)


def test_webitel_list_shape_ids_as_strings_and_default_fields(box):
    body = webitel(box, "GET", "/users", params={"page": 1, "size": 5}).json()
    assert body["page"] == 1 and body["next"] is True and len(body["items"]) == 5  # §1.5 {page,next,items}
    item = body["items"][0]
    assert isinstance(item["id"], str) and item["id"].isdigit()                        # §1.5 int64 as string
    default = {"id", "name", "username", "extension", "presence", "device", "contact"}
    assert set(item) <= default                                                        # §2.1 default output
    # The vendor's recorded traffic: device{id,name}, presence{status}, contact{id,name} on the items.
    items = webitel(box, "GET", "/users").json()["items"]
    assert len(items) == 16                                                           # its default page
    assert {"device", "presence", "contact"} <= {key for i in items for key in i}
    with_all = [i for i in items if {"device", "presence"} <= i.keys()][0]
    assert set(with_all["device"]) == {"id", "name"} and set(with_all["presence"]) == {"status"}
    asked = webitel(box, "GET", "/users", params=[("fields", "id"), ("fields", "email"), ("size", 1)]).json()
    assert set(asked["items"][0]) <= {"id", "email"}                                    # §1.5 fields=


def test_webitel_page_size_over_1000_falls_back_to_the_default_16(box):
    body = webitel(box, "GET", "/users", params={"size": 5000}).json()
    assert len(body["items"]) == 16 and body["next"] is True


def test_webitel_bare_user_object_and_error_body(box):
    first = next(i for i in webitel(box, "GET", "/users").json()["items"] if "device" in i)
    user = webitel(box, "GET", f"/users/{first['id']}").json()
    assert user["id"] == first["id"] and "user" not in user                            # §1.5 unwrapped
    assert {"devices", "roles", "created_by", "updated_by"} <= user.keys()          # the vendor's traffic
    assert all(set(entry) <= {"id", "prod", "issued_at", "expires_at"} for entry in user.get("license", []))
    missing = webitel(box, "GET", "/users/999999")
    assert missing.status_code == 404
    assert {"id", "code", "status", "detail"} <= missing.json().keys()                  # §4 error shape
    unauth = requests.get(f"{box.webitel_url}/users", timeout=10)
    assert unauth.status_code == 401 and unauth.json()["code"] == 401


def test_webitel_login_token_at_top_level(box):
    creds = box.data.credentials
    body = requests.post(f"{box.webitel_url}/login", json={"username": creds.webitel_username,
                                                           "password": creds.webitel_password,
                                                           "domain": box.data.domain}, timeout=10).json()
    assert body["token_type"] == "Bearer" and body["access_token"] and "authorization" not in body   # §1.2
    me = requests.get(f"{box.webitel_url}/userinfo", headers={"X-Webitel-Access": body["access_token"]},
                      timeout=10)
    assert me.status_code == 200 and me.json()["domain"]


def test_webitel_duplicate_extension_is_409_with_conflict_id(box):
    taken = next(u for u in box.data.webitel_users if u["extension"])
    answer = webitel(box, "POST", "/users", json={"username": "brand.new", "password": "Pw-12345678",
                                                   "extension": taken["extension"]})
    assert answer.status_code == 409 and answer.json()["id"] == "app.user.extension.conflict.error"   # §4, §5


def test_webitel_licence_items(box):
    item = webitel(box, "GET", "/license").json()["items"][0]
    assert {"id", "product", "not_before", "not_after", "limit", "remain"} <= item.keys()              # §3.3
    assert isinstance(item["not_after"], str) and len(item["not_after"]) >= 13                         # ms


def creatio_login(box):
    creds = box.data.credentials
    session = requests.Session()
    answer = session.post(f"{box.creatio_url}/ServiceModel/AuthService.svc/Login",
                          json={"UserName": creds.creatio_username, "UserPassword": creds.creatio_password},
                          headers={"ForceUseSession": "true"}, timeout=10)
    return session, answer


def test_creatio_login_cookies_and_code(box):
    session, answer = creatio_login(box)
    assert answer.status_code == 200 and answer.json()["Code"] == 0                                    # §1.1
    assert {".ASPXAUTH", "BPMCSRF", "BPMLOADER", "UserName"} <= set(session.cookies.keys())
    bad = requests.post(f"{box.creatio_url}/ServiceModel/AuthService.svc/Login",
                        json={"UserName": "Supervisor", "UserPassword": "nope"}, timeout=10)
    assert bad.status_code == 200 and bad.json()["Code"] == 1                                          # §1.1


def test_creatio_csrf_header_required_and_collection_shape(box):
    session, _ = creatio_login(box)
    url = f"{box.creatio_url}/0/odata/Contact"
    assert session.get(url, params={"$top": 1}, timeout=10).status_code == 403                          # §1.2
    body = session.get(url, params={"$top": 2, "$select": "Id,Name,AccountId"},
                       headers={"BPMCSRF": session.cookies["BPMCSRF"]}, timeout=10).json()
    assert "$metadata#Contact" in body["@odata.context"] and len(body["value"]) == 2                # §2.5
    assert all(len(row["AccountId"]) == 36 for row in body["value"])  # empty lookup: all-zero GUID


def test_creatio_batch_shape_and_metadata(box):
    session, _ = creatio_login(box)
    headers = {"BPMCSRF": session.cookies["BPMCSRF"]}
    batch = {"requests": [
        {"method": "POST", "url": "Account", "id": "t1", "body": {"Name": "Wire test"},
         "headers": {"Content-Type": "application/json"}},
        {"method": "PATCH", "url": "Account(00000000-0000-0000-0000-00000000beef)", "id": "t2",
         "body": {"Name": "x"}, "headers": {}}]}
    answer = session.post(f"{box.creatio_url}/0/odata/$batch", json=batch, headers=headers, timeout=10)
    responses = answer.json()["responses"]                                                             # §2.8
    assert [r["id"] for r in responses] == ["t1", "t2"]
    assert responses[0]["status"] == 201 and responses[1]["status"] == 404
    meta = session.get(f"{box.creatio_url}/0/odata/$metadata", headers=headers, timeout=10)
    assert "EntityType" in meta.text and 'Name="WebitelUser"' in meta.text
