"""The status server alone: ``/healthz`` and ``/metrics`` answered to GET and to HEAD."""

from __future__ import annotations

import http.client

import pytest

from jobs.worker.http import StatusServer

METRICS = b"# TYPE wcsync_up gauge\nwcsync_up 1.0\n"


@pytest.fixture
def server():
    state = {"healthy": True}
    started = StatusServer("127.0.0.1", 0, health=lambda: (state["healthy"], {"healthy": state["healthy"]}),
                           metrics=lambda: ("text/plain; version=0.0.4", METRICS)).start()
    started.state = state
    yield started
    started.stop()


def ask(server: StatusServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    # Header names in any case (HTTP's rule): uvicorn sends them in lower case, as ASGI has them.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, {k.title(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/nowhere"])
@pytest.mark.parametrize("healthy", [True, False])
def test_head_answers_like_get_without_a_body(server, path, healthy):
    server.state["healthy"] = healthy
    status, headers, body = ask(server, "GET", path)
    head_status, head_headers, head_body = ask(server, "HEAD", path)
    assert head_status == status and head_body == b"" and body
    assert status == {"/healthz": 200 if healthy else 503, "/metrics": 200, "/nowhere": 404}[path]
    for name in ("Content-Type", "Content-Length", "Cache-Control"):
        assert head_headers[name] == headers[name]
    assert int(head_headers["Content-Length"]) == len(body)
