"""The clients against servers that misbehave on purpose, over real loopback sockets.

A server may trickle its answer a byte at a time, send a body without end, page forever, answer
``"next": "false"``, wrap an error in status 200, put the request's credentials into its error
messages, or sit behind TLS while the environment names another CA bundle. Each test shows the
client stopping in time, refusing what it cannot trust, and keeping every secret of its session
(passwords, tokens, cookies, a licence key) out of its errors, its log lines and the run report.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import time

import certifi
import pytest

from connector import errors
from connector.creatio.client import CreatioClient
from connector.retry import RetryPolicy
from connector.settings import CreatioSettings, WebitelSettings
from connector.webitel.client import WebitelClient
from hostile import ECHO_FORMS, HostileServer, Reply, echo, forms_of, make_certificate
from jobs.logs import JsonFormatter, TextFormatter, scrub
from sandbox.base import Response

pytestmark = pytest.mark.e2e

TOKEN = "tok-SECRET-0123456789"
LONG = 'pa"ss\\wörd-é'  # a password with a quote, a backslash and non-ASCII letters
SHORT = "Zq7#x"  # five characters: scrubbed as a whole token
KEY = "WEBITEL-LICENSE-LINE-1-a8f3c2e1\nWEBITEL-LICENSE-LINE-2-77d0e4b9\n-----END-----"


def webitel(server, *, attempts=1, **kw):
    settings = WebitelSettings(url=server.url + "/api", **({"token": TOKEN} | kw))
    return WebitelClient(settings, retry=RetryPolicy(max_attempts=attempts), sleep=lambda s: None)


def creatio(server, *, attempts=1, **kw):
    values = {"username": "svc", "password": "pw-SECRET-0123", "odata_path": "/0/odata"} | kw
    settings = CreatioSettings(url=server.url, page_size=3, **values)
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=attempts), sleep=lambda s: None)


@pytest.fixture
def serve():
    started = []

    def start(handler, **kw):
        server = HostileServer(handler, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def logged_in(seen):
    """A Creatio login that succeeds and sets the session cookies."""
    return Reply(200, {"Code": 0}, headers=[("Set-Cookie", ".ASPXAUTH=AUTH0123456789ABCDEF; path=/"),
                                           ("Set-Cookie", "BPMCSRF=csrf-token-xyz123; path=/")])


# --- the deadline of a request ---------------------------------------------------------------------


def test_a_body_trickled_byte_by_byte_ends_at_the_deadline(serve):
    body = b'{"username": "admin"}' + b" " * 19
    server = serve(lambda seen: Reply(200, (bytes([b]) for b in body), length=len(body), every_s=0.1,
                                      headers=[("Content-Type", "application/json")]))
    client = webitel(server, attempts=2, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(errors.TransientError, match=r"no complete answer within 0.5 s \(timeout_s\)"):
        client.userinfo()
    # Two attempts of half a second each (requests' own read timeout never fires: a byte comes
    # every 0.1 s); the whole body would take four.
    assert time.monotonic() - started < 1.8
    assert len(server.calls()) == 2 and server.body_bytes < len(body)


def test_a_trickled_status_line_and_headers_end_at_the_deadline(serve):
    server = serve(lambda seen: Reply(200, {"username": "admin"}, every_s=0.05, trickle_head=True))
    started = time.monotonic()
    with pytest.raises(errors.TransientError, match="no complete answer within 0.4 s"):
        webitel(server, timeout_s=0.4).userinfo()
    assert time.monotonic() - started < 1.2


def test_a_body_that_ends_when_the_server_closes_is_not_taken_as_complete_when_cut(serve):
    # Without a length, a body ends when the connection closes: the deadline's cut must not look
    # like the end of a short list.
    pieces = [b'{"page": 1, "next": false, "items": [{"id": "1", "username": "a"}', *[b"   "] * 40, b"]}"]
    server = serve(lambda seen: Reply(200, iter(pieces), every_s=0.05))
    with pytest.raises(errors.TransientError, match="no complete answer"):
        list(webitel(server, timeout_s=0.5).iter_users())


# --- the size of an answer -------------------------------------------------------------------------


def endless_body(piece=b"x" * 65536, limit=64 * 2**20):
    """Pieces of a body until ``limit`` bytes: far more than any cap, finite for a client without one."""
    for _ in range(limit // len(piece)):
        yield piece


def test_a_huge_announced_body_is_refused_unread_and_not_retried(serve):
    server = serve(lambda seen: Reply(200, endless_body(), length=200 * 2**20))
    with pytest.raises(errors.BadResponse, match=r"larger than 1 MB \(max_response_mb\); refused"):
        webitel(server, attempts=5, max_response_mb=1).userinfo()
    assert len(server.calls()) == 1 and server.body_bytes < 16 * 2**20


def test_a_huge_streamed_body_is_refused_past_the_cap_and_not_retried(serve):
    server = serve(lambda seen: logged_in(seen) if seen.path.endswith("/Login")
                   else Reply(200, endless_body()))
    started = time.monotonic()
    with pytest.raises(errors.BadResponse, match="larger than 2 MB"):
        creatio(server, attempts=5, max_response_mb=2).count("Contact")
    assert len(server.calls("/0/odata/Contact")) == 1
    assert server.body_bytes < 24 * 2**20 and time.monotonic() - started < 2


def test_a_compressed_body_is_measured_as_it_expands(serve):
    bomb = gzip.compress(b"\0" * (48 * 2**20), compresslevel=1)  # 48 MB in about 200 KB
    server = serve(lambda seen: Reply(200, bomb, headers=[("Content-Encoding", "gzip")]))
    with pytest.raises(errors.BadResponse, match="larger than 1 MB"):
        webitel(server, attempts=3, max_response_mb=1).userinfo()
    assert len(server.calls()) == 1


def test_a_huge_error_body_is_cut_and_its_message_is_short(serve):
    server = serve(lambda seen: Reply(503, endless_body(b"overloaded " * 6000)))
    with pytest.raises(errors.TransientError) as raised:
        webitel(server, attempts=2).userinfo()
    assert len(server.calls()) == 2 and len(raised.value.message) <= 300
    assert server.body_bytes < 2 * 24 * 2**20


# --- lists that never end --------------------------------------------------------------------------


def test_webitel_pages_of_new_ids_forever_stop_at_max_pages(serve):
    def page(seen):
        n = int(seen.arg("page"))
        if n > 400:  # a client without a limit ends here, with every page taken for real users
            return Reply(200, {"page": n, "next": False, "items": []})
        return Reply(200, {"page": n, "next": True, "items": [{"id": str(n), "username": f"u{n}"}]})

    server = serve(page)
    started = time.monotonic()
    with pytest.raises(errors.BadResponse, match="after 30 pages") as raised:
        list(webitel(server, max_pages=30).iter_users())
    assert len(server.calls("/api/users")) == 30 and time.monotonic() - started < 2
    assert server.url in str(raised.value) and "GET /users" in str(raised.value)


@pytest.mark.parametrize("shape", ["full pages", "next links"])
def test_creatio_pages_forever_stop(serve, shape):
    counter = itertools.count(1)

    def page(seen):
        n = next(counter)
        if seen.path.endswith("/Login"):
            return logged_in(seen)
        if n > 400:
            return Reply(200, {"value": []})
        body = {"value": [{"Id": f"00000000-0000-0000-0000-{n * 10 + i:012d}"} for i in range(3)]}
        if shape == "next links":
            body["@odata.nextLink"] = f"/0/odata/Contact?$skiptoken={n}"
        return Reply(200, body)

    server = serve(page)
    with pytest.raises(errors.BadResponse, match="paging stopped after 25 pages"):
        creatio(server, max_pages=25).list_rows("Contact", select=["Id"])
    assert len(server.calls("/0/odata/Contact")) == 25


# --- TLS settings against the environment ----------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    made = make_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("no openssl command to make a test certificate")
    return made


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_verify_tls_false_and_ca_file_win_over_a_ca_bundle_in_the_environment(
    serve, certificate, tmp_path, monkeypatch, variable
):
    server = serve(lambda seen: Reply(200, {"username": "admin"}), tls=certificate)
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv(variable, str(bogus))
    assert webitel(server, verify_tls=False).userinfo() == {"username": "admin"}
    # A real bundle that does not trust the server: ca_file still decides.
    monkeypatch.setenv(variable, certifi.where())
    assert webitel(server, ca_file=str(certificate[0])).userinfo() == {"username": "admin"}
    # Verification stays on by default: the environment's bundle does not trust a self-signed server.
    with pytest.raises(errors.TransientError, match=r"SSLError.*verify_tls and ca_file"):
        webitel(server).userinfo()


def test_a_missing_ca_file_fails_check_offline_with_one_line(tmp_path, capsys):
    from jobs import exit_codes
    from jobs.cli import main

    config = tmp_path / "config.toml"
    config.write_text(
        f'[webitel]\nurl = "https://w.test/api"\ntoken = "t"\nca_file = "{tmp_path}/nope.pem"\n'
        '[creatio]\nurl = "https://c.test"\nusername = "u"\npassword = "p"\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "check", "--offline"]) == exit_codes.USAGE
    err = capsys.readouterr().err.strip()
    assert "webitel.ca_file" in err and "no such file" in err and "Traceback" not in err


# --- secrets a server echoes -----------------------------------------------------------------------


class EchoServer:
    """Answers errors that echo the request, in a different encoding each time (``ECHO_FORMS``):
    in the message, the error id, the reason phrase and a request id header."""

    def __init__(self) -> None:
        self.forms = itertools.cycle(ECHO_FORMS)

    def error(self, seen, status, envelope) -> Reply:
        text = echo(seen, next(self.forms))
        creds = " ".join(seen.headers.get(h, "") for h in ("cookie", "authorization", "x-webitel-access"))
        return Reply(
            status,
            envelope(text, echo(seen, "base64")),
            reason=f"Echo {creds}".strip(),
            headers=[("X-Request-Id", creds)],
        )


def creatio_envelope(text, b64):
    return {
        "error": {"code": b64[:200], "message": "An error has occurred.", "innererror": {"message": text}}
    }


def webitel_envelope(text, b64):
    return {"id": b64[:200], "code": 500, "status": "Internal Server Error", "detail": text}


def scan(caplog, found, secrets):
    """Every captured log line (both formats), error text and returned value is free of every form
    of every secret."""
    texts = [f(record) for record in caplog.records for f in (TextFormatter().format, JsonFormatter().format)]
    for item in found:
        texts.append(repr(item))
        if isinstance(item, BaseException):
            texts += [str(item), scrub(f"{type(item).__name__}: {item}")]
    assert len(texts) > 3
    leaks = [
        (form, text) for text in texts for secret in secrets for form in forms_of(secret) if form in text
    ]
    assert not leaks, leaks[:3]


def attempt(found, call):
    try:
        found.append(call())
    except errors.SyncError as exc:
        found.append(exc)


def test_creatio_forms_session_secrets_never_leave_the_client(serve, caplog):
    echoer, logins = EchoServer(), itertools.count()

    def handler(seen):
        if seen.path.endswith("/AuthService.svc/Login"):
            if next(logins) == 0:  # the first login fails with the login body echoed (then a retry)
                return echoer.error(seen, 500, creatio_envelope)
            return Reply(
                200,
                {"Code": 0},
                headers=[
                    ("Set-Cookie", ".ASPXAUTH=AUTH0123456789ABCDEF0123; path=/"),
                    ("Set-Cookie", "BPMCSRF=csrf-token-xyz123; path=/"),
                    ("Set-Cookie", "BPMLOADER=ld-98765; path=/"),
                ],
            )
        return echoer.error(seen, 500 if seen.method == "GET" else 400, creatio_envelope)

    server = serve(handler)
    client = creatio(server, attempts=len(ECHO_FORMS) + 1, password=LONG)
    found: list = []
    with caplog.at_level(logging.DEBUG):
        attempt(found, lambda: client.list_rows("Contact", select=["Id"]))
        attempt(
            found, lambda: client.update("Contact", "00000000-0000-0000-0000-000000000001", {"Name": "x"})
        )
    assert isinstance(found[0], errors.TransientError) and isinstance(found[1], errors.BadRequest)
    scan(caplog, found, [LONG, "AUTH0123456789ABCDEF0123", "csrf-token-xyz123", "ld-98765"])


def test_creatio_oauth_secrets_never_leave_the_client(serve, caplog):
    echoer, tokens = EchoServer(), itertools.count()

    def handler(seen):
        if seen.path == "/connect/token":
            if next(tokens) == 0:
                return echoer.error(seen, 500, creatio_envelope)
            return Reply(200, {"access_token": "bearer-0123456789abcdefXYZ", "expires_in": 3600})
        return echoer.error(seen, 400, creatio_envelope)

    server = serve(handler)
    client = creatio(
        server,
        attempts=3,
        auth="oauth",
        identity_url=server.url,
        client_id="cid",
        client_secret=LONG,
        username=None,
        password=None,
    )
    found: list = []
    with caplog.at_level(logging.DEBUG):
        attempt(found, lambda: client.count("Contact"))
    assert isinstance(found[0], errors.BadRequest)
    scan(caplog, found, [LONG, "bearer-0123456789abcdefXYZ"])


def test_webitel_short_token_and_licence_key_never_leave_the_client(serve, caplog):
    echoer = EchoServer()

    def handler(seen):
        if seen.path == "/api/users" and seen.arg("page") == "1":
            # A user whose name echoes the request and whose id is no id: a record error returned.
            return Reply(200, {"next": True, "items": [{"id": True, "username": echo(seen)}]})
        return echoer.error(seen, 500 if seen.method == "GET" else 400, webitel_envelope)

    server = serve(handler)
    client = webitel(server, attempts=len(ECHO_FORMS), token=SHORT)
    found: list = []
    with caplog.at_level(logging.DEBUG):
        items = []
        attempt(found, lambda: items.extend(client.iter_users()))
        found.extend(items)
        attempt(found, lambda: client.upload_license_key(KEY))
    assert any(isinstance(f, errors.RecordError) for f in found)
    assert isinstance(found[-1], errors.BadRequest)
    scan(caplog, found, [SHORT, KEY])


def test_webitel_login_secrets_never_leave_the_client(serve, caplog):
    echoer, logins = EchoServer(), itertools.count()

    def handler(seen):
        if seen.path == "/api/login":
            if next(logins) == 0:
                return echoer.error(seen, 500, webitel_envelope)
            return Reply(
                200,
                {"access_token": "session-0123456789abcdef"},
                headers=[("Set-Cookie", "WBTLAUTH=wbtl-auth-cookie-42; path=/")],
            )
        return echoer.error(seen, 400, webitel_envelope)

    server = serve(handler)
    client = webitel(server, attempts=3, token=None, username="admin", password=LONG)
    found: list = []
    with caplog.at_level(logging.DEBUG):
        attempt(found, client.userinfo)
    assert isinstance(found[0], errors.BadRequest)
    scan(caplog, found, [LONG, "session-0123456789abcdef", "wbtl-auth-cookie-42"])


# --- the product against a sandbox gone odd ---------------------------------------------------------


def test_a_run_against_a_creatio_echoing_credentials_stores_none_of_them(make_sandbox, make_config, caplog):
    from e2ekit import run_job
    from jobs.state import StateStore

    box = make_sandbox(20, seed=9)

    def echo_odata(request, response):
        if request.path.startswith("/0/odata/"):
            headers = json.dumps(dict(request.headers))
            return Response.json(
                500, {"error": {"message": "An error has occurred.", "innererror": {"message": headers}}}
            )
        return None

    box.creatio.tamper = echo_odata
    config = make_config(box, retry={"max_attempts": 2})
    with caplog.at_level(logging.INFO), pytest.raises(errors.TransientError) as raised:
        run_job(config, "users")
    sessions = box.creatio_app.auth.sessions
    secrets = [
        *sessions,
        *(s.csrf for s in sessions.values()),
        box.data.credentials.creatio_password,
        box.data.credentials.webitel_token,
    ]
    assert sessions and "***" in str(raised.value)
    with StateStore.open(config.state.url) as store:
        (run,) = store.recent_runs()
    failure = (run.report or {}).get("failure", "")
    assert run.outcome == "failed" and "creatio GET /0/odata/" in failure, run
    scan(caplog, [raised.value, repr(run)], secrets)


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "app.users.search.app_error", "code": 500, "status": "Internal Server Error", "detail": "db"},
        {"page": 1, "next": "false", "items": [{"id": "1", "username": "a"}]},
    ],
)
def test_a_run_against_an_odd_users_list_fails_and_changes_nothing(make_sandbox, make_config, answer):
    from e2ekit import run_job

    box = make_sandbox(20, seed=9)
    config = make_config(box, provisioning={"enabled": True})
    first = run_job(config, "users")
    assert not first.failure
    writes = box.creatio.stats.writes, box.webitel.stats.writes
    box.webitel.tamper = lambda request, response: (
        Response.json(200, answer) if request.path == "/api/users" and request.method == "GET" else None
    )
    with pytest.raises(errors.BadResponse, match="webitel GET /users -> 200"):
        run_job(config, "users")
    assert (box.creatio.stats.writes, box.webitel.stats.writes) == writes
