"""The API and the console served by the scheduled worker itself, on its real port (uvicorn on a
thread of the worker), beside ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from jobs.state import StateStore
from jobs.worker.console.access import Access
from jobs.worker.service import Worker
from consolekit import PASSWORD, TOKEN
from workerkit import wait_for, worker_thread

pytestmark = pytest.mark.e2e


def call(
    method: str, url: str, body: dict | None = None, headers: dict | None = None
) -> tuple[int, dict, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def with_console(config, token: str | None = TOKEN, password: str | None = None):
    """``config`` with a ``[console]`` section (as ``jobs.config`` reads it: secrets as SecretStr)."""
    section = SimpleNamespace(
        token=SecretStr(token) if token else None, password=SecretStr(password) if password else None
    )
    return config.model_copy(update={"console": section})


def test_the_access_rules_come_from_the_console_section():
    assert not Access.from_config(SimpleNamespace()).login_required  # no section: loopback, no login
    access = Access.from_config(
        SimpleNamespace(console=SimpleNamespace(token=SecretStr(TOKEN), password=None))
    )
    assert access.has_token and access.login_required and access.secrets() == [TOKEN]
    access = Access.from_config(
        SimpleNamespace(console=SimpleNamespace(token=None, password=SecretStr(PASSWORD)))
    )
    assert not access.has_token and access.login_required and access.secrets() == [PASSWORD]
    assert not Access.from_config(
        SimpleNamespace(console=SimpleNamespace(token=SecretStr(""), password=None))
    ).has_token


def test_the_worker_serves_the_api_beside_its_probes(make_sandbox, make_config, caplog):
    box = make_sandbox()
    config = with_console(
        make_config(box, schedule={"users": {"every_minutes": 600}}, serve={"http_port": 0})
    )
    worker = Worker(config)
    caplog.set_level(logging.DEBUG)
    with worker_thread(worker):
        base = wait_for(lambda: worker.http and worker.http.url, what="the HTTP server")
        assert call("GET", base + "/api/status")[0] == 401
        status, headers, text = call(
            "POST", base + "/api/runs", {"job": "users"}, {"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 202, text
        run_id = json.loads(text)["run_id"]
        assert headers["location"] == f"/api/runs/{run_id}"

        def finished():
            body = json.loads(
                call("GET", f"{base}/api/runs/{run_id}", headers={"Authorization": f"Bearer {TOKEN}"})[2]
            )
            return body if body["outcome"] not in ("running", "pending") else None

        body = wait_for(finished, timeout=60, what="the run started by the API")
        assert body["outcome"] == "conflicts" and body["job"] == "users"
        # The run counts as one by hand: healthy, and the worker's own schedule is untouched.
        status, _, text = call("GET", base + "/healthz")
        assert status == 200 and json.loads(text)["jobs"]["users"]["last_run"]["manual"] is True
        assert call("HEAD", base + "/healthz")[0] == 200 and call("GET", base + "/metrics")[0] == 200
        page = call("GET", base + "/conflicts")
        assert page[0] == 200 and 'id="secret"' in page[2]  # the login page (redirect followed)
    assert TOKEN not in caplog.text


def test_a_stopping_worker_waits_for_the_run_the_api_started(make_sandbox, make_config):
    box = make_sandbox()
    config = make_config(box, schedule={"users": {"every_minutes": 600}}, serve={"http_port": 0})
    worker = Worker(config)
    with worker_thread(worker):
        base = wait_for(lambda: worker.http and worker.http.url, what="the HTTP server")
        status, _, text = call("POST", base + "/api/runs", {"job": "all"})  # no token: loopback may
        assert status == 202, text
        run_id = json.loads(text)["run_id"]
        time.sleep(0.05)
    # worker_thread checked the exit code (0); the run ended before the worker did, recorded.
    with StateStore.open(config.state.url) as store:
        run = store.get_run(run_id)
        assert run is not None and run.outcome in ("conflicts", "interrupted") and run.finished_at
        assert store.lock("sync").holder_info() is None


def test_the_console_without_a_worker_as_demo_console_serves_it(make_sandbox, make_config):
    import io
    import re
    import threading

    from jobs.worker.console.local import serve_console

    box = make_sandbox()
    config = make_config(box)
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(
        target=serve_console, args=(config,), kwargs={"out": out, "stop": stop}, daemon=True
    )
    thread.start()
    try:
        base = wait_for(
            lambda: re.search(r"console: (http://127\.0\.0\.1:\d+)/", out.getvalue()), what="the URL"
        )[1]
        status, _, text = call("GET", base + "/")
        assert status == 200 and "Overview" in text and "no scheduled worker here" in text  # no login
        status, _, text = call("POST", base + "/api/runs", {"job": "users"})
        assert status == 202
        run_id = json.loads(text)["run_id"]
        wait_for(
            lambda: json.loads(call("GET", f"{base}/api/runs/{run_id}")[2])["outcome"] == "conflicts",
            timeout=60,
            what="the run",
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
