"""The console's pages over a sandbox, through Starlette's TestClient: login, CSRF, each page, and
the actions (resolve, sync, assign and revoke) with the same refusals as the command line."""

from __future__ import annotations

import logging
import re
import time

import pytest

from jobs.sync.cycle import run_once
from jobs.wiring import webitel_client
from consolekit import PASSWORD, TOKEN, console

pytestmark = pytest.mark.e2e

PAGES = (
    "/",
    "/runs",
    "/conflicts",
    "/licenses",
    "/licenses/users",
    "/licenses/users?search=c.&page=1",
    "/users/c.osullivan",
    "/users/1015",
)


@pytest.fixture
def synced(make_sandbox, make_config):
    box = make_sandbox()
    config = make_config(box)
    run_once(config)
    return box, config


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def login(client, secret: str = TOKEN) -> None:
    page = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf(page.text), "secret": secret, "next": "/conflicts"})
    assert answer.status_code == 303 and answer.headers["location"] == "/conflicts", answer.text


def flashes(page: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", text).strip()
        for text in re.findall(r'<p class="flash [a-z]+"[^>]*>(.*?)</p>', page, re.S)
    ]


def follow(client, answer):
    assert answer.status_code == 303, answer.text
    return client.get(answer.headers["location"])


def test_pages_want_a_login_and_the_session_cookie_is_strict(synced, caplog):
    _, config = synced
    caplog.set_level(logging.DEBUG)
    with console(config, password=PASSWORD, client=("192.0.2.7", 4000)) as client:
        answer = client.get("/conflicts?x=1")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fconflicts%3Fx%3D1"
        cookie = answer.headers["set-cookie"]
        page = client.get("/login")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        before = client.cookies["wcsync_session"]
        # Without the form's CSRF token, or with a wrong secret: no login.
        assert client.post("/login", data={"secret": TOKEN}).headers["location"].startswith("/login")
        answer = client.post("/login", data={"csrf": csrf(page.text), "secret": "nope"})
        assert "neither the console token nor its password" in " ".join(flashes(follow(client, answer).text))
        assert client.get("/").status_code == 303
        # The password is a login too; the session id changes at login (no fixation).
        login(client, PASSWORD)
        assert client.cookies["wcsync_session"] != before
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert TOKEN not in page.text and PASSWORD not in page.text
            assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert not re.search(r'(src|href)="(https?:)?//', page.text), path  # nothing from elsewhere
        assert client.get("/static/console.css").headers["content-type"].startswith("text/css")
        # Log out: the session is gone on the server too.
        out = client.post("/logout", data={"csrf": csrf(client.get("/runs").text)})
        assert out.headers["location"] == "/login" and client.get("/runs").status_code == 303
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text


def test_failed_logins_are_throttled(synced):
    _, config = synced
    with console(config) as client:
        for _ in range(5):
            client.post("/login", data={"csrf": csrf(client.get("/login").text), "secret": "guess"})
        answer = client.post("/login", data={"csrf": csrf(client.get("/login").text), "secret": TOKEN})
        assert "too many failed attempts" in " ".join(flashes(follow(client, answer).text))
        assert client.get("/").status_code == 303


def test_every_form_wants_the_csrf_token(synced):
    _, config = synced
    with console(config) as client:
        login(client)
        good = csrf(client.get("/runs").text)
        for path, data in (
            ("/runs", {"job": "users"}),
            ("/conflicts/x/ignore", {"reason": "r"}),
            ("/licenses/users", {"action": "assign", "user": "c.osullivan", "serial": "x"}),
            ("/users/c.osullivan/sync", {}),
            ("/logout", {}),
        ):
            for token in (None, "forged", good[:-1]):
                answer = client.post(path, data={**data, **({"csrf": token} if token else {})})
                assert answer.status_code == 403 and "the form has expired" in answer.text, path
        assert client.ops.launches() == []


def test_without_a_token_the_console_needs_no_login_on_this_machine(synced):
    _, config = synced
    with console(config, token=None) as client:
        page = client.get("/")
        assert page.status_code == 200 and "Log out" not in page.text
        assert client.get("/", headers={"Host": "rebound.example"}).status_code == 403


def test_resolve_a_conflict_sync_and_see_it_gone(synced):
    _, config = synced
    with console(config) as client:
        login(client)
        page = client.get("/conflicts")
        assert "c.osullivan" in page.text and "Link to this contact" in page.text
        conflict_id = re.search(r'id="conflict-([0-9a-f]+)".*?c\.osullivan', page.text, re.S).group(1)
        contact_id = re.search(
            r'name="contact" value="([0-9a-f-]{36})"[^<]*\n[^<]*<button[^>]*Clodagh O&#39;Sullivan '
            r"\(",
            page.text,
        )
        contact_id = (
            contact_id.group(1)
            if contact_id
            else re.search(r'name="contact" value="([0-9a-f-]{36})"', page.text).group(1)
        )
        answer = client.post(
            f"/conflicts/{conflict_id}/link", data={"csrf": csrf(page.text), "contact": contact_id}
        )
        page = follow(client, answer)
        assert any("linked to contact" in text for text in flashes(page.text)), flashes(page.text)
        assert "the next sync applies it" in page.text
        # An unknown contact is refused with the engine's reason.
        answer = client.post(
            f"/conflicts/{conflict_id}/link", data={"csrf": csrf(page.text), "contact": "Nobody X"}
        )
        assert any(
            text.startswith("refused: no Contact named") for text in flashes(follow(client, answer).text)
        )
        # Sync now: to the run's page, which reloads itself until the run ends.
        answer = client.post("/runs", data={"csrf": csrf(page.text), "job": "users", "back": "/conflicts"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/runs/")
        run_page = client.get(answer.headers["location"])
        assert run_page.status_code == 200
        for launch in client.ops.launches():
            assert launch.done.wait(60)
        run_page = client.get(answer.headers["location"])
        assert 'http-equiv="refresh"' not in run_page.text and "outcome-conflicts" in run_page.text
        assert "c.osullivan" not in client.get("/conflicts").text


def test_ignore_needs_a_reason(synced):
    _, config = synced
    with console(config) as client:
        login(client)
        page = client.get("/conflicts")
        conflict_id = re.search(r'id="conflict-([0-9a-f]+)"', page.text).group(1)
        answer = client.post(
            f"/conflicts/{conflict_id}/ignore", data={"csrf": csrf(page.text), "reason": " "}
        )
        assert any("a reason is required" in text for text in flashes(follow(client, answer).text))
        answer = client.post("/conflicts/000000000000/ignore", data={"csrf": csrf(page.text), "reason": "r"})
        assert any("no open conflict" in text for text in flashes(follow(client, answer).text))


def test_the_matrix_assigns_and_revokes_with_the_commands_refusals(synced):
    box, config = synced
    licenses = {l.serial: l for l in webitel_client(config).list_licenses()}
    expired = box.data.notes["expired_license"]
    with console(config) as client:
        login(client)
        registry = client.get("/licenses")
        assert registry.status_code == 200 and "expired" in registry.text and "expiring" in registry.text
        for column in ("Product", "Valid from", "Valid till", "Used", "Limit", "Concurrent", "Status"):
            assert f"<th>{column}</th>" in registry.text or f'<th class="num">{column}</th>' in registry.text
        page = client.get("/licenses/users?search=c.osullivan")
        assert page.status_code == 200 and "1 users" in page.text
        token = csrf(page.text)
        back = "/licenses/users?search=c.osullivan"
        refused = client.post(
            "/licenses/users",
            data={"csrf": token, "action": "assign", "user": "c.osullivan", "serial": expired, "back": back},
        )
        assert refused.headers["location"] == back
        assert any(
            t.startswith("refused: license_expired") or "expired" in t
            for t in flashes(follow(client, refused).text)
        )
        valid = next(
            s
            for s, l in licenses.items()
            if s not in box.data.notes.values()
            and l.remain > 0
            and (l.valid_till is None or l.valid_till.timestamp() > time.time() + 86400 * 60)
        )
        held = webitel_client(config).find_user("c.osullivan").serials
        action = "revoke" if valid.lower() in {s.lower() for s in held} else "assign"
        answer = client.post(
            "/licenses/users",
            data={"csrf": token, "action": action, "user": "c.osullivan", "serial": valid, "back": back},
        )
        said = " ".join(flashes(follow(client, answer).text))
        assert ("assigned to" if action == "assign" else "revoked from") in said and "in Webitel" in said
        now_held = {s.lower() for s in webitel_client(config).find_user("c.osullivan").serials}
        assert (valid.lower() in now_held) == (action == "assign")


def test_sync_now_on_a_user_page_shows_its_trace(synced):
    _, config = synced
    with console(config) as client:
        login(client)
        page = client.get("/users/lisa.smith")
        assert page.status_code == 200 and "Sync now" in page.text and "History" in page.text
        answer = client.post("/users/lisa.smith/sync", data={"csrf": csrf(page.text)})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/runs/")
        for launch in client.ops.launches():
            assert launch.done.wait(60) and launch.user == "lisa.smith"
        run_page = client.get(answer.headers["location"])
        assert "What the sync of this user did" in run_page.text and '<ol class="trace">' in run_page.text
        assert "syncing lisa.smith now" in " ".join(flashes(run_page.text))
        # An unknown user: the run says so (and the history keeps it, as for `run --user`).
        answer = client.post("/users/nobody.here/sync", data={"csrf": csrf(page.text)})
        for launch in client.ops.launches():
            assert launch.done.wait(60)
        said = " ".join(flashes(follow(client, answer).text))
        assert "no Webitel user &#39;nobody.here&#39;" in said, said
