"""Creatio auth against mocked HTTP: forms login and cookies, one re-login, OAuth token life, secrets."""

import logging
from urllib.parse import parse_qs

import pytest
import responses
from responses import matchers

from connector import errors
from connector.creatio.client import CreatioClient
from connector.retry import RetryPolicy
from connector.settings import CreatioSettings

SITE = "https://creatio.test"
LOGIN = f"{SITE}/ServiceModel/AuthService.svc/Login"
CONTACTS = f"{SITE}/0/odata/Contact"
IDENTITY = "https://creatio-is.test"
TOKEN_URL = f"{IDENTITY}/connect/token"
PASSWORD = "pw-SECRET-5678"
CLIENT_SECRET = "cs-SECRET-9012"
TOKEN = "tok-SECRET-3456"
COOKIES = [("Set-Cookie", ".ASPXAUTH=aspx-1; path=/; HttpOnly"), ("Set-Cookie", "BPMCSRF=csrf-1; path=/"),
           ("Set-Cookie", "BPMLOADER=loader-1; path=/; HttpOnly")]
COUNT_BODY = {"@odata.count": 7, "value": []}


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def forms_client(**kw):
    settings = CreatioSettings(url=SITE, username="svc", password=PASSWORD, odata_path="/0/odata")
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=3), sleep=lambda s: None, **kw)


def oauth_client(clock):
    settings = CreatioSettings(url=SITE, auth="oauth", identity_url=IDENTITY, client_id="app-1",
                               client_secret=CLIENT_SECRET, odata_path="/0/odata")
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=3), sleep=lambda s: None, clock=clock)


def add_login(cookies=COOKIES, body=None, **kw):
    return responses.post(LOGIN, json=body if body is not None else {"Code": 0, "Message": ""},
                          headers=list(cookies), **kw)


def calls_to(url):
    return [c for c in responses.calls if c.request.url.split("?")[0] == url]


def assert_no_secret(*texts):
    for text in texts:
        for secret in (PASSWORD, CLIENT_SECRET, TOKEN):
            assert secret not in text


# --- forms login -----------------------------------------------------------------------------


@responses.activate
def test_forms_login_request_and_session_headers():
    add_login(match=[matchers.json_params_matcher({"UserName": "svc", "UserPassword": PASSWORD}),
                     matchers.header_matcher({"ForceUseSession": "true"})])
    responses.get(CONTACTS, json=COUNT_BODY,
                  match=[matchers.header_matcher({"BPMCSRF": "csrf-1", "ForceUseSession": "true"})])
    client = forms_client()
    assert client.count("Contact") == 7
    assert client.count("Contact") == 7
    login, first, second = responses.calls
    assert login.request.method == "POST" and login.request.url == LOGIN
    assert "BPMCSRF" not in login.request.headers and "Cookie" not in login.request.headers
    assert login.request.headers["Content-Type"] == "application/json"
    for call in (first, second):  # logged in once, lazily; cookies travel back
        assert call.request.headers["Cookie"] == ".ASPXAUTH=aspx-1; BPMCSRF=csrf-1; BPMLOADER=loader-1"
        assert call.request.headers["BPMCSRF"] == "csrf-1"
    assert client.http.session.cookies.get("BPMCSRF") == "csrf-1"


@responses.activate
def test_forms_login_refused_with_code_1_is_auth_error_with_server_message():
    add_login(cookies=[], body={"Code": 1, "Message": "Invalid username or password", "Exception": None})
    with pytest.raises(errors.AuthError) as caught:
        forms_client().count("Contact")
    assert "Invalid username or password" in str(caught.value) and caught.value.error_id == "1"
    assert caught.value.path == "/ServiceModel/AuthService.svc/Login"
    assert len(responses.calls) == 1  # a refused login is never retried (it would lock the user)
    assert_no_secret(str(caught.value), repr(caught.value))


@responses.activate
def test_server_echoing_the_password_is_redacted():
    add_login(cookies=[], body={"Code": 1, "Message": f"bad password {PASSWORD}"})
    with pytest.raises(errors.AuthError) as caught:
        forms_client().count("Contact")
    assert_no_secret(str(caught.value), repr(caught.value))
    assert "***" in str(caught.value)


@pytest.mark.parametrize("body, content_type", [
    (b'{"Code": "0"}', "application/json"),
    (b'{"Message": "ok"}', "application/json"),
    (b'{"Code": true}', "application/json"),
    (b"[0]", "application/json"),
    (b"<html><title>Login</title></html>", "text/html"),
])
@responses.activate
def test_login_without_numeric_code_is_auth_error(body, content_type):
    responses.post(LOGIN, body=body, content_type=content_type)
    with pytest.raises(errors.AuthError, match="without a numeric Code"):
        forms_client().count("Contact")


@responses.activate
def test_login_retried_on_transient_error():
    responses.post(LOGIN, status=503)
    add_login()
    responses.get(CONTACTS, json=COUNT_BODY)
    assert forms_client().count("Contact") == 7
    assert len(calls_to(LOGIN)) == 2


@responses.activate
def test_relogin_once_on_401():
    add_login()
    responses.get(CONTACTS, json={"Message": "Authentication failed."}, status=401)
    responses.get(CONTACTS, json=COUNT_BODY)
    assert forms_client().count("Contact") == 7
    assert [c.request.url.split("?")[0] for c in responses.calls] == [LOGIN, CONTACTS, LOGIN, CONTACTS]


@responses.activate
def test_relogin_on_redirect_to_login_page_without_following_it():
    add_login()
    responses.get(CONTACTS, status=302, headers={"Location": "/Login/NuiLogin.aspx?ReturnUrl=%2f0%2fodata"})
    responses.get(CONTACTS, json=COUNT_BODY)
    assert forms_client().count("Contact") == 7
    urls = [c.request.url.split("?")[0] for c in responses.calls]
    assert urls == [LOGIN, CONTACTS, LOGIN, CONTACTS]  # NuiLogin.aspx never fetched


@responses.activate
def test_redirect_elsewhere_is_bad_response_not_relogin():
    add_login()
    responses.get(CONTACTS, status=302, headers={"Location": f"{SITE}/maintenance?x=personal"})
    with pytest.raises(errors.BadResponse) as caught:
        forms_client().count("Contact")
    assert "/maintenance" in str(caught.value) and "personal" not in str(caught.value)
    assert len(calls_to(LOGIN)) == 1


@responses.activate
def test_relogin_on_login_page_served_with_200():
    add_login()
    responses.get(CONTACTS, body="<html><script>location='/Login/NuiLogin.aspx'</script></html>",
                  content_type="text/html; charset=utf-8")
    responses.get(CONTACTS, json=COUNT_BODY)
    assert forms_client().count("Contact") == 7
    assert len(calls_to(LOGIN)) == 2


@responses.activate
def test_relogin_on_stale_csrf_403_then_second_403_is_permission_denied():
    add_login()
    responses.get(CONTACTS, json={"error": {"code": "", "message": "Forbidden"}}, status=403)
    with pytest.raises(errors.PermissionDenied):
        forms_client().count("Contact")
    assert [c.request.url.split("?")[0] for c in responses.calls] == [LOGIN, CONTACTS, LOGIN, CONTACTS]


@responses.activate
def test_stale_csrf_cured_by_relogin_uses_the_new_token():
    add_login()
    responses.get(CONTACTS, status=403, match=[matchers.header_matcher({"BPMCSRF": "csrf-1"})])
    add_login(cookies=[("Set-Cookie", "BPMCSRF=csrf-2; path=/"), ("Set-Cookie", ".ASPXAUTH=aspx-2; path=/")])
    responses.get(CONTACTS, json=COUNT_BODY, match=[matchers.header_matcher({"BPMCSRF": "csrf-2"})])
    assert forms_client().count("Contact") == 7


@responses.activate
def test_no_login_loop_401_after_relogin_is_auth_error():
    add_login()
    responses.get(CONTACTS, json=COUNT_BODY)
    responses.get(CONTACTS, json={"Message": "Authentication failed."}, status=401)
    client = forms_client()
    assert client.count("Contact") == 7  # session established: one login
    responses.calls.reset()
    with pytest.raises(errors.AuthError):
        client.count("Contact")
    # exactly one re-login, then the second 401 is final (AuthError is never retried)
    assert [c.request.url.split("?")[0] for c in responses.calls] == [CONTACTS, LOGIN, CONTACTS]


@responses.activate
def test_site_without_csrf_cookie_logs_in_once_and_sends_no_csrf_header():
    add_login(cookies=[("Set-Cookie", ".ASPXAUTH=aspx-1; path=/")])
    responses.get(CONTACTS, json=COUNT_BODY)
    client = forms_client()
    client.count("Contact")
    client.count("Contact")
    assert len(calls_to(LOGIN)) == 1
    assert all("BPMCSRF" not in c.request.headers for c in calls_to(CONTACTS))


# --- OAuth -----------------------------------------------------------------------------------


def add_token(token=TOKEN, expires_in=3600, **kw):
    body = {"access_token": token, "token_type": "Bearer", "scope": "ApplicationAccess_1"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return responses.post(TOKEN_URL, json=body, **kw)


@responses.activate
def test_oauth_token_request_and_bearer_header():
    add_token(match=[matchers.urlencoded_params_matcher(
        {"grant_type": "client_credentials", "client_id": "app-1", "client_secret": CLIENT_SECRET})])
    responses.get(CONTACTS, json=COUNT_BODY,
                  match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})])
    client = oauth_client(FakeClock())
    assert client.count("Contact") == 7
    token_call, data_call = responses.calls
    assert token_call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.request.body)["grant_type"] == ["client_credentials"]
    assert "Authorization" not in token_call.request.headers
    for header in ("BPMCSRF", "ForceUseSession"):
        assert header not in data_call.request.headers


@responses.activate
def test_oauth_token_cached_and_renewed_60s_before_expiry():
    clock = FakeClock(1000.0)
    add_token(token="tok-A-xxxx", expires_in=600)
    add_token(token="tok-B-xxxx", expires_in=600)
    responses.get(CONTACTS, json=COUNT_BODY)
    client = oauth_client(clock)
    client.count("Contact")
    clock.now = 1000.0 + 539.9  # still more than 60 s left
    client.count("Contact")
    clock.now = 1000.0 + 540.0  # 60 s before expiry: renew
    client.count("Contact")
    data = calls_to(CONTACTS)
    assert [c.request.headers["Authorization"] for c in data] == [
        "Bearer tok-A-xxxx", "Bearer tok-A-xxxx", "Bearer tok-B-xxxx"]
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_oauth_lifetime_counts_from_when_the_request_was_sent():
    clock = FakeClock(1000.0)

    def slow_token(request):
        clock.now += 30.0  # the answer arrives 30 s later
        return 200, {}, '{"access_token": "tok-A-xxxx", "expires_in": 120}'

    responses.add_callback(responses.POST, TOKEN_URL, callback=slow_token)
    responses.get(CONTACTS, json=COUNT_BODY)
    client = oauth_client(clock)
    client.count("Contact")
    clock.now = 1000.0 + 120 - 60 - 0.1
    client.count("Contact")
    assert len(calls_to(TOKEN_URL)) == 1
    clock.now = 1000.0 + 120 - 60  # renew point counted from the send time, not the answer
    client.count("Contact")
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_oauth_default_lifetime_is_3600():
    clock = FakeClock(0.0)
    add_token(expires_in=None)
    responses.get(CONTACTS, json=COUNT_BODY)
    client = oauth_client(clock)
    client.count("Contact")
    clock.now = 3539.0
    client.count("Contact")
    assert len(calls_to(TOKEN_URL)) == 1
    clock.now = 3540.0
    client.count("Contact")
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_oauth_401_fetches_a_new_token_once():
    add_token(token="tok-A-xxxx")
    responses.get(CONTACTS, status=401)
    add_token(token="tok-B-xxxx")
    responses.get(CONTACTS, json=COUNT_BODY,
                  match=[matchers.header_matcher({"Authorization": "Bearer tok-B-xxxx"})])
    assert oauth_client(FakeClock()).count("Contact") == 7
    assert len(calls_to(TOKEN_URL)) == 2


@responses.activate
def test_oauth_invalid_client_is_auth_error_without_secret():
    responses.post(TOKEN_URL, json={"error": "invalid_client"}, status=400)
    with pytest.raises(errors.AuthError) as caught:
        oauth_client(FakeClock()).count("Contact")
    assert "invalid_client" in str(caught.value) and caught.value.status == 400
    assert caught.value.path == "/connect/token"
    assert len(responses.calls) == 1
    assert_no_secret(str(caught.value), repr(caught.value))


@responses.activate
def test_oauth_answer_without_token_is_auth_error():
    responses.post(TOKEN_URL, json={"error": "unauthorized_client"})
    with pytest.raises(errors.AuthError, match="unauthorized_client"):
        oauth_client(FakeClock()).count("Contact")


# --- secrets never leak ------------------------------------------------------------------------


@responses.activate
def test_no_secret_in_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    # forms: a transient login failure (logged retry), a re-login, a server echoing the password
    responses.post(LOGIN, status=503, json={"Message": f"echo {PASSWORD}"})
    add_login()
    responses.get(CONTACTS, status=401)
    add_login()
    responses.get(CONTACTS, status=500, json={"error": {"message": f"boom {PASSWORD}"}})
    raised = []
    with pytest.raises(errors.ConnectorError) as caught:
        forms_client().count("Contact")
    raised.append(caught.value)
    # OAuth: a token, a 401, a refused renewal echoing the secret and the token
    add_token()
    responses.get(CONTACTS, status=401)
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_client",
                                                "error_description": f"{CLIENT_SECRET} {TOKEN}"})
    with pytest.raises(errors.AuthError) as caught:
        oauth_client(FakeClock()).count("Contact")
    raised.append(caught.value)
    for error in raised:
        assert_no_secret(str(error), repr(error))
    assert caplog.records, "the retry path should have logged something"
    for record in caplog.records:
        assert_no_secret(record.getMessage())
    for auth in (forms_client().http.auth, oauth_client(FakeClock()).http.auth):
        assert_no_secret(repr(auth))
