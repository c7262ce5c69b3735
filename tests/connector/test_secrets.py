"""Secrets in every form text can carry them, and the session secrets every client holds.

``redact`` is checked against each encoding a server or a serialiser may give a secret; the
clients against ``responses`` for what their sessions hold (cookies, CSRF, bearer and session
tokens) and for the order scrub-then-cut; the log formatters for the live clients' secrets.
"""

from __future__ import annotations

import base64
import gc
import html
import json
import logging
import re
import weakref
from urllib.parse import quote, quote_plus

import pytest
import responses

from connector import errors
from connector.creatio.client import CreatioClient
from connector.errors import redact
from connector.retry import RetryPolicy
from connector.secrets import _sources as live_sources
from connector.secrets import holds_secret, live_secrets
from connector.settings import CreatioSettings, WebitelSettings
from connector.webitel.client import WebitelClient
from jobs.logs import JsonFormatter, TextFormatter

LONG = 'pa"ss\\wörd-é'
SHORT = "Zq7#x"
KEY = "LICENSE-LINE-ONE-8f2c1a\nLICENSE-LINE-TWO-77d0e4\n-----"
SITE = "https://creatio.test"
LOGIN = f"{SITE}/ServiceModel/AuthService.svc/Login"
CONTACTS = f"{SITE}/0/odata/Contact"
ASPXAUTH = "9F8E7D6C5B4A39281706F5E4D3C2B1A0"
CSRF = "csrf-Ab1Cd2Ef3Gh4Ij5Kl6"


def json_forms(value: str) -> list[str]:
    ascii_ = json.dumps(value)[1:-1]
    return [ascii_, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(ascii_)[1:-1],
            # System.Text.Json escapes quotes and the like as \u0022.
            ascii_.replace('\\"', "\\u0022").replace("\\\\", "\\u005C")]


def base64_forms(value: str) -> list[str]:
    data = value.encode()
    out = []
    for prefix in (b"", b"-", b"--"):  # every alignment inside a longer base64 text
        out.append(base64.b64encode(b"user:" + prefix + data + b"!").decode())
        out.append(base64.urlsafe_b64encode(prefix + data).decode().rstrip("="))
    return out


def every_form(value: str) -> list[str]:
    quoted = quote(value, safe="")
    return [value, *json_forms(value), quoted, re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quoted),
            quote_plus(value), repr(value)[1:-1], ascii(value)[1:-1], *base64_forms(value),
            quote(json.dumps(value)[1:-1], safe=""),
            html.escape(value).encode("ascii", "xmlcharrefreplace").decode()]


@pytest.mark.parametrize("form", every_form(LONG))
def test_a_long_secret_is_scrubbed_in_every_encoding(form):
    text = f"login failed for {form}, try again"
    out = redact(text, [LONG])
    assert form not in out and "***" in out, out
    assert out.startswith("login failed for ") and out.endswith(", try again")


@pytest.mark.parametrize("form", [f for f in every_form(SHORT)])
def test_a_short_secret_is_scrubbed_as_a_whole_token_in_every_encoding(form):
    for text in (f"token {form}\r\n", f'{{"token":"{form}"}}', f"x-access%3A%20{form}%0D%0A", f"\\n{form}"):
        out = redact(text, [SHORT])
        assert form not in out, (text, out)


def test_a_short_secret_inside_a_longer_word_is_left_alone():
    # Decision under test: short values are whole tokens only, so words and ids stay readable.
    assert redact("xZq7#xy and Zq7#x1", [SHORT]) == "xZq7#xy and Zq7#x1"
    assert redact("attempt 1 of 3", ["1"]) == "attempt *** of 3"
    assert redact("run 12345 ended", ["1234"]) == "run 12345 ended"


def test_a_multi_line_key_is_scrubbed_whole_and_line_by_line():
    for text in (KEY, json.dumps(KEY), KEY.replace("\n", "\r\n"), " ".join(KEY.split()),
                 quote(KEY), "only LICENSE-LINE-TWO-77d0e4 here"):
        out = redact(text, [KEY])
        assert "8f2c1a" not in out and "77d0e4" not in out, out
    # A line without a letter or digit is no secret of its own.
    assert redact("----- a ruler -----", [KEY]) == "----- a ruler -----"


def test_empty_secrets_and_empty_text():
    assert redact("", [LONG]) == "" and redact("text", ["", ""]) == "text"
    assert not holds_secret("nothing here", [LONG, SHORT, KEY])


# --- what the sessions hold ---------------------------------------------------------------------


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def creatio_client(**kw):
    settings = CreatioSettings(url=SITE, username="svc", password=LONG, odata_path="/0/odata", **kw)
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=1), sleep=lambda s: None)


def login_with_cookies(mocked):
    mocked.post(LOGIN, json={"Code": 0}, headers=[
        ("Set-Cookie", f".ASPXAUTH={ASPXAUTH}; path=/"), ("Set-Cookie", f"BPMCSRF={CSRF}; path=/"),
        ("Set-Cookie", "BPMLOADER=ldr-0123456789; path=/"), ("Set-Cookie", "UserName=svc; path=/")])


def test_creatio_session_cookies_are_secrets_of_the_client(mocked):
    login_with_cookies(mocked)

    def echo_headers(request):
        return 400, {}, json.dumps({"Message": "bad request: " + json.dumps(dict(request.headers))})

    mocked.add_callback(responses.GET, CONTACTS, callback=echo_headers)
    client = creatio_client()
    with pytest.raises(errors.BadRequest) as raised:
        client.list_rows("Contact", select=["Id"])
    text = str(raised.value)
    assert ASPXAUTH not in text and CSRF not in text and "ldr-0123456789" not in text
    assert "***" in text and "svc" in text  # the UserName cookie holds the login, no secret
    held = client.http.secrets()
    assert {LONG, ASPXAUTH, CSRF, "ldr-0123456789"} <= set(held) and "svc" not in held
    assert ASPXAUTH in live_secrets()


def test_a_message_is_scrubbed_before_it_is_cut(mocked):
    login_with_cookies(mocked)
    # The cookie straddles the cut (300 characters): cutting first would leave its first half.
    mocked.get(CONTACTS, status=400, json={"Message": "x" * 290 + " " + ASPXAUTH})
    with pytest.raises(errors.BadRequest) as raised:
        creatio_client().list_rows("Contact", select=["Id"])
    assert ASPXAUTH[:6] not in str(raised.value) and len(raised.value.message) <= 300


def test_error_ids_reasons_and_request_ids_are_scrubbed_and_cut(mocked):
    login_with_cookies(mocked)
    mocked.get(CONTACTS, status=400, headers={"X-Request-Id": f"req {ASPXAUTH}"},
               json={"error": {"code": f"E {CSRF} " + "y" * 400, "message": "bad"}})
    with pytest.raises(errors.BadRequest) as raised:
        creatio_client().list_rows("Contact", select=["Id"])
    exc = raised.value
    assert CSRF not in exc.error_id and len(exc.error_id) <= 100 and ASPXAUTH not in exc.request_id


def test_an_oauth_token_stays_a_secret_after_it_is_renewed(mocked):
    identity = "https://identity.test"
    for token in ("tok-first-0123456789", "tok-second-0123456789"):
        mocked.post(f"{identity}/connect/token", json={"access_token": token, "expires_in": 3600})
    mocked.get(CONTACTS, status=401, json={"Message": "expired tok-first-0123456789"})
    mocked.get(CONTACTS, status=400, json={"Message": "tok-first-0123456789 and tok-second-0123456789"})
    client = CreatioClient(
        CreatioSettings(
            url=SITE,
            auth="oauth",
            identity_url=identity,
            client_id="cid",
            client_secret="client-secret-value",
            odata_path="/0/odata",
        ),
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda s: None,
    )
    with pytest.raises(errors.BadRequest) as raised:
        client.list_rows("Contact", select=["Id"])
    assert "tok-" not in str(raised.value)


def test_webitel_session_token_and_cookies_are_secrets(mocked):
    api = "https://webitel.test/api"
    mocked.post(
        f"{api}/login",
        json={"access_token": "sess-0123456789abcdef"},
        headers=[("Set-Cookie", "WBTLAUTH=wbtl-cookie-0123456789; path=/")],
    )
    mocked.get(
        f"{api}/userinfo",
        status=400,
        json={"id": "x", "detail": "sess-0123456789abcdef wbtl-cookie-0123456789"},
    )
    client = WebitelClient(
        WebitelSettings(url=api, username="admin", password=LONG),
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda s: None,
    )
    with pytest.raises(errors.BadRequest) as raised:
        client.userinfo()
    assert "0123456789" not in str(raised.value)


def test_log_lines_are_scrubbed_of_the_live_clients_secrets(mocked):
    login_with_cookies(mocked)
    mocked.get(CONTACTS, json={"value": [], "@odata.count": 0})
    client = creatio_client()
    client.list_rows("Contact", select=["Id"])
    record = logging.LogRecord(
        "t",
        logging.WARNING,
        __file__,
        1,
        "cookie %s csrf %s pw %s",
        (ASPXAUTH, json.dumps(CSRF), json.dumps(LONG)),
        None,
    )
    for line in (TextFormatter().format(record), JsonFormatter().format(record)):
        assert ASPXAUTH not in line and CSRF not in line and "w\\u00f6rd" not in line and "wörd" not in line
    json.loads(JsonFormatter().format(record))
    # A client that is gone takes its session secrets along: nothing piles up in a worker.
    assert client.http in live_sources
    http = weakref.ref(client.http)
    del client
    gc.collect()
    assert http() is None


def test_a_json_line_whose_scrubbing_would_break_it_is_withheld():
    from jobs.logs import register_secrets

    # Serialising forms this secret: its last backslash is the one that escapes the quote after
    # it, and replacing the secret would take the escape away and break the line.
    odd = "7f3a-odd-secret\\"
    register_secrets([odd])
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "%s", ('7f3a-odd-secret"',), None)
    line = JsonFormatter().format(record)
    assert json.loads(line)["message"] == "*** (line withheld: it held a secret)" and "7f3a" not in line
