"""The command line against the sandbox: real processes, real HTTP, real SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from jobs import exit_codes
from jobs.cli import main

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def config_file(make_sandbox, tmp_path):
    box = make_sandbox(60, seed=4)
    path = tmp_path / "config.toml"
    path.write_text(box.config_toml(state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"), encoding="utf-8")
    return box, path


def test_dry_run_json_writes_nothing_then_run_and_history(config_file):
    box, path = config_file
    dry = cli("--config", str(path), "run", "--dry-run", "--json")
    assert dry.returncode == exit_codes.CONFLICTS, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True and report["counts"]["create_record"] > 0
    assert {"run_id", "counts", "actions", "conflicts", "errors"} <= report.keys()
    conflict = report["conflicts"][0]
    assert conflict["username"] and conflict["webitel_id"] and conflict["field"]
    assert box.creatio.stats.writes == 0
    real = cli("--config", str(path), "run", "--json")
    assert real.returncode == exit_codes.CONFLICTS, real.stderr
    done = json.loads(real.stdout)
    assert done["counts"]["applied"] == sum(1 for a in done["actions"] if a["outcome"] == "applied") > 0
    history = cli("--config", str(path), "history", "--json")
    runs = json.loads(history.stdout)
    by_id = {r["run_id"]: r for r in runs}
    assert set(done["run_ids"].values()) | set(report["run_ids"].values()) <= by_id.keys()
    assert by_id[done["run_ids"]["users"]]["outcome"] == "conflicts"
    assert (
        by_id[report["run_ids"]["users"]]["dry_run"] is True
        and by_id[report["run_ids"]["licenses"]]["job"] == "licenses"
    )
    one = json.loads(cli("--config", str(path), "history", done["run_ids"]["users"][:8], "--json").stdout)
    created = [e for e in one["events"] if e["action"] == "create_record"]
    assert created and created[0]["outcome"] == "applied" and created[0]["new"]["webitel_id"]
    key = created[0]["key"]
    trail = cli("--config", str(path), "history", "--object", key)
    assert "create_record applied" in trail.stdout
    text = cli("--config", str(path), "history")
    assert done["run_ids"]["licenses"][:8] in text.stdout and "conflicts" in text.stdout


def test_check_reaches_both_systems_and_names_missing_columns(config_file, tmp_path):
    box, path = config_file
    ok = cli("--config", str(path), "check")
    assert ok.returncode == exit_codes.OK, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout and "all objects and columns present" in ok.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text(
        path.read_text() + '\n[creatio.objects.webitel_user]\nextension = "UsrExtension"\n'
        '[creatio.objects.webitel_license]\nentity = "UsrLicense"\n',
        encoding="utf-8",
    )
    bad = cli("--config", str(broken), "check")
    assert bad.returncode == exit_codes.FAILED
    assert "WebitelUser.UsrExtension" in bad.stdout and "UsrLicense" in bad.stdout


def test_check_wrong_password_is_exit_1_without_the_secret(config_file):
    box, path = config_file
    env = {"WCSYNC_CREATIO__PASSWORD": "wrong-password-123456"}
    result = cli("--config", str(path), "check", env=env)
    assert result.returncode == exit_codes.FAILED
    assert "FAIL" in result.stdout and "wrong-password-123456" not in result.stdout + result.stderr


def test_bad_config_is_exit_2_naming_file_and_key(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[webitel]\nurl = "nohost"\ntoken = "t-0123456789"\n[creatio]\nurl = "https://c"\n'
        'username = "u"\npassword = "p-0123456789"\n',
        encoding="utf-8",
    )
    result = cli("--config", str(path), "run")
    assert result.returncode == exit_codes.USAGE
    assert str(path) in result.stderr and "webitel.url" in result.stderr


def test_unreachable_system_is_exit_1(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[webitel]\nurl = "http://127.0.0.1:9/api"\ntoken = "t-0123456789"\n[retry]\nmax_attempts = 1\n'
        '[creatio]\nurl = "http://127.0.0.1:9"\nusername = "u"\npassword = "p-0123456789"\n'
        f'[state]\nurl = "sqlite:///{tmp_path / "s.sqlite"}"\n',
        encoding="utf-8",
    )
    result = cli("--config", str(path), "run")
    assert result.returncode == exit_codes.FAILED and "connection refused" in result.stderr


def test_usage_errors_are_exit_2():
    assert main(["frobnicate"]) == exit_codes.USAGE
    assert main([]) == exit_codes.USAGE


def test_demo_runs_the_import_and_explains(tmp_path):
    result = cli("demo", "--users", "80", timeout=180)
    assert result.returncode == exit_codes.OK, result.stderr
    out = result.stdout
    assert "users: conflicts" in out and "ambiguous_match" in out and "duplicate_extension" in out
    assert "no_extension" in out and "What you are looking at" in out


def test_sandbox_command_serves_and_writes_a_config(tmp_path):
    out_path = tmp_path / "sandbox.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs", "sandbox", "--users", "20", "--config-out", str(out_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not out_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        config = tomllib.loads(out_path.read_text())
        assert config["webitel"]["url"].startswith("http://127.0.0.1:") and config["creatio"]["username"]
        check = cli("--config", str(out_path), "check")
        assert check.returncode == exit_codes.OK, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_a_second_run_while_one_is_active_is_refused(config_file, tmp_path):
    from jobs.state import StateStore

    box, path = config_file
    with StateStore.open(f"sqlite:///{tmp_path / 'state.sqlite'}") as store:
        lock = store.lock("sync", holder="someone-else:1:test", lease_s=600)
        assert lock.acquire()
        result = cli("--config", str(path), "run")
        lock.release()
    assert result.returncode == exit_codes.FAILED
    assert "another run is in progress" in result.stderr and "someone-else" in result.stderr
    assert box.creatio.stats.writes == 0
