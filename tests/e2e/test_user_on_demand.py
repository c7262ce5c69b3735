"""One user on demand (``run --user``): both directions, a handful of requests, a step trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from e2ekit import cycle
from jobs import exit_codes
from jobs.sync.cycle import run_once
from jobs.wiring import webitel_client

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 2,000-user site after a full first sync."""
    from sandbox.harness import start_sandbox
    from tests.conftest import NOW_MS

    folder = tmp_path_factory.mktemp("ondemand")
    box = start_sandbox(2000, seed=71, now_ms=NOW_MS)
    config_path = folder / "config.toml"
    config_path.write_text(
        box.config_toml(state_url=f"sqlite:///{folder / 'state.sqlite'}"), encoding="utf-8"
    )
    config_path.chmod(0o600)
    from jobs.config import load_config

    config = load_config(config_path)
    cycle(config)
    yield box, config, config_path
    box.stop()


def test_one_user_both_ways_in_a_handful_of_requests(big):
    box, config, _ = big
    imported = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    user = next(u for u in box.webitel_app.all_users() if str(u["id"]) in imported and u["extension"])
    webitel_client(config).patch_user(user["id"], {"name": "Renamed On Demand"})
    lic = next(l for l in box.webitel_app.licenses() if l["competitive"] and l["id"] not in user["license"])
    box.webitel_app.set_license_grants(user["id"], [*user["license"], lic["id"]])
    box.webitel.stats.reset()
    box.creatio.stats.reset()
    (report,) = run_once(config, user=user["username"])
    webitel_requests, creatio_requests = box.webitel.stats.total(), box.creatio.stats.total()
    assert webitel_requests <= 3 and creatio_requests <= 10, (webitel_requests, creatio_requests)
    assert report.job == "user" and not report.failure
    record = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"] == str(user["id"]))
    assert record["Name"] == "Renamed On Demand"
    lic_row = next(r for r in box.creatio_app.rows("WebitelLicense") if r["Serial"] == lic["id"].lower())
    assert any(
        g["UserId"] == record["Id"] and g["LicenseId"] == lic_row["Id"]
        for g in box.creatio_app.rows("WebitelUserLicense")
    )
    trace = report.details["trace"]
    assert trace[0].startswith(f"read Webitel user {user['username']}")
    assert any(step.startswith("write update_record") and "applied" in step for step in trace)
    assert any(step.startswith("write create_grant_row") and "applied" in step for step in trace)
    # Nothing else was touched: another user's record is as it was, and a full run agrees.
    again = run_once(config, dry_run=True)
    assert [a for r in again for a in r.plan.actions if a.webitel_id == user["id"]] == []


def test_one_user_dry_run_json_and_an_extension_clash_is_still_refused(big):
    box, config, path = big
    victim = [u for u in box.webitel_app.all_users() if u["extension"]][10]
    # A record made in Creatio by hand (no Webitel user) takes the same extension.
    box.creatio_app.insert(
        "WebitelUser",
        {
            "Id": "0c0c0c0c-0000-4000-8000-000000000001",
            "Name": "Lobby phone",
            "Extension": victim["extension"],
            "Active": True,
        },
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs",
            "--config",
            str(path),
            "run",
            "--user",
            str(victim["id"]),
            "--dry-run",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert result.returncode == exit_codes.CONFLICTS, result.stderr
    assert [c["kind"] for c in report["conflicts"]] == ["duplicate_extension"]
    assert report["dry_run"] and report["trace"]
    unknown = subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(path), "run", "--user", "no.such"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == exit_codes.FAILED and "no Webitel user" in unknown.stderr
