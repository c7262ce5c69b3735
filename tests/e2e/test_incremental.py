"""Incremental cycles (``[sync] full_every``): between full reads a cycle reads only what changed.

The sandbox's Webitel clock runs here (an incremental read goes by ``updated_at``), and
``full_every`` is a day, so every cycle after the first is incremental unless asked otherwise.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from e2ekit import admin_create, run_job
from jobs.wiring import creatio_client, webitel_client

pytestmark = pytest.mark.e2e


def wall_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def synced(make_sandbox, make_config):
    def make(**options):
        box = make_sandbox(300, seed=91, webitel_options={"now_ms": wall_ms, **options})
        # No margin: the sandbox's clocks are this machine's, and these cycles come seconds apart,
        # where a margin would read again what the cycle before wrote (as it does for real for
        # the first minutes after a cycle).
        config = make_config(box, sync={"full_every": "24h", "watermark_margin_s": 0})
        first = run_job(config)
        assert first.details["mode"] == "full"
        time.sleep(0.01)  # a change made now has a newer updated_at than anything the cycle saw
        return box, config
    return make


def free_extension(box) -> str:
    taken = {u["extension"] for u in box.webitel_app.all_users(include_deleted=True)}
    taken |= {r["Extension"] for r in box.creatio_app.rows("WebitelUser")}
    return next(str(n) for n in range(7100, 9999) if str(n) not in taken)


def conflicts(report) -> list[tuple]:
    return sorted((c.kind, c.user, c.webitel_id, c.others) for c in report.plan.conflicts)


def test_an_idle_incremental_cycle_reads_almost_nothing(synced):
    box, config = synced()
    full = run_job(config, dry_run=True, full=True)
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    assert report.plan.actions == ()
    # The conflicts of users it did not read are still open: the same as a full read sees.
    assert full.plan.conflicts and conflicts(report) == conflicts(full)
    assert report.details["carried_conflicts"] == len(full.plan.conflicts)
    assert report.outcome == "conflicts"
    assert box.webitel.stats.total() <= 3 and box.creatio.stats.total() <= 8, (
        box.webitel.stats.total(), box.creatio.stats.total())


def test_changes_on_either_side_travel_in_an_incremental_cycle(synced):
    box, config = synced()
    records = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    renamed, edited = [u for u in box.webitel_app.all_users() if str(u["id"]) in records][:2]
    webitel_client(config).patch_user(renamed["id"], {"name": "Renamed Incrementally"})
    creatio_client(config).update(
        "WebitelUser", records[str(edited["id"])]["Id"], {"Name": "Edited In Creatio"}
    )
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    touched = {a.webitel_id for a in report.plan.actions}
    assert touched == {renamed["id"], edited["id"]}, report.plan.actions
    after = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    assert after[str(renamed["id"])]["Name"] == "Renamed Incrementally"


def test_an_incremental_plan_still_refuses_an_extension_held_by_anyone_else(synced):
    box, config = synced()
    records = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    user = next(u for u in box.webitel_app.all_users() if str(u["id"]) in records and u["extension"])
    admin_create(box, "WebitelUser", {"Name": "Lobby phone", "Extension": "6999", "Active": True})
    webitel_client(config).patch_user(user["id"], {"extension": "6999"})
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    fresh = [(c.kind, c.webitel_id) for c in report.plan.conflicts[:len(report.plan.conflicts)
                                                                   - report.details["carried_conflicts"]]]
    # The record is no one's yet (provisioning would create it, but it has no username).
    assert sorted(fresh, key=str) == [("duplicate_extension", user["id"]), ("missing_username", None)]
    full = run_job(config, dry_run=True, full=True)
    assert conflicts(report) == conflicts(full) and full.plan.actions == ()  # the edit is not undone


def test_a_record_made_for_provisioning_is_created_by_an_incremental_cycle(synced):
    box, config = synced()
    taken = {u["email"].casefold() for u in box.webitel_app.all_users(include_deleted=True) if u["email"]}
    used = {r["ContactId"] for r in box.creatio_app.rows("WebitelUser")}
    contact = next(c for c in box.creatio_app.rows("Contact")
                   if c["Email"] and c["Email"].casefold() not in taken and c["Id"] not in used)
    ext = free_extension(box)
    made = admin_create(box, "WebitelUser", {"Name": contact["Name"], "Username": "inc.agent",
                                             "Extension": ext, "ContactId": contact["Id"], "Active": True})
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    assert [a.kind for a in report.plan.actions if a.object == "WebitelAccount"] == ["create_webitel_user"]
    assert report.errors == []
    user = box.webitel_app.user_by_username("inc.agent")
    assert user["extension"] == ext
    written = {r["Id"]: r for r in box.creatio_app.rows("WebitelUser")}[made["Id"]]
    assert written["WebitelId"] == str(user["id"])
    again = run_job(config)
    assert again.details["mode"] == "incremental" and again.plan.actions == ()


def test_an_incremental_cycle_refuses_a_new_record_whose_extension_or_username_is_taken(synced):
    box, config = synced()
    quiet = [u for u in box.webitel_app.all_users() if u["extension"]]
    admin_create(box, "WebitelUser", {"Name": "Taken Ext", "Username": "taken.ext",
                                      "Extension": quiet[0]["extension"], "Active": True})
    admin_create(box, "WebitelUser", {"Name": "Taken Name", "Username": quiet[1]["username"].upper(),
                                      "Extension": free_extension(box), "Active": True})
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    assert not [a for a in report.plan.actions if a.kind == "create_webitel_user"]
    assert box.webitel_app.user_by_username("taken.ext") is None
    # Exactly what a full read plans for them.
    full = run_job(config, dry_run=True, full=True)
    assert conflicts(report) == conflicts(full) and full.plan.actions == ()  # the edit is not undone
    assert [a.as_dict() for a in report.plan.actions] == [a.as_dict() for a in full.plan.actions]


def test_a_server_that_ignores_sort_makes_the_cycle_read_everything(synced):
    box, config = synced(honour_sort=False)
    tenth = sorted(u["id"] for u in box.webitel_app.all_users())[10]
    webitel_client(config).patch_user(tenth, {"name": "Changed Later"})  # newer than ids before it
    report = run_job(config)
    assert report.details["mode"] == "full" and "did not sort" in report.details["fallback"]


def test_a_deletion_is_caught_by_the_full_read_not_by_an_incremental_one(synced):
    box, config = synced()
    records = {
        r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"] and r["Active"]
    }
    gone = next(u for u in box.webitel_app.all_users() if str(u["id"]) in records)
    webitel_client(config).delete_user(gone["id"], permanent=True)
    quick = run_job(config)
    assert quick.details["mode"] == "incremental" and quick.plan.actions == ()
    full = run_job(config, full=True)
    assert full.details["mode"] == "full"
    assert [(a.kind, a.webitel_id) for a in full.plan.actions] == [("deactivate_record", gone["id"])]


def test_an_extension_edited_in_creatio_to_one_an_untouched_webitel_user_holds_is_refused(synced):
    box, config = synced()
    records = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    edited, holder = [u for u in box.webitel_app.all_users()
                      if str(u["id"]) in records and u["extension"]][:2]
    creatio_client(config).update("WebitelUser", records[str(edited["id"])]["Id"],
                                  {"Extension": holder["extension"]})
    report = run_job(config)
    assert report.details["mode"] == "incremental"
    assert box.webitel_app.user(edited["id"])["extension"] == edited["extension"]  # not written
    # The Webitel holder keeps it; the edit is refused, named against the holder.
    (clash,) = [c for c in report.plan.conflicts
                if c.kind == "duplicate_extension" and c.webitel_id == edited["id"]]
    assert clash.others == (f"{holder['username']} (id {holder['id']})",)
    full = run_job(config, dry_run=True, full=True)
    assert conflicts(report) == conflicts(full) and full.plan.actions == ()  # the edit is not undone


# ---- the licences job -----------------------------------------------------------------------------

def licence_cycle(synced):
    box, config = synced()
    first = run_job(config, "licenses")
    assert first.details["mode"] == "full"
    time.sleep(0.01)
    return box, config


def same_plan(config):
    """The incremental plan (dry) and a full read's (dry) of the same state: they must agree."""
    quick = run_job(config, "licenses", dry_run=True)
    full = run_job(config, "licenses", dry_run=True, full=True)
    assert quick.details["mode"] == "incremental", quick.details.get("fallback")
    assert [a.as_dict() for a in quick.plan.actions] == [a.as_dict() for a in full.plan.actions]
    assert conflicts(quick) == conflicts(full)
    return quick


def test_an_idle_incremental_licence_sync_reads_almost_nothing(synced):
    box, config = licence_cycle(synced)
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    report = run_job(config, "licenses")
    assert report.details["mode"] == "incremental" and report.plan.actions == ()
    assert box.webitel.stats.total() <= 3 and box.creatio.stats.total() <= 8, (
        box.webitel.stats.requests, box.creatio.stats.requests)


def test_grants_changed_on_either_side_travel_in_an_incremental_licence_sync(synced):
    box, config = licence_cycle(synced)
    records = {r["WebitelId"]: r["Id"] for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    catalog = {l["id"]: l for l in box.webitel_app.licenses()}
    named = next(l for l in catalog.values() if not l["competitive"] and l["remain"] > 2
                 and l["id"] != box.data.notes["expired_license"])
    held = [u for u in box.webitel_app.all_users() if str(u["id"]) in records and u["license"]]
    revoked = held[0]
    webitel_client(config).set_user_licenses(revoked["id"], revoked["license"][1:])
    taker = next(u for u in box.webitel_app.all_users()
                 if str(u["id"]) in records and named["id"] not in u["license"] and u["id"] != revoked["id"])
    lic_row = next(r for r in box.creatio_app.rows("WebitelLicense") if r["Serial"] == named["id"])
    admin_create(box, "WebitelUserLicense", {"UserId": records[str(taker["id"])], "LicenseId": lic_row["Id"]})
    planned = same_plan(config)
    assert {(a.kind, a.webitel_id) for a in planned.plan.actions if a.kind != "update_license"} >= {
        ("delete_grant_row", revoked["id"]), ("grant_webitel", taker["id"])}
    report = run_job(config, "licenses")
    assert report.details["mode"] == "incremental" and report.outcome == "in_sync"
    assert named["id"] in box.webitel_app.user(taker["id"])["license"]
    assert run_job(config, "licenses").plan.actions == ()


def test_a_row_deleted_in_creatio_is_found_by_the_count_and_revoked(synced):
    box, config = licence_cycle(synced)
    records = {r["Id"]: r["WebitelId"] for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    row = next(g for g in box.creatio_app.rows("WebitelUserLicense") if g["UserId"] in records)
    creatio_client(config).delete("WebitelUserLicense", row["Id"])
    planned = same_plan(config)
    assert "1 user(s) lost a row" in planned.details["deleted_rows"]
    box.webitel.stats.reset()
    report = run_job(config, "licenses")
    assert report.details["mode"] == "incremental" and "deleted in Creatio" in report.details["deleted_rows"]
    assert [(a.kind, str(a.webitel_id)) for a in report.plan.actions if a.kind == "revoke_webitel"] == [
        ("revoke_webitel", records[row["UserId"]])]
    # Not every user's grants: the changed users, the one user by id, its fresh read before the PATCH.
    assert box.webitel.stats.total("GET", "/api/users") <= 3
    again = run_job(config, "licenses")
    assert again.details["mode"] == "incremental" and again.plan.actions == ()


def test_a_mark_that_does_not_read_makes_a_full_read_not_a_traceback(synced):
    from jobs.state import StateStore

    box, config = licence_cycle(synced)
    with StateStore.open(config.state.url) as store:
        store.set_value("watermark.users.creatio", "yesterday-ish", now=datetime.now(timezone.utc))
        store.set_value("licenses.rows_seen", "{not json", now=datetime.now(timezone.utc))
    assert run_job(config).details["mode"] == "full"
    assert run_job(config, "licenses").details["mode"] == "full"
    assert run_job(config).details["mode"] == "incremental"  # the full read wrote good marks
