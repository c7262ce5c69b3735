"""Creatio -> Webitel provisioning end to end: records become Webitel users, deletes and edits travel."""

from __future__ import annotations

import pytest
import requests

from jobs import exit_codes
from jobs.progress import Progress
from e2ekit import admin_create, run_job
from jobs.sync.cycle import run_once
from jobs.wiring import creatio_client, webitel_client

pytestmark = pytest.mark.e2e


def users_run(config, **kw):
    return run_job(config, "users", **kw)


def records(box):
    return {r["Id"]: r for r in box.creatio_app.rows("WebitelUser")}


@pytest.fixture
def synced(make_sandbox, make_config):
    box = make_sandbox(40, seed=12)
    config = make_config(box, sync={"max_deactivation_share": 0.5})
    users_run(config)
    return box, config


def new_record(box, config, *, username="new.agent", extension="7777", contact=None):
    taken = {u["email"].casefold() for u in box.webitel_app.all_users(include_deleted=True) if u["email"]}
    used = {r["ContactId"] for r in box.creatio_app.rows("WebitelUser")}
    contact = contact or next(c for c in box.creatio_app.rows("Contact")
                              if c["Email"] and c["Email"].casefold() not in taken and c["Id"] not in used
                              and c["Id"] not in new_record.picked)
    new_record.picked.add(contact["Id"])
    row = admin_create(box, "WebitelUser", {"Name": contact["Name"], "Username": username,
                                                        "Extension": extension, "ContactId": contact["Id"],
                                                        "Active": True})
    return row["Id"], contact


new_record.picked = set()


def test_record_becomes_a_webitel_user_and_the_id_is_written_back(synced):
    box, config = synced
    record_id, contact = new_record(box, config)
    report = users_run(config)
    assert [a.kind for a in report.plan.actions if a.object == "WebitelAccount"] == ["create_webitel_user"]
    user = box.webitel_app.user_by_username("new.agent")
    assert user["extension"] == "7777" and user["name"] == " ".join(contact["Name"].split())
    assert user["email"] == contact["Email"] and user["password"]  # a generated password was set
    assert records(box)[record_id]["WebitelId"] == str(user["id"])
    again = users_run(config)
    assert [a for a in again.plan.actions] == []


def test_missing_and_duplicate_extension_leave_the_record_untouched(synced):
    box, config = synced
    missing_id, _ = new_record(box, config, username="no.ext", extension="")
    taken = next(u["extension"] for u in box.webitel_app.all_users() if u["extension"])
    dup_id, _ = new_record(box, config, username="dup.ext", extension=taken)
    report = users_run(config)
    kinds = {c.kind for c in report.plan.conflicts if "record" in c.user}
    assert {"missing_extension", "duplicate_extension"} <= kinds
    assert (
        box.webitel_app.user_by_username("no.ext") is None
        and box.webitel_app.user_by_username("dup.ext") is None
    )
    assert not records(box)[missing_id]["WebitelId"] and not records(box)[dup_id]["WebitelId"]
    assert report.exit_code() == exit_codes.CONFLICTS


def test_duplicate_username_in_webitel_is_reported_not_retried(synced):
    box, config = synced
    webitel = webitel_client(config)
    victim = box.webitel_app.all_users()[-1]
    webitel.delete_user(victim["id"])  # soft-deleted: its username still blocks (reference section 5)
    box.webitel.stats.reset()
    record_id, _ = new_record(box, config, username=victim["username"], extension="7788")
    report = users_run(config)
    (error,) = [e for e in report.errors if e.kind == "duplicate_username"]
    assert victim["username"] in error.message
    creates = sum(
        n
        for (method, route, _), n in box.webitel.stats.requests.items()
        if method == "POST" and route == "/api/users"
    )
    assert creates == 1  # one attempt, no retry
    assert not records(box)[record_id]["WebitelId"]


def test_crash_between_create_and_write_back_does_not_create_twice(synced):
    box, config = synced
    record_id, contact = new_record(box, config, username="half.done", extension="7799")
    # The create landed, the write-back did not (the process died in between):
    creds = box.data.credentials
    requests.post(
        f"{box.webitel_url}/users",
        json={
            "username": "half.done",
            "extension": "7799",
            "name": contact["Name"],
            "password": "Pw-123456789",
        },
        headers={"X-Webitel-Access": creds.webitel_token},
        timeout=10,
    ).raise_for_status()
    users_run(config)
    matches = [u for u in box.webitel_app.all_users(include_deleted=True) if u["username"] == "half.done"]
    assert len(matches) == 1
    assert records(box)[record_id]["WebitelId"] == str(matches[0]["id"])


@pytest.mark.parametrize("on_delete", ["soft", "permanent", "keep"])
def test_deleted_record_removes_the_webitel_user_per_on_delete(make_sandbox, make_config, on_delete):
    box = make_sandbox(40, seed=12)
    config = make_config(box, provisioning={"on_delete": on_delete}, sync={"max_deactivation_share": 0.5})
    users_run(config)
    record = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"])
    creatio_client(config).delete("WebitelUser", record["Id"])
    report = users_run(config, full=True)  # deletions are seen by a full read
    wid = int(record["WebitelId"])
    if on_delete == "keep":
        assert box.webitel_app.user(wid) is not None
        assert any(r["WebitelId"] == str(wid) for r in box.creatio_app.rows("WebitelUser"))  # imported again
        return
    (action,) = [a for a in report.plan.actions if a.kind == "delete_webitel_user"]
    assert action.webitel_id == wid
    active = {u["id"] for u in box.webitel_app.all_users()}
    everyone = {u["id"] for u in box.webitel_app.all_users(include_deleted=True)}
    assert wid not in active
    assert (wid in everyone) is (on_delete == "soft")
    assert not any(r["WebitelId"] == str(wid) for r in box.creatio_app.rows("WebitelUser"))  # not re-imported
    assert users_run(config).plan.actions == ()


def test_deleting_many_records_trips_the_cap(make_sandbox, make_config):
    box = make_sandbox(40, seed=12)
    config = make_config(box, sync={"max_deactivations": 2})
    users_run(config)
    creatio = creatio_client(config)
    doomed = [r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]][:5]
    for r in doomed:
        creatio.delete("WebitelUser", r["Id"])
    report = users_run(config, full=True)
    assert report.outcome == "refused" and report.exit_code() == exit_codes.FAILED
    assert all(box.webitel_app.user(int(r["WebitelId"])) is not None for r in doomed)


def test_extension_edit_in_creatio_reaches_webitel(synced):
    box, config = synced
    record = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"] and r["Extension"])
    creatio_client(config).update("WebitelUser", record["Id"], {"Extension": "6543"})
    report = users_run(config)
    kinds = sorted(a.kind for a in report.plan.actions if a.webitel_id == int(record["WebitelId"]))
    assert kinds == ["update_extension_comm", "update_webitel_user"]  # the contact's option follows too
    assert box.webitel_app.user(int(record["WebitelId"]))["extension"] == "6543"
    assert any(
        c["ContactId"] == record["ContactId"] and c["Number"] == "6543"
        for c in box.creatio_app.rows("ContactCommunication")
    )
    assert records(box)[record["Id"]]["Extension"] == "6543"
    assert users_run(config).plan.actions == ()


@pytest.mark.parametrize("owner", ["webitel", "creatio"])
def test_both_sides_edited_the_owner_wins_and_the_loser_is_reported(make_sandbox, make_config, owner):
    box = make_sandbox(30, seed=12)
    config = make_config(box, provisioning={"owner": {"name": owner}})
    users_run(config)
    record = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"])
    wid = int(record["WebitelId"])
    creatio_client(config).update("WebitelUser", record["Id"], {"Name": "Creatio Edit"})
    webitel_client(config).patch_user(wid, {"name": "Webitel Edit"})
    report = users_run(config)
    winner, loser = (
        ("Webitel Edit", "Creatio Edit") if owner == "webitel" else ("Creatio Edit", "Webitel Edit")
    )
    assert box.webitel_app.user(wid)["name"] == winner and records(box)[record["Id"]]["Name"] == winner
    (warning,) = [w for w in report.plan.warnings if w.kind == "edit_conflict"]
    assert warning.webitel_id == wid and loser in warning.message and warning.field == "name"
    assert users_run(config).plan.actions == ()


def test_dry_run_shows_provisioning_actions(synced, tmp_path):
    box, config = synced
    new_record(box, config, username="planned.only", extension="7766")
    (report,) = run_once(config, dry_run=True, progress=Progress(enabled=False), jobs=("users",))
    assert any(
        a.kind == "create_webitel_user" and a.new["username"] == "planned.only" for a in report.plan.actions
    )
    assert box.webitel_app.user_by_username("planned.only") is None
