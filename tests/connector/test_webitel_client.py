"""The Webitel client against mocked HTTP: exact requests, auth, paging, retries, errors, secrets."""

import json
import logging
import re
from datetime import datetime, timezone

import pytest
from threadkit import settle
import responses
from responses import matchers

from connector import errors
from connector.retry import RetryPolicy
from connector.settings import WebitelSettings
from connector.webitel.client import WebitelClient
from connector.webitel.models import WebitelUser

API = "https://webitel.test/api"
TOKEN = "tok-SECRET-1234"
PASSWORD = "pw-SECRET-5678"


def client(**kw):
    settings = WebitelSettings(url=API, **({"token": TOKEN} if "username" not in kw else {}), **kw)
    return WebitelClient(settings, retry=RetryPolicy(max_attempts=3), sleep=lambda s: None)


def page(items, next_):
    return {"page": 1, "next": next_, "items": items}


@responses.activate
def test_iter_users_pages_with_fields_and_token_header():
    responses.get(
        f"{API}/users",
        json=page([{"id": "1", "username": "ann", "extension": "1001"}], True),
        match=[
            matchers.query_param_matcher(
                {
                    "fields": ["id", "username", "name", "email", "extension", "license", "updated_at"],
                    "page": "1",
                    "size": "1000",
                }
            ),
            matchers.header_matcher({"X-Webitel-Access": TOKEN}),
        ],
    )
    responses.get(
        f"{API}/users",
        json=page([{"id": "2", "username": "bob"}], False),
        match=[matchers.query_param_matcher({"page": "2"}, strict_match=False)],
    )
    users = list(client().iter_users())
    assert [(u.id, u.username, u.extension) for u in users] == [(1, "ann", "1001"), (2, "bob", "")]


@responses.activate
def test_paging_stops_on_empty_page_even_if_next_true():
    responses.get(
        f"{API}/users",
        json=page([{"id": "1", "username": "a"}], True),
        match=[matchers.query_param_matcher({"page": "1"}, strict_match=False)],
    )
    responses.get(
        f"{API}/users",
        json=page([], True),
        match=[matchers.query_param_matcher({"page": "2"}, strict_match=False)],
    )
    assert [u.id for u in client().iter_users()] == [1]
    assert len(responses.calls) == 2


@responses.activate
def test_repeated_page_is_refused():
    responses.get(f"{API}/users", json=page([{"id": "1", "username": "a"}], True))
    with pytest.raises(errors.BadResponse, match="repeats the previous page"):
        list(client().iter_users())


@responses.activate
def test_bad_user_record_becomes_record_error_and_others_go_on():
    responses.get(
        f"{API}/users",
        json=page(
            [
                {"id": "1", "username": "a"},
                {"id": "2", "username": "b", "extension": {"x": 1}},
                {"id": "3", "username": "c"},
            ],
            False,
        ),
    )
    items = list(client().iter_users())
    assert [type(i).__name__ for i in items] == ["WebitelUser", "RecordError", "WebitelUser"]
    assert items[1].field == "extension" and "b (id 2)" in str(items[1])


@responses.activate
def test_models_convert_int64_strings_and_ms():
    responses.get(
        f"{API}/users/17",
        json={
            "id": "17",
            "username": "ann",
            "license": [
                {"id": "serial-1", "prod": "CALL_CENTER", "issued_at": "1767225600000", "expires_at": "0"}
            ],
        },
    )
    user = client().get_user(17)
    assert user.id == 17
    grant = user.licenses[0]
    assert grant.serial == "serial-1" and grant.product == "CALL_CENTER"
    assert grant.issued_at == datetime(2026, 1, 1, tzinfo=timezone.utc) and grant.expires_at is None


@responses.activate
def test_get_user_accepts_wrapped_object():
    responses.get(f"{API}/users/5", json={"user": {"id": "5", "username": "e"}})
    assert client().get_user(5).username == "e"


@responses.activate
def test_login_then_relogin_once_on_401():
    login_body = {"username": "admin", "password": PASSWORD, "domain": "corp"}
    responses.post(
        f"{API}/login",
        json={"access_token": "sess-1", "token_type": "Bearer", "expires_in": 60},
        match=[matchers.json_params_matcher(login_body)],
    )
    responses.post(f"{API}/login", json={"access_token": "sess-2", "token_type": "Bearer", "expires_in": 60})
    responses.get(
        f"{API}/userinfo",
        status=401,
        json={"id": "auth.expired", "code": 401, "status": "Unauthorized"},
        match=[matchers.header_matcher({"X-Webitel-Access": "sess-1"})],
    )
    responses.get(
        f"{API}/userinfo",
        json={"username": "admin"},
        match=[matchers.header_matcher({"X-Webitel-Access": "sess-2"})],
    )
    c = client(username="admin", password=PASSWORD, domain="corp")
    assert c.userinfo() == {"username": "admin"}
    assert [call.request.url.rsplit("/", 1)[-1] for call in responses.calls] == [
        "login",
        "userinfo",
        "login",
        "userinfo",
    ]


@responses.activate
def test_no_login_loop_when_401_persists():
    responses.post(f"{API}/login", json={"access_token": "sess", "token_type": "Bearer"})
    responses.get(
        f"{API}/userinfo", status=401, json={"id": "auth.invalid", "code": 401, "detail": "bad session"}
    )
    with pytest.raises(errors.AuthError, match="bad session"):
        client(username="admin", password=PASSWORD).userinfo()
    assert [c.request.url.rsplit("/", 1)[-1] for c in responses.calls] == [
        "login",
        "userinfo",
        "login",
        "userinfo",
    ]


@responses.activate
def test_static_token_401_is_final():
    responses.get(f"{API}/userinfo", status=401, json={"id": "auth.invalid", "code": 401})
    with pytest.raises(errors.AuthError):
        client().userinfo()
    assert len(responses.calls) == 1


@responses.activate
def test_failed_login_is_auth_error_without_password():
    responses.post(
        f"{API}/login", status=401, json={"id": "app.auth.login", "code": 401, "detail": "wrong password"}
    )
    with pytest.raises(errors.AuthError) as info:
        client(username="admin", password=PASSWORD).userinfo()
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)


@pytest.mark.parametrize(
    "error_id, status, field",
    [
        ("app.user.conflict.error", 409, "username"),
        ("app.user.extension.conflict.error", 409, "extension"),
        ("app.user.email.conflict.error", 400, "email"),
    ],
)
@responses.activate
def test_duplicates_become_conflicts(error_id, status, field):
    responses.post(f"{API}/users", status=status, json={"id": error_id, "code": status, "detail": "exists"})
    with pytest.raises(errors.Conflict) as info:
        client().create_user({"username": "ann", "extension": "1001"}, password="x")
    assert info.value.field == field and info.value.error_id == error_id and info.value.status == status
    assert len(responses.calls) == 1  # never retried


@responses.activate
def test_create_body_is_top_level_and_not_retried_on_500():
    responses.post(
        f"{API}/users",
        status=500,
        json={"id": "internal", "code": 500},
        match=[matchers.json_params_matcher({"username": "ann", "name": "Ann", "password": "p"})],
    )
    with pytest.raises(errors.TransientError):
        client().create_user({"username": "ann", "name": "Ann"}, password="p")
    assert len(responses.calls) == 1


@responses.activate
def test_get_retried_on_503_and_429_with_retry_after():
    slept = []
    c = WebitelClient(
        WebitelSettings(url=API, token=TOKEN), retry=RetryPolicy(max_attempts=4), sleep=slept.append
    )
    responses.get(f"{API}/userinfo", status=503)
    responses.get(f"{API}/userinfo", status=429, headers={"Retry-After": "3"})
    responses.get(f"{API}/userinfo", json={"username": "admin"})
    assert c.userinfo() == {"username": "admin"}
    assert len(slept) == 2 and slept[1] == 3.0


@responses.activate
def test_no_retry_on_400():
    responses.get(f"{API}/userinfo", status=400, json={"id": "bad", "code": 400, "detail": "nope"})
    with pytest.raises(errors.BadRequest):
        client().userinfo()
    assert len(responses.calls) == 1


@responses.activate
def test_set_user_licenses_patches_complete_list():
    # The vendor's recorded traffic: PATCH and PUT answer a partial user, without the licences.
    partial = {"id": "9", "name": "Zoe", "username": "z", "updated_at": "1752300000000",
               "updated_by": {"id": "1", "name": "admin"}}
    responses.patch(
        f"{API}/users/9",
        json=partial,
        match=[matchers.json_params_matcher({"license": [{"id": "a"}, {"id": "b"}]})],
    )
    # Nothing is read from the answer: its missing licences are no "the user holds none".
    assert client().set_user_licenses(9, ["b", "a", "a"]) is None
    assert client().patch_user(9, {"license": [{"id": "a"}, {"id": "b"}]}) is None


@responses.activate
def test_a_user_with_odd_values_in_fields_the_sync_never_reads_is_still_read():
    # The list shape of the vendor's recorded traffic (device, presence, contact on every item), a
    # user object's devices, roles and audit refs, licence entries without name and scope; and a
    # time in another format in a field the sync never reads.
    odd = {"id": "5", "username": "eve", "name": "Eve", "extension": "1005",
           "device": {"id": "71", "name": "eve-phone"}, "presence": {"status": "sip"},
           "contact": {"id": "900", "name": "Eve"}, "devices": [{"id": "71", "name": "eve-phone"}],
           "roles": [{"id": "3", "name": "agent"}], "created_by": {"id": "1", "name": "admin"},
           "updated_by": {"id": "1"}, "updated_at": "2026-07-12T10:00:00Z", "deleted_at": {"x": 1},
           "license": [{"id": "lic-1", "prod": "CALL_CENTER", "issued_at": "soon", "expires_at": "9" * 30},
                       {"id": "lic-2", "prod": 7, "name": ["?"]}]}
    responses.get(f"{API}/users", json=page([odd, {"id": "6", "username": "fay", "created_at": "x"}], False))
    users = list(client().iter_users())
    assert all(isinstance(u, WebitelUser) for u in users)
    eve = users[0]
    assert (eve.id, eve.username, eve.extension, eve.serials) == (5, "eve", "1005", {"lic-1", "lic-2"})
    assert eve.updated_at is None and eve.deleted_at is None
    assert eve.licenses[0].expires_at is None and eve.licenses[1].product == "7"
    # A field the sync does read still makes the user unreadable (and reported), never guessed.
    responses.replace(responses.GET, f"{API}/users", json=page([{"id": "7", "extension": {"no": 1}}], False))
    (bad,) = client().iter_users()
    assert isinstance(bad, errors.RecordError) and bad.field == "extension"


@responses.activate
def test_delete_soft_by_default_and_permanent_on_request():
    responses.delete(f"{API}/users/3", json={"deleted": []}, match=[matchers.query_string_matcher("")])
    responses.delete(
        f"{API}/users/4", json={"deleted": []}, match=[matchers.query_string_matcher("permanent=true")]
    )
    c = client()
    c.delete_user(3)
    c.delete_user(4, permanent=True)
    assert len(responses.calls) == 2


@responses.activate
def test_licenses_used_and_days_left():
    responses.get(
        f"{API}/license",
        json=page(
            [
                {
                    "id": "s1",
                    "product": "CHAT",
                    "not_before": "1767225600000",
                    "not_after": "1798761600000",
                    "limit": 10,
                    "remain": 4,
                    "competitive": True,
                }
            ],
            False,
        ),
        match=[matchers.query_param_matcher({"product": "CHAT", "page": "1", "size": "1000"})],
    )
    (lic,) = client().list_licenses(product="CHAT")
    assert lic.used == 6 and lic.concurrent is True
    assert lic.days_left(datetime(2026, 12, 31, tzinfo=timezone.utc)) == 1


@responses.activate
def test_license_holders_use_serial_in_path():
    responses.get(
        f"{API}/products/abc-123/users",
        json=page([{"user": {"id": "7", "name": "Ann"}, "sessions": 2}], False),
    )
    (holder,) = client().iter_license_holders("abc-123")
    assert holder.user.id == 7 and holder.sessions == 2


@responses.activate
def test_upload_license_key_puts_certificate_and_scrubs_it(caplog):
    key = "WCS1.payload-SECRETKEY.signature"
    responses.put(
        f"{API}/customer",
        json={"id": "c1", "license": [{"id": "s9", "product": "WFM"}]},
        match=[matchers.json_params_matcher({"certificate": key})],
    )
    assert [l.serial for l in client().upload_license_key(key + "\n").licenses] == ["s9"]
    responses.put(
        f"{API}/customer",
        status=400,
        json={"id": "app.customer.certificate.invalid", "code": 400, "detail": f"bad key {key}"},
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.BadRequest) as info:
        client().upload_license_key(key)
    assert key not in str(info.value) and "***" in str(info.value)
    assert key not in caplog.text


@responses.activate
def test_secrets_never_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(f"{API}/login", json={"access_token": "sess-TOKEN-77"})
    responses.get(f"{API}/userinfo", status=503, json={"detail": f"echo {PASSWORD} sess-TOKEN-77"})
    c = client(username="admin", password=PASSWORD)
    with pytest.raises(errors.TransientError) as info:
        c.userinfo()
    text = str(info.value) + repr(info.value) + caplog.text + repr(c.http.auth) + repr(c.settings)
    assert PASSWORD not in text and "sess-TOKEN-77" not in text


def test_user_label_and_serials():
    user = WebitelUser.parse({"id": "3", "username": "x", "license": [{"id": "a"}, {"id": "b"}]})
    assert user.serials == {"a", "b"}


@pytest.mark.parametrize(
    "body",
    [
        {
            "id": "c1",
            "organization": "Corp",
            "license": [{"id": "s1", "product": "CHAT", "limit": 3, "remain": 1}],
        },
        {
            "customer": {
                "id": "c1",
                "organization": "Corp",
                "license": [{"id": "s1", "product": "CHAT", "limit": 3, "remain": 1}],
            }
        },
    ],
)
@responses.activate
def test_get_customer_bare_or_wrapped(body):
    responses.get(f"{API}/customer", json=body, match=[matchers.header_matcher({"X-Webitel-Access": TOKEN})])
    customer = client().get_customer()
    assert customer.organization == "Corp" and customer.licenses[0].used == 2


@responses.activate
def test_password_settings_and_generate():
    responses.get(f"{API}/users/password/settings", json={"settings": {"password_min_length": 12}})
    responses.post(
        f"{API}/users/password/generate",
        json={"password": "Gen-Erated-1"},
        match=[matchers.json_params_matcher({})],
    )
    c = client()
    assert c.password_settings() == {"password_min_length": 12}
    assert c.generate_password() == "Gen-Erated-1"


@responses.activate
def test_generate_password_sends_the_username_the_policy_needs():
    # webitel-openapi.json apiGeneratePasswordRequest.username: "required to enforce
    # password_contains_login policy".
    responses.post(
        f"{API}/users/password/generate",
        json={"password": "Gen-Erated-2"},
        match=[matchers.json_params_matcher({"username": "ann.lee"})],
    )
    assert client().generate_password("ann.lee") == "Gen-Erated-2"


@responses.activate
def test_find_user_rechecks_the_ilike_answer_for_exact_equality():
    # The server's username filter is an ILIKE: "eve_x" also matches "eveqx".
    responses.get(
        f"{API}/users",
        json=page([{"id": "1", "username": "eveqx"}, {"id": "2", "username": "Eve_X"}], False),
        match=[matchers.query_param_matcher({"username": "eve_x"}, strict_match=False)],
    )
    assert client().find_user("eve_x").id == 2
    responses.get(f"{API}/users", json=page([{"id": "1", "username": "eveqx"}], False))
    assert client().find_user("eve_x") is None


# --- odd and hostile list answers ------------------------------------------------------------------


def serve_pages(make_page, *, stop_after=60):
    """A /users callback answering ``make_page(page)``; after ``stop_after`` pages an empty last
    page, so that a client without limits ends (wrongly) instead of hanging the test."""
    calls = []

    def callback(request):
        page = int(dict(p.split("=") for p in request.url.split("?")[1].split("&"))["page"])
        calls.append(page)
        body = make_page(page) if page <= stop_after else page_body([], False)
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{API}/users", callback=callback)
    responses.add_callback(responses.GET, f"{API}/license", callback=callback)
    return calls


def page_body(items, next_):
    return {"page": 1, "next": next_, "items": items}


@pytest.mark.parametrize("value", ["false", "true", 1, 0, "yes", [], {}])
@responses.activate
def test_next_must_be_a_real_boolean(value):
    calls = serve_pages(lambda page: page_body([{"id": str(page), "username": f"u{page}"}], value))
    with pytest.raises(errors.BadResponse, match="not a boolean"):
        list(client().iter_users())
    assert calls == [1]


@pytest.mark.parametrize("concurrency", [1, 4])
@responses.activate
def test_pages_that_alternate_are_refused(concurrency):
    a = [{"id": "1", "username": "a"}, {"id": "2", "username": "b"}]
    b = [{"id": "3", "username": "c"}, {"id": "4", "username": "d"}]
    calls = serve_pages(lambda page: page_body(a if page % 2 else b, True))
    with pytest.raises(errors.BadResponse, match="page 3 repeats pages read before"):
        list(client(max_concurrency=concurrency).iter_users())
    # Sequential: up to page 3; with pages asked ahead, at most 3 more were sent past it.
    assert calls[:2] == [1, 2] and 3 in calls and set(calls) <= set(range(1, 3 + concurrency))


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("listing", ["iter_users", "iter_licenses"])
@responses.activate
def test_endless_pages_of_new_ids_stop_at_max_pages(listing, concurrency):
    calls = serve_pages(lambda page: page_body([{"id": str(page), "username": f"u{page}"}], True))
    with pytest.raises(errors.BadResponse) as raised:
        list(getattr(client(max_pages=5, max_concurrency=concurrency), listing)())
    assert sorted(calls) == [1, 2, 3, 4, 5]  # never a page past max_pages, even asked ahead
    text = str(raised.value)
    assert "webitel GET /" in text and API in text and "after 5 pages (max_pages)" in text


@responses.activate
def test_a_user_on_two_pages_is_read_once_with_a_warning(caplog):
    first = [{"id": "1", "username": "a"}, {"id": "2", "username": "b"}]
    second = [{"id": 2, "username": "b"}, {"id": "3", "username": "c"}]  # 2 again, as a number
    serve_pages(lambda page: page_body(first, True) if page == 1 else page_body(second, False))
    with caplog.at_level(logging.WARNING):
        assert [u.id for u in client().iter_users()] == [1, 2, 3]
    assert "1 items of page 2 came on an earlier page" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        {"id": "app.users.search.error", "code": 500, "status": "Internal Server Error", "detail": "db down"},
        {"code": 13, "message": "internal"},
        {"items": [], "id": "app.error", "code": 503, "detail": "busy"},
        {"error": "upstream"},
    ],
)
@responses.activate
def test_an_error_envelope_with_status_200_is_no_empty_list(body):
    responses.get(f"{API}/users", json=body)
    with pytest.raises(errors.BadResponse, match="list answer without items") as raised:
        list(client().iter_users())
    assert raised.value.status == 200


@pytest.mark.parametrize("body", [{}, {"page": 1}, {"page": 1, "next": False}, {"items": None, "size": 10}])
@responses.activate
def test_an_answer_with_only_paging_keys_is_an_empty_list(body):
    responses.get(f"{API}/users", json=body)
    assert list(client().iter_users()) == []


@pytest.mark.parametrize(
    "ident", [True, False, -1, 0, "-1", "0", 10**40, "1" * 40, 1.0, "1.5", " 7", None, {"id": 1}, 2**63]
)
@responses.activate
def test_a_user_whose_id_is_no_id_is_an_invalid_record(ident):
    responses.get(
        f"{API}/users", json=page([{"id": ident, "username": "odd"}, {"id": "5", "username": "e"}], False)
    )
    odd, good = list(client().iter_users())
    assert isinstance(odd, errors.RecordError) and odd.field == "id" and "odd (invalid id" in odd.record
    # The sync reads "(id <digits>)" from the record as the Webitel id: an invalid one must not pass.
    assert not re.search(r"\(id (\d+)\)", odd.record)
    assert isinstance(good, WebitelUser) and good.id == 5


@responses.activate
def test_the_largest_int64_id_is_a_user():
    responses.get(f"{API}/users", json=page([{"id": str(2**63 - 1), "username": "max"}], False))
    assert [u.id for u in client().iter_users()] == [2**63 - 1]


# --- pages asked ahead (prefetch) ----------------------------------------------------------------


def numbered(last, *, size=2, short=()):
    """Pages 1..last of ``size`` users (``short`` pages have one), ``next`` true up to ``last``;
    past it, empty pages saying next = false, as Webitel answers a page past the end."""
    def make(page):
        if page > last:
            return page_body([], False)
        count = 1 if page in short else size
        return page_body([{"id": str(page * 10 + i), "username": f"u{page}-{i}"} for i in range(count)],
                         page < last)
    return make


def ids_of(last, *, size=2, short=()):
    return [page * 10 + i for page in range(1, last + 1) for i in range(1 if page in short else size)]


@pytest.mark.parametrize("last", [1, 2])
@responses.activate
def test_a_list_of_one_or_two_pages_costs_no_request_more(last):
    calls = serve_pages(numbered(last))
    assert [u.id for u in client(max_concurrency=4).iter_users()] == ids_of(last)
    settle()
    assert calls == list(range(1, last + 1))


@pytest.mark.parametrize("concurrency", [2, 4])
@responses.activate
def test_pages_after_the_second_are_asked_ahead_and_read_in_order(concurrency):
    calls = serve_pages(numbered(10, short={5}))  # page 5 short yet next = true: not the end
    users = list(client(max_concurrency=concurrency).iter_users())
    settle()
    assert [u.id for u in users] == ids_of(10, short={5})
    assert calls[:2] == [1, 2]  # one by one until page 2 says next
    past_end = sorted(set(calls) - set(range(1, 11)))
    assert sorted(calls) == list(range(1, 11)) + past_end  # each page once
    assert past_end == list(range(11, 11 + len(past_end))) and len(past_end) <= concurrency - 1


@responses.activate
def test_without_prefetch_pages_are_asked_one_by_one():
    calls = serve_pages(numbered(6))
    assert [u.id for u in client(max_concurrency=4).iter_users(prefetch=False)] == ids_of(6)
    settle()
    assert calls == [1, 2, 3, 4, 5, 6]


@responses.activate
def test_a_caller_that_stops_early_leaves_the_pages_not_started_unsent():
    calls = serve_pages(numbered(50))
    users = client(max_concurrency=4).iter_users()
    taken = [next(users).id for _ in range(7)]  # into page 4
    users.close()
    settle()
    assert taken == ids_of(4)[:7]
    assert max(calls) <= 4 + 3


@responses.activate
def test_an_empty_page_mid_way_ends_the_read_as_before():
    pages = numbered(10)
    calls = serve_pages(lambda page: page_body([], True) if page == 6 else pages(page))
    assert [u.id for u in client(max_concurrency=4).iter_users()] == ids_of(5)
    settle()
    assert set(range(1, 7)) <= set(calls) and max(calls) <= 6 + 3


def failing_at(bad, last=10):
    pages = numbered(last)

    def callback(request):
        page = int(dict(p.split("=") for p in request.url.split("?")[1].split("&"))["page"])
        if page == bad:
            return 403, {}, json.dumps({"id": "app.denied", "code": 403, "detail": "no access to users"})
        return 200, {}, json.dumps(pages(page))

    responses.add_callback(responses.GET, f"{API}/users", callback=callback)


@responses.activate
def test_a_failing_page_stops_the_read_with_the_error_of_a_read_one_by_one():
    outcomes = []
    for concurrency in (1, 4):
        responses.reset()
        failing_at(5)
        got = []
        with pytest.raises(errors.ApiError) as raised:
            for user in client(max_concurrency=concurrency).iter_users():
                got.append(user.id)
        outcomes.append((got, type(raised.value), str(raised.value)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == ids_of(4) and outcomes[0][1] is errors.PermissionDenied


@responses.activate
def test_a_page_past_the_end_that_fails_does_not_fail_the_read():
    failing_at(11)  # asked ahead, past the last page: its answer is never read
    assert [u.id for u in client(max_concurrency=4).iter_users()] == ids_of(10)
