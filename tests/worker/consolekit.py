"""Helpers for the tests of the API and the console: a console over a sandbox, in a TestClient."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from jobs.state import StateStore
from jobs.worker.console.access import Access
from jobs.worker.console.app import build_app
from jobs.worker.console.ops import ConsoleOps, history_health

# Long and odd enough that finding it anywhere in an answer or a log line is no coincidence.
TOKEN = "c0nsole-T0ken-5f1e-" + "q7" * 12
PASSWORD = "pa55-console-Wd-41"
LOOPBACK = ("127.0.0.1", 50000)
METRICS = b"# TYPE wcsync_up gauge\nwcsync_up 1.0\n"


@contextlib.contextmanager
def console(
    config,
    *,
    token: str | None = TOKEN,
    password: str | None = None,
    client: tuple[str, int] = LOOPBACK,
    base_url: str = "http://127.0.0.1",
) -> Iterator[TestClient]:
    """A TestClient on the whole app (probes, API, pages) over ``config``'s state store.

    ``client.ops`` is the ``ConsoleOps`` behind it (for waiting on the runs it started).
    """
    with StateStore.open(config.state.url) as store:
        ops = ConsoleOps(config, store, health=history_health(config, store))
        app = build_app(
            health=ops.health,
            metrics=lambda: ("text/plain; version=0.0.4", METRICS),
            console=ops,
            access=Access(token, password),
        )
        with TestClient(app, base_url=base_url, client=client, follow_redirects=False) as test_client:
            test_client.ops = ops
            yield test_client
            for launch in ops.launches():  # no run left going on after the test's store is closed
                launch.done.wait(60)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_run(client: TestClient, run_id: str, *, headers: dict | None = None, timeout: float = 90) -> dict:
    """Poll ``GET /api/runs/{id}`` until the run (and every job of its launch) ended; its answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/api/runs/{run_id}", headers=headers or bearer())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        launch = body.get("launch") or {}
        if body["outcome"] not in ("running", "pending") and launch.get("finished", True):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"the run {run_id} did not end in {timeout} s: {body}")
        time.sleep(0.1)
