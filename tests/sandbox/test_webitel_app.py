"""The sandbox Webitel API app, exercised directly through ``handle(Request(...))``."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.base import Request, Stats
from sandbox.seed.types import Credentials, SeedData
from sandbox.webitel import WebitelApp, make_certificate
from sandbox.webitel.certificate import DEFAULT_CUSTOMER

NOW = 1_750_000_000_000
DAY = 86_400_000
CREDS = Credentials()
TOKEN = CREDS.webitel_token

CC = {"id": "lic-cc", "product": "CALL_CENTER", "name": "Call centre", "not_before": NOW - 100 * DAY,
      "not_after": NOW + 300 * DAY, "limit": 3, "competitive": False, "scope": ["cc_agent", "users"]}
EXPIRED = {"id": "lic-expired", "product": "CHAT", "name": "", "not_before": NOW - 400 * DAY,
           "not_after": NOW - 10 * DAY, "limit": 5, "competitive": False, "scope": ["chats"]}
FUTURE = {"id": "lic-future", "product": "EMAIL", "name": "", "not_before": NOW + 10 * DAY,
          "not_after": NOW + 400 * DAY, "limit": 5, "competitive": False, "scope": []}
FULL = {"id": "lic-full", "product": "WFM", "name": "", "not_before": NOW - DAY,
        "not_after": NOW + DAY, "limit": 1, "competitive": False, "scope": []}
CONC = {"id": "lic-conc", "product": "CALL_MANAGER", "name": "", "not_before": NOW - DAY,
        "not_after": NOW + 30 * DAY, "limit": 1, "competitive": True, "scope": []}


def _user(uid, username, name, email="", ext="", lic=(), deleted=False):
    return {"id": uid, "username": username, "name": name, "email": email, "extension": ext,
            "license": list(lic), "deleted": deleted}


USERS = [
    _user(1, "ann", "Ann Lee", "ann@corp.com", "1001", ["lic-cc", "lic-expired"]),
    _user(2, "bob", "Bob Stone", "Bob@Corp.com", "1002", ["lic-full"]),
    _user(3, "carol", "Carol King"),
    _user(4, "dave", "Dave Gone", "dave@corp.com", "1004", ["lic-cc"], deleted=True),
    _user(5, "eve_x", "Eve X", "", "1005", ["lic-conc"]),
    _user(6, "eveqx", "Eve Q", "", "2006"),
]


class Clock:
    def __init__(self, now: int = NOW):
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(clock):
    seed = SeedData(domain="demo.webitel.local", webitel_users=[dict(u) for u in USERS],
                    licenses=[dict(x) for x in (CC, EXPIRED, FUTURE, FULL, CONC)], credentials=Credentials())
    return WebitelApp(seed, now_ms=clock, stats=Stats())


def call(app, method, path, query=None, body=None, token=TOKEN, headers=None):
    """Send one request; returns (status, decoded body or None)."""
    hdrs = {"x-webitel-access": token} if token else {}
    hdrs.update(headers or {})
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    query = {k: v if isinstance(v, list) else [str(v)] for k, v in (query or {}).items()}
    resp = app.handle(Request(method, path, query, hdrs, raw))
    return resp.status, (json.loads(resp.body) if resp.body else None)


def ids_of(body):
    return [item["id"] for item in body.get("items", [])]


# ----- auth -----

def test_missing_token_is_401_with_webitel_error_body(app):
    assert call(app, "GET", "/api/users", token=None) == (401, {
        "id": "app.context.session.unauthenticated", "code": 401, "status": "Unauthorized",
        "detail": "no access token: send header X-Webitel-Access"})


def test_bad_token_is_401(app):
    status, body = call(app, "GET", "/api/users", token="nope")
    assert (status, body["id"], body["status"]) == (401, "app.context.session.invalid", "Unauthorized")


def test_bearer_header_is_not_accepted(app):
    """Decision (reference open question 3): only X-Webitel-Access / access_token count."""
    status, _ = call(app, "GET", "/api/users", token=None, headers={"authorization": f"Bearer {TOKEN}"})
    assert status == 401


def test_access_token_query_parameter_works(app):
    assert call(app, "GET", "/api/users", {"access_token": TOKEN}, token=None)[0] == 200


@pytest.mark.parametrize("body", [
    {"username": "admin", "password": CREDS.webitel_password, "domain": "demo.webitel.local"},
    {"username": "admin@demo.webitel.local", "password": CREDS.webitel_password},
    {"username": "ADMIN", "password": CREDS.webitel_password},
])
def test_login_forms_issue_a_working_session_token(app, body):
    status, token = call(app, "POST", "/api/login", body=body, token=None)
    assert status == 200
    assert set(token) == {"access_token", "token_type", "expires_in"}
    assert (token["token_type"], token["expires_in"]) == ("Bearer", 86400)
    assert call(app, "GET", "/api/users", token=token["access_token"])[0] == 200


@pytest.mark.parametrize("body, status", [
    ({"username": "admin", "password": "wrong"}, 401),
    ({"username": "admin", "password": CREDS.webitel_password, "domain": "other.example"}, 401),
    ({"username": "ann", "password": CREDS.webitel_password}, 401),
    ({"username": "admin"}, 400),
    ([], 400),
])
def test_login_refusals(app, body, status):
    code, error = call(app, "POST", "/api/login", body=body, token=None)
    assert (code, error["code"]) == (status, status)


def _login(app) -> str:
    body = {"username": "admin", "password": CREDS.webitel_password}
    return call(app, "POST", "/api/login", body=body, token=None)[1]["access_token"]


def test_session_token_expires_after_its_lifetime_static_token_does_not(app, clock):
    token = _login(app)
    clock.now += 86400 * 1000 - 1
    assert call(app, "GET", "/api/users", token=token)[0] == 200
    clock.now += 1
    status, body = call(app, "GET", "/api/users", token=token)
    assert (status, body["id"]) == (401, "app.context.session.expired")
    clock.now += 10 * 365 * DAY
    assert call(app, "GET", "/api/users")[0] == 200


def test_expire_tokens_invalidates_sessions_only(app):
    token = _login(app)
    app.expire_tokens()
    assert call(app, "GET", "/api/users", token=token)[0] == 401
    assert call(app, "GET", "/api/users")[0] == 200


def test_logout_ends_the_session(app):
    token = _login(app)
    assert call(app, "POST", "/api/logout", body={}, token=token) == (200, {})
    assert call(app, "GET", "/api/users", token=token)[0] == 401


def test_userinfo_expires_at_is_in_seconds(app):
    token = _login(app)
    status, info = call(app, "GET", "/api/userinfo", token=token)
    assert status == 200
    assert info["expires_at"] == str((NOW + 86400 * 1000) // 1000)
    assert (info["dc"], info["domain"], info["username"], info["user_id"]) == (
        "1", "demo.webitel.local", "admin", "1")
    assert {"scope", "roles", "permissions"} <= set(info)


def test_userinfo_with_static_token_omits_expiry(app):
    """Decision: the personal access token never expires, so expires_at (zero) is omitted."""
    assert "expires_at" not in call(app, "GET", "/api/userinfo")[1]


# ----- routing -----

def test_unknown_route_is_404_even_without_token(app):
    status, body = call(app, "GET", "/api/nothing", token=None)
    assert (status, body["id"], body["status"]) == (404, "app.request.not_found", "Not Found")
    assert app.route(Request("GET", "/api/nothing")) == "(unmatched)"


def test_wrong_method_is_405_with_allow(app):
    resp = app.handle(Request("PATCH", "/api/users", {}, {"x-webitel-access": TOKEN}))
    assert resp.status == 405
    assert ("Allow", "GET, POST, DELETE") in resp.headers
    assert json.loads(resp.body)["code"] == 405


def test_malformed_json_is_400(app):
    status, body = call(app, "POST", "/api/users", body=b"{not json")
    assert (status, body["id"]) == (400, "app.request.bad_json")


@pytest.mark.parametrize("method, path, template", [
    ("GET", "/api/users", "/api/users"),
    ("GET", "/api/users/17", "/api/users/{id}"),
    ("POST", "/api/users/search", "/api/users/search"),
    ("GET", "/api/users/password/settings", "/api/users/password/settings"),
    ("GET", "/api/products/lic-cc/users", "/api/products/{id}/users"),
    ("GET", "/api/products", "/api/products"),
    ("PUT", "/api/customer", "/api/customer"),
])
def test_route_templates(app, method, path, template):
    assert app.route(Request(method, path)) == template


def test_non_integer_user_id_is_400(app):
    assert call(app, "GET", "/api/users/abc")[0] == 400


# ----- paging -----

@pytest.fixture
def big_app(clock):
    users = [_user(i, f"user{i:05d}", f"User {i}", ext=str(10000 + i)) for i in range(1, 1206)]
    lics = [{**CC, "id": f"lic-{i:02d}"} for i in range(20)]
    return WebitelApp(SeedData(domain="d", webitel_users=users, licenses=lics), now_ms=clock)


# Inferred: the users' default page holds 16, as in the vendor's recorded traffic.
@pytest.mark.parametrize("query, count, first, has_next", [
    ({}, 16, "1", True),
    ({"size": 1000}, 1000, "1", True),
    ({"size": 1000, "page": 2}, 205, "1001", False),
    ({"size": 1001}, 16, "1", True),  # over the engine maximum: falls back to the default
    ({"size": 0}, 16, "1", True),
    ({"size": -3}, 16, "1", True),
    ({"size": 5, "page": 3}, 5, "11", True),
    ({"size": 5, "page": 0}, 5, "1", True),
])
def test_user_paging(big_app, query, count, first, has_next):
    status, body = call(big_app, "GET", "/api/users", query)
    assert status == 200
    assert (len(body["items"]), body["items"][0]["id"], body.get("next", False)) == (count, first, has_next)
    assert body["page"] == max(1, int(query.get("page", 1)))


def test_last_page_omits_next_and_empty_page_omits_items(app):
    """Inferred: protobuf JSON omits next=false and items=[] (reference §1.5). The default items
    carry device, presence and contact when set, as in the vendor's recorded traffic."""
    assert call(app, "GET", "/api/users", {"size": 5}) == (200, {"page": 1, "items": [
        {"id": "1", "name": "Ann Lee", "username": "ann", "extension": "1001",
         "device": {"id": "100001", "name": "1001"}},
        {"id": "2", "name": "Bob Stone", "username": "bob", "extension": "1002",
         "presence": {"status": "sip"}, "device": {"id": "100002", "name": "1002"}},
        {"id": "3", "name": "Carol King", "username": "carol",
         "contact": {"id": "200003", "name": "Carol King"}},
        {"id": "5", "name": "Eve X", "username": "eve_x", "extension": "1005",
         "device": {"id": "100005", "name": "1005"}},
        {"id": "6", "name": "Eve Q", "username": "eveqx", "extension": "2006",
         "presence": {"status": "sip"}, "device": {"id": "100006", "name": "2006"},
         "contact": {"id": "200006", "name": "Eve Q"}},
    ]})
    assert call(app, "GET", "/api/users", {"size": 4})[1]["next"] is True
    assert call(app, "GET", "/api/users", {"page": 9}) == (200, {"page": 9})


def test_bad_page_parameter_is_400(app):
    assert call(app, "GET", "/api/users", {"page": "x"})[0] == 400


def test_licence_paging_default_16_and_fallback(big_app):
    assert len(call(big_app, "GET", "/api/license")[1]["items"]) == 16
    assert len(call(big_app, "GET", "/api/license", {"size": 1001})[1]["items"]) == 16
    body = call(big_app, "GET", "/api/license", {"size": 16, "page": 2})[1]
    assert (ids_of(body), "next" in body) == ([f"lic-{i}" for i in range(16, 20)], False)


def test_fifty_thousand_users_stay_fast(clock):
    users = [_user(i, f"u{i}", f"Name {i}", ext=str(100000 + i)) for i in range(1, 50_001)]
    big = WebitelApp(SeedData(domain="d", webitel_users=users), now_ms=clock)
    started = time.perf_counter()
    for n in range(100):
        assert ids_of(call(big, "GET", "/api/users", {"page": 1200 + n % 50, "size": 40})[1])
        assert ids_of(call(big, "GET", "/api/users", {"username": f"U{49_000 + n}"})[1]) == [str(49_000 + n)]
        assert ids_of(call(big, "GET", "/api/users", {"extension": str(140_000 + n)})[1]) == [str(40_000 + n)]
        assert ids_of(call(big, "GET", "/api/users", {"id": ["49999", "7"]})[1]) == ["7", "49999"]
    assert time.perf_counter() - started < 3.0


# ----- fields -----

def test_requested_fields_only_and_licence_entries(app):
    # A user's licence entries carry no name and no scope (the vendor's recorded traffic).
    status, body = call(app, "GET", "/api/users", {"fields": ["email", "license"], "id": "1"})
    assert (status, body["items"]) == (200, [{"email": "ann@corp.com", "license": [
        {"id": "lic-cc", "prod": "CALL_CENTER", "issued_at": str(CC["not_before"]),
         "expires_at": str(CC["not_after"])},
        {"id": "lic-expired", "prod": "CHAT", "issued_at": str(EXPIRED["not_before"]),
         "expires_at": str(EXPIRED["not_after"])},
    ]}])
    assert call(app, "GET", "/api/users", {"fields": "id,updated_at", "id": "3"})[1]["items"] == [
        {"id": "3", "updated_at": str(NOW)}]


def test_password_is_never_returned(app):
    call(app, "PATCH", "/api/users/3", body={"password": "Secret-123"})
    query = {"fields": ["password", "id"], "id": "3"}
    assert call(app, "GET", "/api/users", query)[1]["items"] == [{"id": "3"}]
    assert "password" not in call(app, "GET", "/api/users/3")[1]


def test_get_user_is_the_bare_object_with_all_fields(app):
    admin = {"id": "1", "name": "admin"}
    assert call(app, "GET", "/api/users/2") == (200, {
        "id": "2", "name": "Bob Stone", "username": "bob", "email": "Bob@Corp.com", "extension": "1002",
        "presence": {"status": "sip"},
        "license": [{"id": "lic-full", "prod": "WFM", "issued_at": str(FULL["not_before"]),
                     "expires_at": str(FULL["not_after"])}],
        "roles": [{"id": "2", "name": "user"}], "device": {"id": "100002", "name": "1002"},
        "devices": [{"id": "100002", "name": "1002"}],
        "created_at": str(NOW), "created_by": admin, "updated_at": str(NOW), "updated_by": admin})
    assert call(app, "GET", "/api/user", {"id": "2"})[1]["username"] == "bob"


def test_get_missing_or_soft_deleted_user_is_404(app):
    """Decision: unknown/soft-deleted → 404 app.user.get.not_found (reference open question 4)."""
    for path in ("/api/users/99", "/api/users/4"):
        status, body = call(app, "GET", path)
        assert (status, body["id"]) == (404, "app.user.get.not_found")
    status, body = call(app, "GET", "/api/users/4", {"any": "true"})
    assert (status, body["deleted_at"]) == (200, str(NOW))


# ----- filters -----

@pytest.mark.parametrize("query, expected", [
    ({"id": ["6", "1", "4"]}, ["1", "6"]),
    ({"not_id": ["1", "2"]}, ["3", "5", "6"]),
    ({"username": "ANN"}, ["1"]),
    ({"username": "an"}, []),
    ({"username": "eve_x"}, ["5", "6"]),  # Inferred: "_" stays an SQL single-character wildcard
    ({"username": "eve\\_x"}, ["5"]),
    ({"q": "*lee*"}, ["1"]),
    ({"q": "ann"}, ["1"]),
    ({"q": "an"}, []),
    ({"q": "100*"}, ["1", "2", "5"]),
    ({"name": "bob*"}, ["2"]),
    ({"extension": "1002"}, ["2"]),
    ({"extension": "1004"}, []),
    ({"extension": "1004", "any": "true"}, ["4"]),
    ({"any": "true"}, ["1", "2", "3", "4", "5", "6"]),
    ({"deleted": "true"}, ["4"]),
    ({"sort": "-id"}, ["6", "5", "3", "2", "1"]),
    ({"sort": "!name"}, ["5", "6", "3", "2", "1"]),
    ({"sort": ["+username"], "q": "eve*"}, ["5", "6"]),
    ({"sort": "bogus"}, ["1", "2", "3", "5", "6"]),  # Decision: unknown sort fields are ignored
])
def test_user_filters(app, query, expected):
    status, body = call(app, "GET", "/api/users", query)
    assert (status, ids_of(body)) == (200, expected)


def test_search_body_takes_the_same_parameters(app):
    body = {"q": "eve*", "fields": ["id", "username"], "sort": "-id", "size": 1}
    assert call(app, "POST", "/api/users/search", body=body) == (
        200, {"page": 1, "next": True, "items": [{"id": "6", "username": "eveqx"}]})
    assert ids_of(call(app, "POST", "/api/users/search", body={"id": [2, "3"], "any": True})[1]) == ["2", "3"]


# ----- create -----

NEW = {"username": "frank", "password": "Pw-123456", "name": "Frank Ho", "email": "frank@corp.com",
       "extension": "1010", "chat_name": "Frank", "roles": [{"id": "5", "name": "agent"}],
       "profile": {"team": "a"}, "license": [{"id": "lic-cc"}]}


def test_create_user(app, clock):
    clock.now += 5
    status, body = call(app, "POST", "/api/users", body=NEW)
    # The answer of the QA create call (reference §2.3): id, name, username, email, extension.
    assert (status, body) == (200, {
        "id": "7", "name": "Frank Ho", "username": "frank", "email": "frank@corp.com", "extension": "1010"})
    assert call(app, "GET", "/api/users/7")[1] == {
        "id": "7", "name": "Frank Ho", "username": "frank", "email": "frank@corp.com", "extension": "1010",
        "license": [{"id": "lic-cc", "prod": "CALL_CENTER",
                     "issued_at": str(CC["not_before"]), "expires_at": str(CC["not_after"])}],
        "roles": [{"id": "5", "name": "agent"}], "profile": {"team": "a"}, "chat_name": "Frank",
        "created_at": str(NOW + 5), "created_by": {"id": "1", "name": "admin"},
        "updated_at": str(NOW + 5), "updated_by": {"id": "1", "name": "admin"}}
    assert app.stats.writes == 1
    assert app.user(7)["password"] == "Pw-123456"
    assert call(app, "POST", "/api/users", body={"username": "gil", "password": "x"})[1]["id"] == "8"


def test_create_takes_password_from_query(app):
    body = {"username": "gil", "name": "Gil"}
    assert call(app, "POST", "/api/users", {"user_password": "Qq-123456"}, body=body)[0] == 200
    assert app.user_by_username("GIL")["password"] == "Qq-123456"


def test_create_without_password_is_400_unless_allowed(app, clock):
    """Decision (reference open question 6): a password is required on create."""
    status, body = call(app, "POST", "/api/users", body={"username": "gil"})
    assert (status, body["id"]) == (400, "app.user.password.required")
    lax = WebitelApp(SeedData(domain="d"), now_ms=clock, require_password=False)
    assert call(lax, "POST", "/api/users", body={"username": "gil"})[1] == {"id": "1", "username": "gil"}


@pytest.mark.parametrize("body", [{"password": "x"}, {"username": "  ", "password": "x"}])
def test_create_without_username_is_400(app, body):
    assert call(app, "POST", "/api/users", body=body)[1]["id"] == "app.user.username.required"


@pytest.mark.parametrize("change, error_id", [
    ({"username": "ANN"}, "app.user.conflict.error"),
    ({"username": "Dave"}, "app.user.conflict.error"),        # soft-deleted still blocks
    ({"username": "admin"}, "app.user.conflict.error"),       # the admin is a user too
    ({"extension": "1001"}, "app.user.extension.conflict.error"),
    ({"extension": "1004"}, "app.user.extension.conflict.error"),
    ({"email": "BOB@corp.com"}, "app.user.email.conflict.error"),
    ({"email": "dave@CORP.com"}, "app.user.email.conflict.error"),
])
def test_create_conflicts_are_409(app, change, error_id):
    """Inferred (reference §4/§5): 409, case-insensitive, soft-deleted users included."""
    status, body = call(app, "POST", "/api/users", body={**NEW, "license": [], **change})
    assert (status, body["id"], body["status"]) == (409, error_id, "Conflict")
    assert app.stats.writes == 0


def test_permanent_delete_frees_username_and_extension(app):
    assert call(app, "DELETE", "/api/users/4", {"permanent": "true"})[0] == 200
    body = {"username": "dave", "extension": "1004", "email": "dave@corp.com", "password": "x"}
    assert call(app, "POST", "/api/users", body=body)[0] == 200


@pytest.mark.parametrize("serial, error_id, detail", [
    ("nope", "app.license.not_found", "license not found: nope"),
    ("lic-expired", "app.license.product.expired", "license expired; product: CHAT"),
    ("lic-future", "app.license.product.not_valid", "license not valid yet; product: EMAIL"),
    ("lic-full", "app.license.product.exhausted", "product exhausted: WFM"),
])
def test_licence_grant_refusals(app, serial, error_id, detail):
    """Inferred (reference open question 7): refused grants are 400 with these ids."""
    status, body = call(app, "POST", "/api/users", body={**NEW, "license": [{"id": serial}]})
    assert (status, body["id"], body["detail"]) == (400, error_id, detail)
    status, body = call(app, "PATCH", "/api/users/3", body={"license": [{"id": serial}]})
    assert (status, body["id"]) == (400, error_id)
    assert app.user(3)["license"] == [] and app.stats.writes == 0


def test_licence_becomes_expired_exactly_at_not_after(app, clock):
    clock.now = FULL["not_after"]
    app.set_license_grants(2, [])
    assert call(app, "PATCH", "/api/users/3", body={"license": [{"id": "lic-full"}]})[1]["id"] == (
        "app.license.product.expired")
    clock.now -= 1
    assert call(app, "PATCH", "/api/users/3", body={"license": [{"id": "lic-full"}]})[0] == 200


def test_concurrent_licence_is_not_limited_by_assignments(app):
    assert call(app, "PATCH", "/api/users/3", body={"license": [{"id": "lic-conc"}]})[0] == 200
    assert [x["remain"] for x in app.licenses() if x["id"] == "lic-conc"] == [1]


def test_licence_entry_without_serial_is_400(app):
    """Decision: grants name the serial; {"prod": ...} alone is refused."""
    status, body = call(app, "PATCH", "/api/users/3", body={"license": [{"prod": "CALL_CENTER"}]})
    assert (status, body["id"]) == (400, "app.user.invalid_input")


# ----- update -----

def test_patch_changes_only_given_keys_and_answers_a_partial_user(app, clock):
    clock.now += 60_000
    status, body = call(app, "PATCH", "/api/users/1", body={"name": "Ann Lee-Smith"})
    # Inferred from the vendor's recorded traffic: the answer holds no extension, no licences.
    assert (status, body) == (200, {"id": "1", "name": "Ann Lee-Smith", "username": "ann",
                                    "updated_at": str(NOW + 60_000),
                                    "updated_by": {"id": "1", "name": "admin"}})
    user = call(app, "GET", "/api/users/1")[1]
    assert (user["email"], user["extension"], user["created_at"]) == ("ann@corp.com", "1001", str(NOW))
    assert [x["id"] for x in user["license"]] == ["lic-cc", "lic-expired"]
    assert app.stats.writes == 1


def test_patch_licence_list_is_the_complete_new_set(app):
    assert call(app, "PATCH", "/api/users/1", body={"license": [{"id": "lic-cc"}]})[0] == 200
    assert app.user(1)["license"] == ["lic-cc"]
    assert call(app, "PATCH", "/api/users/1", body={"license": []})[0] == 200
    assert app.user(1)["license"] == []


def test_held_serials_are_not_rechecked(app):
    """Inferred: a user keeps an expired grant; only newly added serials are checked."""
    body = {"license": [{"id": "lic-expired"}, {"id": "lic-cc"}, {"id": "lic-conc"}]}
    assert call(app, "PATCH", "/api/users/1", body=body)[0] == 200
    assert app.user(1)["license"] == ["lic-expired", "lic-cc", "lic-conc"]
    call(app, "PATCH", "/api/users/1", body={"license": [{"id": "lic-cc"}]})
    assert call(app, "PATCH", "/api/users/1", body={"license": [{"id": "lic-expired"}]})[0] == 400


def test_patch_conflicts_ignore_the_user_itself(app):
    assert call(app, "PATCH", "/api/users/1", body={"username": "ANN", "extension": "1001"})[0] == 200
    status, body = call(app, "PATCH", "/api/users/1", body={"username": "Bob"})
    assert (status, body["id"]) == (409, "app.user.conflict.error")
    assert call(app, "PATCH", "/api/users/1", body={"extension": "1004"})[0] == 409
    assert call(app, "PATCH", "/api/users/1", body={"email": "bob@corp.COM"})[0] == 409


@pytest.mark.parametrize("user_id, status, error_id", [
    ("4", 404, "app.user.update.not_found"), ("99", 404, "app.user.update.not_found"),
])
def test_patch_missing_or_soft_deleted_user_is_404(app, user_id, status, error_id):
    """Decision: soft-deleted users cannot be edited."""
    code, body = call(app, "PATCH", f"/api/users/{user_id}", body={"name": "x"})
    assert (code, body["id"]) == (status, error_id)


def test_patch_blank_username_is_400(app):
    assert call(app, "PATCH", "/api/users/1", body={"username": ""})[0] == 400


def test_put_keeps_the_fields_it_was_not_sent(app):
    """Inferred (reference open question 5, the vendor's recorded traffic): PUT changes only what
    it is sent, like PATCH, and answers a partial user."""
    status, body = call(app, "PUT", "/api/users/1", body={"username": "ann", "password": "Pw-New-1234"})
    assert (status, body) == (200, {"id": "1", "name": "Ann Lee", "username": "ann", "updated_at": str(NOW),
                                    "updated_by": {"id": "1", "name": "admin"}})
    user = app.user(1)
    assert (user["extension"], user["email"], user["license"]) == (
        "1001", "ann@corp.com", ["lic-cc", "lic-expired"])
    assert user["password"] == "Pw-New-1234"
    assert call(app, "PUT", "/api/users/1", body={"name": "Ann"})[0] == 200
    assert app.user(1)["username"] == "ann" and app.user(1)["extension"] == "1001"
    assert call(app, "PUT", "/api/users/1", body={"username": "bob"})[0] == 409


# ----- delete -----

def test_soft_delete_hides_but_blocks(app, clock):
    clock.now += 1000
    status, body = call(app, "DELETE", "/api/users/3")
    admin = {"id": "1", "name": "admin"}
    assert (status, body) == (200, {"deleted": [{"id": "3", "name": "Carol King", "username": "carol",
                                                 "roles": [{"id": "2", "name": "user"}],
                                                 "contact": {"id": "200003", "name": "Carol King"},
                                                 "created_at": str(NOW), "created_by": admin,
                                                 "updated_at": str(NOW), "updated_by": admin,
                                                 "deleted_at": str(NOW + 1000)}]})
    assert "3" not in ids_of(call(app, "GET", "/api/users")[1])
    assert ids_of(call(app, "GET", "/api/users", {"deleted": "true"})[1]) == ["3", "4"]
    assert call(app, "GET", "/api/users/3")[0] == 404
    assert call(app, "POST", "/api/users", body={"username": "Carol", "password": "x"})[0] == 409
    assert call(app, "DELETE", "/api/users/3")[0] == 404  # already soft-deleted
    assert app.stats.writes == 1


def test_soft_deleted_users_keep_their_grants(app):
    """Inferred: grant rows survive a soft delete, so they still count against the limit."""
    call(app, "DELETE", "/api/users/2")
    assert call(app, "GET", "/api/license", {"id": "lic-full", "fields": "remain,id"})[1]["items"] == [
        {"id": "lic-full"}]


def test_permanent_delete_removes_and_frees_grants(app):
    assert call(app, "DELETE", "/api/users/2", {"permanent": "true"})[0] == 200
    assert call(app, "GET", "/api/users/2", {"any": "true"})[0] == 404
    assert app.user(2) is None
    assert [x["remain"] for x in app.licenses() if x["id"] == "lic-full"] == [1]


def test_delete_unknown_is_404(app):
    assert call(app, "DELETE", "/api/users/99")[1]["id"] == "app.user.delete.not_found"


def test_bulk_delete_with_array_body(app):
    status, body = call(app, "DELETE", "/api/users", body=["1", 3])
    assert (status, [u["id"] for u in body["deleted"]]) == (200, ["1", "3"])
    assert app.stats.writes == 2
    assert ids_of(call(app, "GET", "/api/users")[1]) == ["2", "5", "6"]


def test_bulk_delete_is_all_or_nothing(app):
    """Decision: one unknown id refuses the whole selection."""
    assert call(app, "DELETE", "/api/users", body=["1", "99"])[0] == 404
    assert app.user(1)["deleted"] is False and app.stats.writes == 0
    assert call(app, "DELETE", "/api/users", body=[])[0] == 400


# ----- password policy -----

def test_password_settings_and_generate(app):
    assert call(app, "GET", "/api/users/password/settings") == (200, {"settings": {
        "password_min_length": 8, "password_categories": 3, "password_contains_login": False}})
    first = call(app, "POST", "/api/users/password/generate", body={"username": "ann"})[1]["password"]
    second = call(app, "POST", "/api/users/password/generate", body={})[1]["password"]
    assert first != second and len(first) >= 8 and "ann" not in first.lower()
    assert app.generated_for == ["ann", ""]  # who each password was asked for
    categories = [any(c.islower() for c in first), any(c.isupper() for c in first),
                  any(c.isdigit() for c in first), any(not c.isalnum() for c in first)]
    assert sum(categories) >= 3


# ----- licences -----

def test_license_list_items_and_remain(app):
    status, body = call(app, "GET", "/api/license")
    assert status == 200 and "next" not in body
    assert body["items"] == [
        {"id": "lic-cc", "product": "CALL_CENTER", "name": "Call centre", "not_before": str(CC["not_before"]),
         "not_after": str(CC["not_after"]), "limit": 3, "remain": 1, "scope": ["cc_agent", "users"]},
        {"id": "lic-expired", "product": "CHAT", "not_before": str(EXPIRED["not_before"]),
         "not_after": str(EXPIRED["not_after"]), "limit": 5, "remain": 4, "scope": ["chats"]},
        {"id": "lic-future", "product": "EMAIL", "not_before": str(FUTURE["not_before"]),
         "not_after": str(FUTURE["not_after"]), "limit": 5, "remain": 5},
        {"id": "lic-full", "product": "WFM", "not_before": str(FULL["not_before"]),
         "not_after": str(FULL["not_after"]), "limit": 1},
        {"id": "lic-conc", "product": "CALL_MANAGER", "not_before": str(CONC["not_before"]),
         "not_after": str(CONC["not_after"]), "competitive": True, "limit": 1, "remain": 1},
    ]
    assert call(app, "GET", "/api/products")[1] == body


@pytest.mark.parametrize("query, expected", [
    ({"id": ["lic-full", "lic-cc"]}, ["lic-cc", "lic-full"]),
    ({"product": ["chat", "WFM"]}, ["lic-expired", "lic-full"]),
    ({"valid": "true"}, ["lic-cc", "lic-conc"]),
    ({"user.id": "1"}, ["lic-cc", "lic-expired"]),
    ({"user.id": "4"}, ["lic-cc"]),
    ({"user.id": "99"}, []),
    ({"q": "CALL*"}, ["lic-cc", "lic-conc"]),
    ({"q": "call centre"}, ["lic-cc"]),
    ({"sort": "-not_after"}, ["lic-future", "lic-cc", "lic-conc", "lic-full", "lic-expired"]),
    ({"sort": "remain"}, ["lic-full", "lic-cc", "lic-conc", "lic-expired", "lic-future"]),
])
def test_license_filters(app, query, expected):
    assert ids_of(call(app, "GET", "/api/license", query)[1]) == expected


def test_license_users_only_when_asked(app):
    body = call(app, "GET", "/api/license", {"id": "lic-cc", "fields": ["id", "users"]})[1]
    assert body["items"] == [{"id": "lic-cc", "users": [
        {"id": "lic-cc", "prod": "CALL_CENTER", "name": "Call centre", "user": {"id": str(uid), "name": name},
         "issued_at": str(CC["not_before"]), "expires_at": str(CC["not_after"]),
         "scope": ["cc_agent", "users"]} for uid, name in ((1, "Ann Lee"), (4, "Dave Gone"))]}]


def test_product_users(app):
    status, body = call(app, "GET", "/api/products/lic-cc/users")
    assert (status, body) == (200, {"page": 1, "items": [
        {"user": {"id": uid, "name": name}, "domain": {"id": "1", "name": "demo.webitel.local"},
         "issued_at": str(CC["not_before"]), "expires_at": str(CC["not_after"])}
        for uid, name in (("1", "Ann Lee"), ("4", "Dave Gone"))]})
    page = call(app, "GET", "/api/products/lic-cc/users", {"size": 1})[1]
    assert ([i["user"]["id"] for i in page["items"]], page["next"]) == (["1"], True)
    found = call(app, "GET", "/api/products/lic-cc/users", {"q": "da*"})[1]["items"]
    assert [i["user"]["id"] for i in found] == ["4"]
    status, body = call(app, "GET", "/api/products/nope/users")
    assert (status, body["id"]) == (404, "app.license.not_found")


# ----- customer -----

def test_get_customer_is_unwrapped(app):
    """Decision (reference open question 9): the Customer object comes unwrapped."""
    status, body = call(app, "GET", "/api/customer")
    assert status == 200
    assert (body["id"], body["organization"], body["issued_at"]) == (
        DEFAULT_CUSTOMER["id"], DEFAULT_CUSTOMER["organization"], str(NOW))
    assert (body["not_before"], body["not_after"]) == (str(EXPIRED["not_before"]), str(FUTURE["not_after"]))
    assert [x["id"] for x in body["license"]] == [
        "lic-cc", "lic-expired", "lic-future", "lic-full", "lic-conc"]
    assert body["dnsrv"] == [{"id": "1", "name": "demo.webitel.local"}]


def test_upload_extends_and_adds_licences(app):
    extended = {**EXPIRED, "not_after": NOW + 365 * DAY, "limit": 6, "name": "Chat"}
    new = {"id": "lic-new", "product": "WFM", "name": "", "not_before": NOW, "not_after": NOW + DAY,
           "limit": 2, "competitive": False, "scope": ["wfm"]}
    key = make_certificate([extended, new], CREDS.license_signing_key, issued_at=NOW + 1)
    status, body = call(app, "PUT", "/api/customer", body={"certificate": key})
    assert status == 200 and app.stats.writes == 1
    assert body["issued_at"] == str(NOW + 1)
    by_id = {x["id"]: x for x in body["license"]}
    assert by_id["lic-expired"] == {"id": "lic-expired", "product": "CHAT", "name": "Chat",
                                    "not_before": str(EXPIRED["not_before"]),
                                    "not_after": str(NOW + 365 * DAY), "limit": 6, "remain": 5,
                                    "scope": ["chats"]}
    assert by_id["lic-new"]["remain"] == 2 and list(by_id)[-1] == "lic-new"
    # The extended licence can be granted again, and the grant the user held now runs longer.
    assert call(app, "PATCH", "/api/users/3", body={"license": [{"id": "lic-expired"}]})[0] == 200
    grant = call(app, "GET", "/api/users/1")[1]["license"][1]
    assert grant["expires_at"] == str(NOW + 365 * DAY)


@pytest.mark.parametrize("key, detail", [
    ("garbage", "invalid certificate: wrong prefix: expected WCS1"),
    ("WCS1.!!.xx", "invalid certificate: payload is not base64url"),
    (make_certificate([CC], "wrong-key"), "invalid certificate: bad signature"),
    (make_certificate([CC], CREDS.license_signing_key, customer={"id": "x", "organization": "y"}),
     "invalid certificate: issued to another customer"),
    (make_certificate([{**CC, "product": "CHAT"}], CREDS.license_signing_key),
     "invalid certificate: license lic-cc changes product or kind"),
    ("", "invalid certificate: no certificate given"),
])
def test_upload_refusals(app, key, detail):
    status, body = call(app, "PUT", "/api/customer", body={"certificate": key})
    assert (status, body["id"], body["detail"]) == (400, "app.customer.certificate.invalid", detail)
    assert app.stats.writes == 0 and len(app.licenses()) == 5


def test_tampered_upload_is_refused_and_not_echoed(app):
    key = make_certificate([{**CC, "limit": 3}], CREDS.license_signing_key)
    prefix, payload, signature = key.split(".")
    forged = make_certificate([{**CC, "limit": 999}], CREDS.license_signing_key).split(".")[1]
    status, body = call(app, "PUT", "/api/customer", body={"certificate": f"{prefix}.{forged}.{signature}"})
    assert (status, body["detail"]) == (400, "invalid certificate: bad signature")
    assert forged not in json.dumps(body) and signature not in json.dumps(body)
    assert [x["limit"] for x in app.licenses() if x["id"] == "lic-cc"] == [3]


# ----- direct helpers and write counting -----

def test_direct_helpers(app):
    assert app.user(1) == {
        "id": 1, "username": "ann", "name": "Ann Lee", "email": "ann@corp.com", "extension": "1001",
        "license": ["lic-cc", "lic-expired"], "deleted": False, "chat_name": "", "password": "",
        "roles": [{"id": 2, "name": "user"}], "profile": {}, "created_at": NOW, "updated_at": NOW,
        "deleted_at": 0}
    assert app.user(99) is None
    assert app.user_by_username("DAVE")["deleted"] is True
    assert [u["id"] for u in app.all_users()] == [1, 2, 3, 5, 6]
    assert [u["id"] for u in app.all_users(include_deleted=True)] == [1, 2, 3, 4, 5, 6]
    assert {x["id"]: x["remain"] for x in app.licenses()} == {
        "lic-cc": 1, "lic-expired": 4, "lic-future": 5, "lic-full": 0, "lic-conc": 1}
    app.set_license_grants(3, ["lic-full", "lic-expired", "lic-full"])  # bypasses every check
    assert app.user(3)["license"] == ["lic-full", "lic-expired"]
    with pytest.raises(KeyError):
        app.set_license_grants(99, [])


def test_every_successful_write_is_counted_once(app):
    seen = []
    app.stats.on_write = seen.append
    call(app, "POST", "/api/users", body={"username": "gil", "password": "x"})
    call(app, "PATCH", "/api/users/7", body={"name": "Gil"})
    call(app, "PUT", "/api/users/7", body={"username": "gil"})
    call(app, "PATCH", "/api/users/7", body={"username": "ann"})  # 409: not a write
    call(app, "DELETE", "/api/users/7", {"permanent": "true"})
    call(app, "PUT", "/api/customer", body={"certificate": make_certificate([], CREDS.license_signing_key)})
    call(app, "GET", "/api/users")
    assert seen == [1, 2, 3, 4, 5]


def test_created_ids_are_never_reused(app):
    call(app, "POST", "/api/users", body={"username": "gil", "password": "x"})
    call(app, "DELETE", "/api/users/7", {"permanent": "true"})
    assert call(app, "POST", "/api/users", body={"username": "hal", "password": "x"})[1]["id"] == "8"


def test_remain_is_clamped_when_a_new_key_lowers_the_limit(app):
    """Decision: a re-upload may lower a limit below the grants; grants stay, remain reads 0."""
    app.set_license_grants(3, ["lic-cc"])
    key = make_certificate([{**CC, "limit": 1}], CREDS.license_signing_key)
    body = call(app, "PUT", "/api/customer", body={"certificate": key})[1]
    assert [(x["limit"], x.get("remain")) for x in body["license"] if x["id"] == "lic-cc"] == [(1, None)]
    assert app.user(3)["license"] == ["lic-cc"]
    assert call(app, "PATCH", "/api/users/6", body={"license": [{"id": "lic-cc"}]})[1]["id"] == (
        "app.license.product.exhausted")


def test_admin_listed_in_the_seed_can_be_renamed_in_case_only(clock):
    """Inferred: the admin's username is taken; a seed admin editing itself is not a conflict."""
    seed = SeedData(domain="d", webitel_users=[_user(9, "admin", "Boss")])
    own = WebitelApp(seed, now_ms=clock)
    assert call(own, "PATCH", "/api/users/9", body={"username": "Admin"})[0] == 200
    assert call(own, "POST", "/api/users", body={"username": "ADMIN", "password": "x"})[0] == 409
    assert call(own, "GET", "/api/userinfo")[1]["user_id"] == "9"


# ----- the shapes of the vendor's recorded traffic -----

@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_injected_faults_answer_in_the_webitel_error_shape(app, status):
    """Errors are {id, code, detail, status} everywhere in the vendor's traffic, 5xx included."""
    response = app.fault_response(status, [("Retry-After", "1")])
    body = json.loads(response.body)
    assert set(body) == {"id", "code", "detail", "status"} and body["code"] == status
    assert body["id"].startswith("app.") and response.status == status
    assert ("Retry-After", "1") in response.headers


def test_a_put_or_patch_never_wipes_what_it_was_not_sent(app):
    for method in ("PUT", "PATCH"):
        assert call(app, method, "/api/users/2", body={"name": f"Bob {method}"})[0] == 200
        user = call(app, "GET", "/api/users/2")[1]
        assert (user["extension"], user["email"], [x["id"] for x in user["license"]]) == (
            "1002", "Bob@Corp.com", ["lic-full"])
        assert user["device"] == {"id": "100002", "name": "1002"} and user["roles"]
