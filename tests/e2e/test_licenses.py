"""Licences both ways, end to end: catalog to Creatio, three-way grant merge, refusals, caps, admin
commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import exit_codes
from jobs.apply.licenses import webitel_grant_step
from jobs.plan import Action
from e2ekit import admin_create, cycle, run_job
from jobs.wiring import creatio_client, state_store, webitel_client
from mappings import keys
from sandbox.webitel import make_certificate

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


def sync(config, job="licenses"):
    return run_job(config, job)


def webitel_grants(box):
    return {(str(u["id"]), s) for u in box.webitel_app.all_users() for s in u["license"]}


def creatio_grants(box):
    users = {r["Id"]: r["WebitelId"] for r in box.creatio_app.rows("WebitelUser")}
    lics = {r["Id"]: r["Serial"] for r in box.creatio_app.rows("WebitelLicense")}
    return {(users[g["UserId"]], lics[g["LicenseId"]]) for g in box.creatio_app.rows("WebitelUserLicense")}


def imported(box):
    return {r["WebitelId"]: r["Id"] for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}


@pytest.fixture
def synced(make_sandbox, make_config):
    """A sandbox after a first full cycle (users, then licences)."""
    box = make_sandbox(60, seed=8)
    config = make_config(box, licenses={"max_revocation_share": 0.5})
    cycle(config)
    return box, config


def add_creatio_grant(box, config, webitel_id: str, serial: str) -> str:
    lic_id = next(r["Id"] for r in box.creatio_app.rows("WebitelLicense") if r["Serial"] == serial)
    row = admin_create(box, "WebitelUserLicense", {"UserId": imported(box)[webitel_id], "LicenseId": lic_id})
    return row["Id"]


def valid_named_license_with_room(box):
    return next(
        l
        for l in box.webitel_app.licenses()
        if not l["competitive"] and l["remain"] > 2 and l["id"] not in (box.data.notes["expired_license"],)
    )


def user_without(box, serial):
    ids = imported(box)
    return next(
        str(u["id"])
        for u in box.webitel_app.all_users()
        if str(u["id"]) in ids and serial not in u["license"]
    )


def test_first_run_webitel_wins_catalog_and_grants_land_then_nothing_to_do(make_sandbox, make_config):
    box = make_sandbox(60, seed=8)
    config = make_config(box)
    users_report, licenses_report = cycle(config)
    catalog = {r["Serial"]: r for r in box.creatio_app.rows("WebitelLicense")}
    for lic in box.webitel_app.licenses():
        record = catalog[lic["id"]]
        assert record["Product"] == lic["product"] and record["Limit"] == lic["limit"]
        assert record["Used"] == lic["limit"] - lic["remain"] and record["Concurrent"] == lic["competitive"]
        assert record["Id"] == keys.license_record_id(box.data.domain, lic["id"])
    ids = imported(box)
    assert creatio_grants(box) == {g for g in webitel_grants(box) if g[0] in ids}
    with state_store(config) as store:
        assert store.has_baseline() and store.baseline() == creatio_grants(box)
    box.creatio.stats.reset()
    box.webitel.stats.reset()
    again = sync(config)
    assert again.plan.actions == () and box.creatio.stats.writes == 0 and box.webitel.stats.writes == 0


def test_first_run_creatio_wins(make_sandbox, make_config):
    box = make_sandbox(40, seed=8)
    config = make_config(
        box, licenses={"first_run_winner": "creatio", "max_revocation_share": 1.0, "max_revocations": 1000}
    )
    sync(config, "users")
    webitel_id = next(iter(imported(box)))
    serial = box.data.notes["expiring_license"]
    lic = {l["id"]: l for l in box.webitel_app.licenses()}[serial]
    lic_row = admin_create(
        box, "WebitelLicense", {"Serial": serial, "Product": lic["product"], "Name": lic["name"]}
    )
    admin_create(box, "WebitelUserLicense", {"UserId": imported(box)[webitel_id], "LicenseId": lic_row["Id"]})
    report = sync(config)
    assert report.outcome == "in_sync", [c.message for c in report.plan.conflicts]
    ids = imported(box)
    assert {g for g in webitel_grants(box) if g[0] in ids} == {(webitel_id, serial)}


def test_added_in_creatio_reaches_webitel(synced):
    box, config = synced
    lic = valid_named_license_with_room(box)
    wid = user_without(box, lic["id"])
    add_creatio_grant(box, config, wid, lic["id"])
    report = sync(config)
    assert report.outcome == "in_sync"
    assert (wid, lic["id"]) in webitel_grants(box)
    catalog = {r["Serial"]: r for r in box.creatio_app.rows("WebitelLicense")}
    fresh = {l["id"]: l for l in box.webitel_app.licenses()}[lic["id"]]
    assert catalog[lic["id"]]["Used"] == fresh["limit"] - fresh["remain"]  # "used" followed in the same run
    assert sync(config).plan.actions == ()


def test_removed_in_webitel_is_removed_in_creatio_and_vice_versa(synced):
    box, config = synced
    ids = imported(box)
    wid, serial = next(g for g in sorted(webitel_grants(box)) if g[0] in ids)
    webitel = webitel_client(config)
    webitel.set_user_licenses(int(wid), [s for s in box.webitel_app.user(int(wid))["license"] if s != serial])
    other_wid, other_serial = next(g for g in sorted(creatio_grants(box)) if g[0] != wid)
    row = next(
        g
        for g in box.creatio_app.rows("WebitelUserLicense")
        if g["UserId"] == ids[other_wid]
        and g["LicenseId"] == keys.license_record_id(box.data.domain, other_serial)
    )
    creatio_client(config).delete("WebitelUserLicense", row["Id"])
    report = sync(config)
    assert report.outcome == "in_sync", [c.message for c in report.plan.conflicts]
    assert (wid, serial) not in creatio_grants(box)
    assert (other_wid, other_serial) not in webitel_grants(box)
    assert sync(config).plan.actions == ()


def test_added_in_webitel_reaches_creatio_and_same_change_on_both_sides_is_a_no_op(synced):
    box, config = synced
    lic = valid_named_license_with_room(box)
    wid_a = user_without(box, lic["id"])
    webitel = webitel_client(config)
    webitel.set_user_licenses(int(wid_a), [*box.webitel_app.user(int(wid_a))["license"], lic["id"]])
    wid_b = next(
        w for w in imported(box) if w != wid_a and lic["id"] not in box.webitel_app.user(int(w))["license"]
    )
    webitel.set_user_licenses(int(wid_b), [*box.webitel_app.user(int(wid_b))["license"], lic["id"]])
    add_creatio_grant(box, config, wid_b, lic["id"])  # the same change on both sides
    box.webitel.stats.reset()
    report = sync(config)
    kinds = sorted(a.kind for a in report.plan.actions)
    assert kinds.count("create_grant_row") == 1 and "grant_webitel" not in kinds
    assert (wid_a, lic["id"]) in creatio_grants(box) and (wid_b, lic["id"]) in creatio_grants(box)
    assert box.webitel.stats.total("PATCH") == 0


def test_expired_and_not_yet_valid_are_refused_and_rows_left_in_place(synced):
    box, config = synced
    expired = box.data.notes["expired_license"]
    wid = user_without(box, expired)
    row_id = add_creatio_grant(box, config, wid, expired)
    now_ms = max(l["not_before"] for l in box.webitel_app.licenses())
    future = {
        "id": "0b7a6b2e-0000-4000-8000-00000000f00d",
        "product": "WFM",
        "name": "Next year",
        "not_before": now_ms + 400 * DAY_MS,
        "not_after": now_ms + 800 * DAY_MS,
        "limit": 5,
        "competitive": False,
        "scope": ["users"],
    }
    key = make_certificate([future], box.data.credentials.license_signing_key)
    webitel_client(config).upload_license_key(key)
    sync(config)  # the new licence reaches the catalog
    wid2 = user_without(box, future["id"])
    add_creatio_grant(box, config, wid2, future["id"])
    report = sync(config)
    kinds = {c.kind: c for c in report.plan.conflicts}
    assert kinds["license_expired"].webitel_id == int(wid) and kinds["license_expired"].field == "license"
    assert kinds["license_not_yet_valid"].webitel_id == int(wid2)
    assert report.exit_code() == exit_codes.CONFLICTS
    assert row_id in {g["Id"] for g in box.creatio_app.rows("WebitelUserLicense")}
    assert (wid, expired) not in webitel_grants(box) and (wid2, future["id"]) not in webitel_grants(box)
    assert {c.kind for c in sync(config).plan.conflicts} >= {"license_expired", "license_not_yet_valid"}


def test_named_licence_at_its_limit_names_the_users_refused(synced):
    box, config = synced
    full = box.data.notes["full_license"]
    ids = imported(box)
    takers = [
        str(u["id"]) for u in box.webitel_app.all_users() if str(u["id"]) in ids and full not in u["license"]
    ][:2]
    for wid in takers:
        add_creatio_grant(box, config, wid, full)
    report = sync(config)
    (conflict,) = [c for c in report.plan.conflicts if c.kind == "license_limit_reached"]
    assert len(conflict.others) == 2 and all(f"(id {w})" in " ".join(conflict.others) for w in takers)
    assert not {(w, full) for w in takers} & webitel_grants(box)
    assert {(w, full) for w in takers} <= creatio_grants(box)


def test_revocation_cap_revokes_nothing(make_sandbox, make_config):
    box = make_sandbox(60, seed=8)
    config = make_config(box, licenses={"max_revocations": 3})
    cycle(config)
    before = creatio_grants(box)
    webitel = webitel_client(config)
    for wid in list(imported(box))[:10]:
        webitel.set_user_licenses(int(wid), [])
    report = sync(config)
    assert report.outcome == "refused" and report.exit_code() == exit_codes.FAILED
    assert any(c.kind == "revocation_cap" for c in report.plan.conflicts)
    assert creatio_grants(box) == before


def test_fresh_read_keeps_an_admins_concurrent_grant(synced):
    box, config = synced
    lic = valid_named_license_with_room(box)
    other = next(l for l in box.webitel_app.licenses() if l["competitive"])
    wid = next(
        w
        for w in imported(box)
        if lic["id"] not in box.webitel_app.user(int(w))["license"]
        and other["id"] not in box.webitel_app.user(int(w))["license"]
    )
    # The plan was made before the admin granted `other`; applying it must keep that grant.
    box.webitel_app.set_license_grants(int(wid), [*box.webitel_app.user(int(wid))["license"], other["id"]])
    step = webitel_grant_step(webitel_client(config), {})
    (outcome,) = step.run(
        [
            Action(
                "grant_webitel",
                "WebitelGrant",
                f"{wid}:{lic['id']}",
                "k",
                "u",
                int(wid),
                new={"license": lic["id"]},
            )
        ]
    )
    assert outcome.ok
    assert {lic["id"], other["id"]} <= set(box.webitel_app.user(int(wid))["license"])


def cli(config_path, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(config_path), *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_box(make_sandbox, tmp_path):
    box = make_sandbox(50, seed=8)
    path = tmp_path / "config.toml"
    path.write_text(box.config_toml(state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"), encoding="utf-8")
    assert cli(path, "run").returncode == exit_codes.CONFLICTS
    return box, path


def test_renewal_through_license_upload_extends_valid_till_in_creatio(cli_box):
    box, path = cli_box
    lic = box.webitel_app.licenses()[0]
    renewed = {**lic, "not_after": lic["not_after"] + 365 * DAY_MS}
    key = make_certificate([renewed], box.data.credentials.license_signing_key)
    result = cli(path, "license-upload", "-", stdin=key + "\n")
    assert result.returncode == exit_codes.OK, result.stderr
    assert (
        "extended" in result.stdout
        and lic["id"] in result.stdout
        and key not in result.stdout + result.stderr
    )
    assert cli(path, "run", "--job", "licenses").returncode == exit_codes.OK
    record = next(r for r in box.creatio_app.rows("WebitelLicense") if r["Serial"] == lic["id"])
    assert record["ValidTill"].startswith(
        __import__("datetime")
        .datetime.fromtimestamp(renewed["not_after"] / 1000, __import__("datetime").timezone.utc)
        .strftime("%Y-%m-%d")
    )
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    bad = cli(path, "license-upload", tampered)
    assert bad.returncode == exit_codes.FAILED and "rejected" in bad.stdout and tampered not in bad.stdout


def test_license_assign_and_revoke_mirror_to_creatio(cli_box):
    box, path = cli_box
    lic = next(
        l
        for l in box.webitel_app.licenses()
        if not l["competitive"] and l["remain"] > 0 and l["id"] not in (box.data.notes["expired_license"],)
    )
    wid = user_without(box, lic["id"])
    username = box.webitel_app.user(int(wid))["username"]
    result = cli(path, "license", "assign", username, lic["id"])
    assert result.returncode == exit_codes.OK, result.stderr
    assert (wid, lic["id"]) in webitel_grants(box) and (wid, lic["id"]) in creatio_grants(box)
    check = json.loads(cli(path, "run", "--job", "licenses", "--json").stdout)
    assert check["actions"] == []
    assert cli(path, "license", "revoke", username, lic["id"]).returncode == exit_codes.OK
    assert (wid, lic["id"]) not in webitel_grants(box) and (wid, lic["id"]) not in creatio_grants(box)
    refused = cli(path, "license", "assign", username, box.data.notes["expired_license"])
    assert refused.returncode == exit_codes.FAILED and "license_expired" in refused.stderr


def test_licenses_registry_and_matrix(cli_box):
    box, path = cli_box
    table = cli(path, "licenses")
    assert table.returncode == exit_codes.OK
    assert "Used / Limit" in table.stdout and "EXPIRED" in table.stdout and "Yes" in table.stdout
    rows = json.loads(cli(path, "licenses", "--json").stdout)
    states = {r["id"]: r["state"] for r in rows}
    assert states[box.data.notes["expired_license"]] == "expired"
    assert states[box.data.notes["expiring_license"]] == "expiring"
    one_user = box.webitel_app.all_users()[0]
    matrix = json.loads(cli(path, "licenses", "--users", "--json", "--search", one_user["username"]).stdout)
    assert [r["username"] for r in matrix] == [one_user["username"]]
    assert set(matrix[0]["licenses"]) == set(one_user["license"])


def test_one_refused_grant_does_not_fail_the_users_other_grants(synced):
    box, config = synced
    full = box.data.notes["full_license"]  # Webitel itself refuses a new seat of it
    ok = valid_named_license_with_room(box)
    wid = next(w for w in imported(box)
               if {full, ok["id"]}.isdisjoint(box.webitel_app.user(int(w))["license"]))

    def grant(serial):
        return Action(
            "grant_webitel",
            "WebitelGrant",
            f"{wid}:{serial}",
            f"grant:{wid}:{serial}",
            "u",
            int(wid),
            new={"license": serial.lower()},
        )

    outcomes = webitel_grant_step(webitel_client(config), {}).run([grant(full), grant(ok["id"])])
    assert [(o.action.new["license"], o.ok) for o in outcomes] == [
        (full.lower(), False),
        (ok["id"].lower(), True),
    ]
    held = set(box.webitel_app.user(int(wid))["license"])
    assert ok["id"] in held and full not in held
