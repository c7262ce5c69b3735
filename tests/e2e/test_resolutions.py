"""An administrator resolves every conflict (link an ambiguous user, ignore a known clash), and
the scheduled runs go quiet: run -> conflict -> link / ignore -> run exits 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import exit_codes

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def site(make_sandbox, tmp_path):
    box = make_sandbox(80, seed=61)
    config = tmp_path / "config.toml"
    config.write_text(box.config_toml(state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"), encoding="utf-8")
    config.chmod(0o600)
    return box, config


def test_link_and_ignore_resolve_every_conflict_and_the_run_exits_0(site):
    box, config = site
    first = cli(config, "run", "--json")
    assert first.returncode == exit_codes.CONFLICTS
    conflicts = json.loads(first.stdout)["conflicts"]
    ambiguous = [c for c in conflicts if c["kind"] == "ambiguous_match"]
    assert ambiguous, conflicts
    contacts = {c["Name"].casefold(): c for c in box.creatio_app.rows("Contact")}
    linked = {}
    for conflict in ambiguous:
        # Pick the first candidate contact by its Id (names are ambiguous by definition).
        candidate = next(c for c in box.creatio_app.rows("Contact")
                         if f"({c['Id']})" in " ".join(conflict["others"]))
        result = cli(config, "link", conflict["username"], candidate["Id"], "--json")
        assert result.returncode == 0, result.stderr
        linked[conflict["webitel_id"]] = candidate["Id"]
    # The rest: users by username, Creatio records awaiting a Webitel user by their record Id.
    rest = [c for c in conflicts if c["kind"] != "ambiguous_match"]
    handles = {c["username"] if c.get("webitel_id") else re.search(GUID, c["user"]).group(0) for c in rest}
    for handle in handles:
        result = cli(config, "ignore", handle, "--reason", "known clash, agreed with IT")
        assert result.returncode == 0, result.stderr
    second = cli(config, "run", "--json")
    report = json.loads(second.stdout)
    assert second.returncode == exit_codes.OK, report["conflicts"]
    assert len(report["ignored"]) == len(rest)
    assert all("agreed with IT" in i["message"] for i in report["ignored"])
    records = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser")}
    for webitel_id, contact_id in linked.items():
        assert records[str(webitel_id)]["ContactId"] == contact_id
    assert contacts  # the data had contacts to choose from
    # The history tells who resolved what, on the user's own story.
    some = ambiguous[0]["username"]
    story = json.loads(cli(config, "history", "--object", some, "--json").stdout)
    assert any(row["event"]["action"] == "link" and row["event"]["message"].startswith("by cli")
               for row in story)


def test_an_ignored_conflict_comes_back_when_it_changes(site):
    box, config = site
    conflicts = json.loads(cli(config, "run", "--json").stdout)["conflicts"]
    clash = next(c for c in conflicts if c["kind"] == "duplicate_extension" and c.get("webitel_id"))
    assert cli(config, "ignore", clash["username"], "--reason", "known").returncode == 0
    quiet = json.loads(cli(config, "run", "--json").stdout)
    assert clash["webitel_id"] not in {c.get("webitel_id") for c in quiet["conflicts"]}
    # The underlying data changes: another record takes the same extension, a new clash.
    holder = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]
                  and int(r["WebitelId"]) != clash["webitel_id"] and r["Extension"])
    box.creatio_app.insert("WebitelUser", {"Id": "0b0b0b0b-0000-4000-8000-000000000001", "Name": "Desk phone",
                                           "Extension": holder["Extension"], "Active": True})
    back = json.loads(cli(config, "run", "--json").stdout)
    assert back["conflicts"], "a new clash is a new conflict"
    assert cli(config, "unignore", clash["username"]).returncode == 0
    again = json.loads(cli(config, "run", "--json").stdout)
    assert clash["webitel_id"] in {c.get("webitel_id") for c in again["conflicts"]}


def test_resolutions_refuse_what_cannot_be(site):
    box, config = site
    cli(config, "run")
    user = box.webitel_app.all_users()[0]["username"]
    assert "no Contact named" in cli(config, "link", user, "Nobody At All 12345").stderr
    assert "no Webitel user" in cli(config, "link", "no.such.user", "Nobody").stderr
    assert cli(config, "ignore", user, "--reason", " ").returncode == exit_codes.FAILED
