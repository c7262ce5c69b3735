"""The HTTP API over a sandbox: who may call it, runs started and read back, conflicts resolved.

Through Starlette's TestClient (the app in this process, no socket); the worker serving it on its
real port is in test_console_worker.py.
"""

from __future__ import annotations

import logging

import pytest

from jobs.sync.cycle import run_once
from consolekit import LOOPBACK, TOKEN, bearer, console, wait_run

pytestmark = pytest.mark.e2e

CANDIDATE = 'contact "Clodagh O\'Sullivan"'  # of the ambiguous user c.osullivan (sandbox seed 5)


@pytest.fixture
def synced(make_sandbox, make_config):
    """A sandbox after one real run: its conflicts are open."""
    box = make_sandbox()
    config = make_config(box)
    reports = run_once(config)
    assert [r.outcome for r in reports] == ["conflicts", "in_sync"]
    return box, config


def ambiguous(conflicts: list[dict]) -> dict:
    return next(c for c in conflicts if c["kind"] == "ambiguous_match" and c["username"] == "c.osullivan")


def test_without_the_token_every_endpoint_answers_401(synced):
    _, config = synced
    with console(config) as client:
        calls = [
            ("GET", "/api/status"),
            ("GET", "/api/runs"),
            ("POST", "/api/runs"),
            ("GET", "/api/runs/abc"),
            ("GET", "/api/conflicts"),
            ("POST", "/api/conflicts/abc/link"),
            ("POST", "/api/conflicts/x/ignore"),
        ]
        for method, path in calls:
            for headers in (
                {},
                bearer("wrong"),
                {"Authorization": TOKEN},
                {"Authorization": f"Basic {TOKEN}"},
            ):
                answer = client.request(method, path, headers=headers, json={})
                assert answer.status_code == 401, (method, path, headers)
                assert answer.headers["www-authenticate"].startswith("Bearer")
                assert "bearer token is required" in answer.json()["error"]
        assert client.ops.launches() == []  # nothing was started
        # The probes stay open: a load balancer has no token.
        assert client.get("/healthz").status_code == 200 and client.head("/metrics").status_code == 200


def test_a_run_started_by_the_api_answers_202_and_its_outcome_is_readable(synced, caplog):
    box, config = synced
    caplog.set_level(logging.DEBUG)
    with console(config) as client:
        answer = client.post("/api/runs", headers=bearer(), json={"job": "users"})
        assert answer.status_code == 202, answer.text
        started = answer.json()
        run_id = started["run_id"]
        assert len(run_id) == 32 and answer.headers["location"] == f"/api/runs/{run_id}"
        assert (
            started["jobs"] == ["users"]
            and started["dry_run"] is False
            and started["started_by"].startswith("api")
        )
        done = wait_run(client, run_id)
        assert done["run_id"] == run_id and done["job"] == "users" and done["outcome"] == "conflicts"
        assert done["report"]["conflicts"] and done["finished_at"] and done["launch"]["finished"] is True
        # The run is in the history like any other, and the API lists it.
        runs = client.get("/api/runs?limit=5", headers=bearer()).json()["runs"]
        assert runs[0]["run_id"] == run_id and "report" not in runs[0]
        # Both jobs, the default: the licences run is named as the later one.
        both = client.post("/api/runs", headers=bearer()).json()["run_id"]
        body = wait_run(client, both)
        assert body["job"] == "users" and [r["job"] for r in body["later_runs"]] == ["licenses"]
        assert (
            client.get(f"/api/runs/{body['later_runs'][0]['run_id']}", headers=bearer()).json()["job"]
            == "licenses"
        )
        # A dry run plans and writes nothing.
        dry = client.post("/api/runs", headers=bearer(), json={"job": "licenses", "dry_run": True}).json()
        assert wait_run(client, dry["run_id"])["dry_run"] is True
        status = client.get("/api/status", headers=bearer()).json()
        assert status["open_conflicts"] >= 1 and status["running"] is None
        assert set(status["health"]["jobs"]) == {"users", "licenses"} and status["trend"]["users"]
    assert TOKEN not in caplog.text


def test_bad_bodies_and_unknown_runs(synced):
    _, config = synced
    with console(config) as client:
        for body, error in (
            ({"job": "everything"}, "job: expected one of all, users, licenses"),
            ({"dry_run": "yes"}, "dry_run: expected true or false"),
            ({"jobs": "users"}, "unknown field(s) jobs"),
            ([1], "must be a JSON object"),
        ):
            answer = client.post("/api/runs", headers=bearer(), json=body)
            assert answer.status_code == 400 and error in answer.json()["error"], answer.text
        answer = client.post(
            "/api/runs", headers={**bearer(), "Content-Type": "application/json"}, content=b"{"
        )
        assert answer.status_code == 400 and answer.json() == {"error": "the body is not JSON"}
        assert client.get("/api/runs/ffffffffffff", headers=bearer()).status_code == 404
        assert client.get("/api/nowhere", headers=bearer()).status_code == 404
        assert client.ops.launches() == []


def test_a_run_in_progress_answers_409(synced):
    _, config = synced
    with console(config) as client:
        lock = client.ops.store.lock("sync", holder="someone-else")
        assert lock.acquire()
        try:
            answer = client.post("/api/runs", headers=bearer(), json={"job": "users"})
            assert answer.status_code == 409
            assert answer.json()["error"] == "a run is in progress; try again when it ends"
            assert answer.json()["running"]["holder"] == "someone-else"
            # A dry run takes no lock: it may go on beside the run.
            dry = client.post("/api/runs", headers=bearer(), json={"job": "users", "dry_run": True})
            assert dry.status_code == 202
            wait_run(client, dry.json()["run_id"])
        finally:
            lock.release()
        assert client.post("/api/runs", headers=bearer(), json={"job": "users"}).status_code == 202


def test_conflicts_are_listed_linked_and_gone_after_the_next_run(synced, caplog):
    _, config = synced
    caplog.set_level(logging.DEBUG)
    with console(config) as client:
        listed = client.get("/api/conflicts", headers=bearer()).json()
        conflict = ambiguous(listed["conflicts"])
        assert set(conflict) >= {"id", "job", "kind", "message", "user", "webitel_id", "others", "run_id"}
        assert listed["ignored"] == []
        # The engine's refusals, in one line: a contact that does not exist.
        refused = client.post(
            f"/api/conflicts/{conflict['id']}/link", headers=bearer(), json={"contact": "Nobody Of That Name"}
        )
        assert refused.status_code == 422 and "no Contact named" in refused.json()["error"]
        assert (
            client.post(f"/api/conflicts/{conflict['id']}/link", headers=bearer(), json={}).status_code == 400
        )
        assert (
            client.post(
                "/api/conflicts/000000000000/link", headers=bearer(), json={"contact": "x"}
            ).status_code
            == 404
        )
        contact_id = (
            next(o for o in conflict["others"] if o.startswith(CANDIDATE)).rsplit("(", 1)[1].rstrip(")")
        )
        linked = client.post(
            f"/api/conflicts/{conflict['id']}/link", headers=bearer(), json={"contact": contact_id}
        )
        assert linked.status_code == 200, linked.text
        assert linked.json()["linked"]["contact_id"] == contact_id
        waiting = ambiguous(client.get("/api/conflicts", headers=bearer()).json()["conflicts"])
        assert waiting["pending"]["kind"] == "link" and waiting["pending"]["contact_id"] == contact_id
        wait_run(client, client.post("/api/runs", headers=bearer(), json={"job": "users"}).json()["run_id"])
        after = client.get("/api/conflicts", headers=bearer()).json()["conflicts"]
        assert not [c for c in after if c.get("username") == "c.osullivan"]
    assert TOKEN not in caplog.text


def test_a_conflict_ignored_with_a_reason_moves_to_the_ignored_list(synced):
    _, config = synced
    with console(config) as client:
        conflict = next(
            c
            for c in client.get("/api/conflicts", headers=bearer()).json()["conflicts"]
            if c["kind"] == "duplicate_extension" and c["webitel_id"] is not None
        )
        path = f"/api/conflicts/{conflict['id']}/ignore"
        assert client.post(path, headers=bearer(), json={"reason": "  "}).status_code == 400
        answer = client.post(path, headers=bearer(), json={"reason": "the desk phone is shared"})
        assert answer.status_code == 200 and answer.json()["ignored"]["reason"] == "the desk phone is shared"
        wait_run(client, client.post("/api/runs", headers=bearer(), json={"job": "users"}).json()["run_id"])
        listed = client.get("/api/conflicts", headers=bearer()).json()
        assert conflict["id"] not in {c["id"] for c in listed["conflicts"]}
        ignored = next(c for c in listed["ignored"] if c["webitel_id"] == conflict["webitel_id"])
        assert ignored["reason"] == "the desk phone is shared" and ignored["who"].startswith("api")
        back = client.post(f"/api/conflicts/{ignored['id']}/unignore", headers=bearer(), json={})
        assert back.status_code == 200, back.text


def test_without_a_token_only_this_machine_may_call(synced):
    _, config = synced
    with console(config, token=None, client=("192.0.2.7", 4000)) as client:
        answer = client.get("/api/status")
        assert answer.status_code == 403 and "only on this machine" in answer.json()["error"]
        assert client.get("/conflicts").status_code == 403
        assert client.get("/healthz").status_code == 200  # the probes answer anyone
    with console(config, token=None) as client:
        assert client.get("/api/status").status_code == 200
        # Another site's page in a browser here: its host name, or a proxy in front, is refused.
        assert client.get("/api/status", headers={"Host": "evil.example:9108"}).status_code == 403
        assert client.get("/api/status", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 403
        # A form post (which a browser sends anywhere without asking) cannot start a run.
        answer = client.post("/api/runs", content=b"job=users", headers={"Content-Type": "text/plain"})
        assert answer.status_code == 415 and client.ops.launches() == []
        answer = client.post("/api/runs", json={"job": "users"})
        assert answer.status_code == 202
        wait_run(client, answer.json()["run_id"], headers={})
    with console(config, token=TOKEN, client=("192.0.2.7", 4000)) as client:
        assert (
            client.get("/api/status", headers=bearer()).status_code == 200
        )  # a token opens it to the network
        assert client.get("/api/status").status_code == 401


def test_the_loopback_client_is_seen_as_local():
    from jobs.worker.console.access import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"))
    assert not any(
        is_loopback(h) for h in ("10.0.0.1", "192.0.2.7", "::ffff:10.0.0.1", "testclient", "", None)
    )
    assert LOOPBACK[0] == "127.0.0.1"
