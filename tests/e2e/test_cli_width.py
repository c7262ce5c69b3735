"""Every command's output fits an 80-column terminal (full values are in ``--json``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
WIDTH = 80
COMMANDS = ("run", "serve", "check", "licenses", "license", "license-upload", "history", "demo", "sandbox")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from sandbox.harness import start_sandbox

    folder = tmp_path_factory.mktemp("width")
    box = start_sandbox(60, seed=51)
    config = folder / "config.toml"
    config.write_text(box.config_toml(state_url=f"sqlite:///{folder / 'state.sqlite'}"), encoding="utf-8")
    config.chmod(0o600)
    yield box, config
    box.stop()


def cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    head = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "jobs", *head, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": str(WIDTH)},
    )


def too_long(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if len(line) > WIDTH]


def test_every_command_fits_80_columns(site):
    box, config = site
    user = next(u for u in box.webitel_app.all_users() if u["extension"])
    lic = next(
        l
        for l in box.webitel_app.licenses()
        if not l["competitive"] and l["remain"] > 2 and l["id"] not in (box.data.notes["expired_license"],)
    )
    runs = [
        cli("--help"),
        *[cli(name, "--help") for name in COMMANDS],
        cli("run", "--dry-run", config=config),
        cli("run", config=config),
        cli("run", config=config),
        cli("check", config=config),
        cli("check", "--offline", config=config),
        cli("licenses", config=config),
        cli("licenses", "--users", config=config),
        cli("licenses", "--search", lic["product"], config=config),
        cli("license", "assign", user["username"], lic["id"][:8], config=config),
        cli("license", "revoke", user["username"], lic["id"][:8], config=config),
        cli("license", "assign", user["username"], box.data.notes["expired_license"], config=config),
        cli("license-upload", "--file", "/nonexistent/key.txt", config=config),
        cli("history", config=config),
        cli("history", "--object", user["username"], config=config),
        cli("demo", "--users", "40"),
    ]
    run_id = json.loads(cli("history", "--json", config=config).stdout)[0]["run_id"]
    runs.append(cli("history", run_id[:8], config=config))
    assert all("Traceback" not in r.stderr for r in runs), [r.stderr for r in runs if "Traceback" in r.stderr]
    long = {" ".join(r.args[3:]): too_long(r) for r in runs if too_long(r)}
    assert not long, long
    # The full values are still there for a program: --json is never cut.
    rows = json.loads(cli("licenses", "--json", config=config).stdout)
    assert any(r["id"] == lic["id"] for r in rows)
