"""SandboxServer over real loopback sockets, with a trivial echo app of our own."""

from __future__ import annotations

import json
import socket
from email.utils import parsedate_to_datetime

import pytest
import requests

from sandbox.base import Request, Response, Stats
from sandbox.faults import Faults
from sandbox.server import SandboxServer


class EchoApp:
    """Answers every request with what it received; a few paths do something special."""

    def __init__(self) -> None:
        self.stats = Stats()

    def route(self, request: Request) -> str:
        if request.path.startswith("/items/"):
            return "/items/{id}"
        return request.path

    def handle(self, request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("app failed")
        if request.path == "/cookies":
            return Response.json(200, {}, [("Set-Cookie", "A=1; Path=/"), ("Set-Cookie", "B=2; Path=/")])
        if request.path == "/raw":
            return Response(200, request.body, [("Content-Type", "application/octet-stream")])
        return Response.json(200, {
            "method": request.method,
            "path": request.path,
            "query": {k: list(v) for k, v in request.query.items()},
            "raw_query": request.raw_query,
            "headers": dict(request.headers),
            "body": request.body.decode("utf-8", "replace"),
        })


@pytest.fixture
def server():
    with SandboxServer(EchoApp()) as srv:
        yield srv


def test_url_and_port(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.port > 0


def test_keep_alive_reuses_one_connection(server):
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(server.url + "/ping").status_code == 200
    assert server.connections_opened == 1


def test_connection_close_is_honoured(server):
    with requests.Session() as session:
        resp = session.get(server.url + "/ping", headers={"Connection": "close"})
        assert resp.headers["Connection"] == "close"
        session.get(server.url + "/ping")
    assert server.connections_opened == 2


def test_repeated_and_blank_query_parameters(server):
    resp = requests.get(server.url + "/q?fields=id&fields=name&empty=&x=a%20b")
    data = resp.json()
    assert data["query"] == {"fields": ["id", "name"], "empty": [""], "x": ["a b"]}
    assert data["raw_query"] == "fields=id&fields=name&empty=&x=a%20b"
    assert data["path"] == "/q"


def test_path_is_percent_decoded(server):
    data = requests.get(server.url + "/items/a%20b%27c%D0%AF").json()
    assert data["path"] == "/items/a b'cЯ"


def test_header_names_are_lower_case(server):
    data = requests.get(server.url + "/h", headers={"X-Webitel-Access": "tok"}).json()
    assert data["headers"]["x-webitel-access"] == "tok"


def test_multiple_set_cookie_headers_survive(server):
    with requests.Session() as session:
        resp = session.get(server.url + "/cookies")
        assert resp.raw.headers.getlist("Set-Cookie") == ["A=1; Path=/", "B=2; Path=/"]
        assert session.cookies.get("A") == "1" and session.cookies.get("B") == "2"
        echoed = session.get(server.url + "/echo").json()
    assert "A=1" in echoed["headers"]["cookie"] and "B=2" in echoed["headers"]["cookie"]


def test_body_round_trip(server):
    payload = {"name": "Łukasz Wiśniewski", "ext": "1001"}
    data = requests.post(server.url + "/items/7", json=payload).json()
    assert data["method"] == "POST"
    assert json.loads(data["body"]) == payload
    raw = bytes(range(256)) * 40
    resp = requests.put(server.url + "/raw", data=raw)
    assert resp.content == raw
    assert resp.headers["Content-Length"] == str(len(raw))


def test_chunked_request_body(server):
    resp = requests.post(server.url + "/raw", data=iter([b"abc", b"defg"]))
    assert resp.content == b"abcdefg"


def test_head_sends_no_body(server):
    resp = requests.head(server.url + "/raw")
    assert resp.status_code == 200
    assert resp.content == b""


def test_app_exception_gives_500_and_server_keeps_serving(server):
    with requests.Session() as session:
        resp = session.get(server.url + "/boom")
        assert resp.status_code == 500
        assert "app failed" in resp.json()["detail"]
        assert session.get(server.url + "/ping").status_code == 200


def test_stats_count_every_request_by_route(server):
    for i in range(3):
        requests.get(f"{server.url}/items/{i}")
    requests.delete(server.url + "/items/9")
    requests.get(server.url + "/boom")
    assert server.stats.requests[("GET", "/items/{id}", 200)] == 3
    assert server.stats.requests[("DELETE", "/items/{id}", 200)] == 1
    assert server.stats.requests[("GET", "/boom", 500)] == 1
    assert server.stats.total() == 5
    assert server.stats is server.app.stats


def test_error_fault_answers_5xx_before_the_app(server):
    server.faults = Faults(seed=1, error_rate=1.0)
    statuses = [requests.get(server.url + "/ping").status_code for _ in range(20)]
    assert set(statuses) <= {500, 502, 503} and len(set(statuses)) > 1
    assert server.fault_counts["error"] == 20
    assert sum(n for (m, r, s), n in server.stats.requests.items() if s >= 500) == 20


def test_429_fault_sends_decimal_retry_after(server):
    server.faults = Faults(rate_429=1.0, retry_after_s=0.05)
    resp = requests.get(server.url + "/ping")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "0.05"
    server.faults = Faults(rate_429=1.0, retry_after_s=2)
    assert requests.get(server.url + "/ping").headers["Retry-After"] == "2"
    assert server.fault_counts["429"] == 2


def test_429_fault_can_send_an_http_date(server):
    server.faults = Faults(rate_429=1.0, retry_after_s=3, retry_after_http_date=True)
    resp = requests.get(server.url + "/ping")
    when = parsedate_to_datetime(resp.headers["Retry-After"])
    assert when.tzinfo is not None


def test_dropped_connection_raises_and_counts_status_zero(server):
    server.faults = Faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url + "/items/1", json={"a": 1})
    assert server.stats.requests[("POST", "/items/{id}", 0)] == 1
    assert server.fault_counts["drop"] == 1
    server.faults = Faults()
    assert requests.get(server.url + "/ping").status_code == 200


def test_latency_is_decided_for_every_request(server):
    server.faults = Faults(latency_ms=1, exclude_paths=("/login",))
    for path in ("/ping", "/login", "/items/1"):
        assert requests.get(server.url + path).status_code == 200
    assert server.fault_counts["latency"] == 3


def test_excluded_paths_and_methods_are_never_faulted(server):
    server.faults = Faults(error_rate=1.0, exclude_paths=("/login",), only_methods=("POST",))
    assert requests.post(server.url + "/login").status_code == 200
    assert requests.get(server.url + "/ping").status_code == 200
    assert requests.post(server.url + "/ping").status_code in (500, 502, 503)
    assert server.fault_counts == {"pass": 2, "error": 1}


def _statuses(seed: int, n: int = 60) -> list[int]:
    faults = Faults(seed=seed, error_rate=0.2, rate_429=0.2, drop_rate=0.1)
    out = []
    with SandboxServer(EchoApp(), faults=faults) as srv:
        for _ in range(n):
            try:
                out.append(requests.get(srv.url + "/ping").status_code)
            except requests.ConnectionError:
                out.append(0)
    return out


def test_mixed_faults_are_reproducible_from_the_seed():
    first, again, other = _statuses(7), _statuses(7), _statuses(8)
    assert first == again
    assert first != other
    assert {0, 200, 429} <= set(first)
    assert set(first) & {500, 502, 503}


def test_faults_reject_impossible_shares():
    with pytest.raises(ValueError):
        Faults(error_rate=0.7, rate_429=0.5)
    with pytest.raises(ValueError):
        Faults(drop_rate=-0.1)


def test_stop_closes_connections_and_releases_the_port():
    srv = SandboxServer(EchoApp()).start()
    port = srv.port
    session = requests.Session()
    assert session.get(srv.url + "/ping").status_code == 200
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/ping")
    session.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    again = SandboxServer(EchoApp(), port=port).start()
    try:
        assert requests.get(again.url + "/ping").status_code == 200
    finally:
        again.stop()
    srv.stop()  # a second stop is harmless


def test_tamper_replaces_answers_and_faults_come_first(server):
    seen = []

    def tamper(request, response):
        seen.append((request.path, response.status))
        if request.path == "/odd":
            return Response.json(200, {"id": "app.error", "code": 500, "detail": request.header("x-secret")})
        return None  # keep the app's answer

    server.tamper = tamper
    odd = requests.get(server.url + "/odd", headers={"X-Secret": "s3"})
    assert odd.status_code == 200 and odd.json()["detail"] == "s3"
    assert requests.get(server.url + "/ping").json()["path"] == "/ping"
    server.faults = Faults(error_rate=1.0)
    assert requests.get(server.url + "/odd").status_code in (500, 502, 503)
    assert seen == [("/odd", 200), ("/ping", 200)]
    assert server.stats.requests[("GET", "/odd", 200)] == 1


class ShapedApp(EchoApp):
    """An app that answers faults in its own error shape (as the Webitel app does)."""

    def fault_response(self, status, headers=None):
        return Response.json(status, {"id": f"app.fault.{status}", "code": status}, headers)


def test_faults_take_the_apps_own_error_shape_when_it_has_one():
    with SandboxServer(ShapedApp(), faults=Faults(error_rate=1.0)) as shaped:
        answer = requests.get(shaped.url + "/ping")
        assert answer.json() == {"id": f"app.fault.{answer.status_code}", "code": answer.status_code}
        shaped.faults = Faults(rate_429=1.0, retry_after_s=1)
        throttled = requests.get(shaped.url + "/ping")
        assert throttled.json()["id"] == "app.fault.429" and throttled.headers["Retry-After"] == "1"


def test_webitel_faults_answer_id_code_detail_status_over_http():
    from sandbox.harness import start_sandbox

    with start_sandbox(5, seed=1, now_ms=1_750_000_000_000,
                       faults_webitel=Faults(error_rate=1.0, exclude_paths=("/api/login",))) as box:
        answer = requests.get(box.webitel_url + "/users",
                              headers={"X-Webitel-Access": box.data.credentials.webitel_token})
        body = answer.json()
        assert answer.status_code in (500, 502, 503)
        assert set(body) == {"id", "code", "detail", "status"} and body["code"] == answer.status_code
