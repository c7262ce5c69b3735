"""Every run is recorded as it ended: interrupted, killed, failed or refused, with the real counts.

The product runs as a real process (``python -m jobs``) against the sandbox over loopback HTTP,
with a real SQLite state file; signals are real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import exit_codes
from jobs.state import StateStore
from sandbox.faults import Faults

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs", "--config", str(config), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def wait_for_writes(state: Path, proc: subprocess.Popen, at_least: int = 30) -> None:
    """Until the running run has recorded ``at_least`` landed events."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if state.exists():
            with StateStore.open(f"sqlite:///{state}") as store:
                runs = store.recent_runs(1)
                if (
                    runs
                    and runs[0].outcome == "running"
                    and len(store.run_events(runs[0].run_id)) >= at_least
                ):
                    return
        time.sleep(0.05)
    raise AssertionError("the run never wrote")


@pytest.fixture
def slow_box(make_sandbox, tmp_path):
    """A sandbox whose Creatio writes are slow ($batch of 10 at 120 ms), so a run can be stopped mid-way."""
    box = make_sandbox(300, seed=41, faults_creatio=Faults(latency_ms=120, only_methods=("POST",)))
    state = tmp_path / "state.sqlite"
    config = tmp_path / "config.toml"
    text = box.config_toml(state_url=f"sqlite:///{state}")
    config.write_text(text.replace("[creatio]\n", "[creatio]\nbatch_size = 10\n", 1), encoding="utf-8")
    return box, config, state


def test_sigint_mid_run_is_recorded_as_interrupted_with_real_counts(slow_box):
    box, config, state = slow_box
    proc = start(config, "run", "--job", "users")
    wait_for_writes(state, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_codes.INTERRUPTED, err
    with StateStore.open(f"sqlite:///{state}") as store:
        (run,) = store.recent_runs(1)
        events = [e for e in store.run_events(run.run_id) if e.outcome in ("applied", "already_existed")]
    assert run.outcome == "interrupted"
    assert f"run {run.run_id}" in err and "re-run to continue" in err
    assert 0 < run.counts["applied"] < run.counts["planned"]
    written = sum(1 for e in events if e.action != "link_record")
    assert run.counts["applied"] == written
    history = json.loads(cli(config, "history", "--json").stdout)
    assert history[0]["outcome"] == "interrupted"
    # A re-run continues where it stopped and converges.
    assert cli(config, "run", "--job", "users").returncode in (exit_codes.OK, exit_codes.CONFLICTS)
    again = json.loads(cli(config, "run", "--job", "users", "--json").stdout)
    assert again["actions"] == []


def test_a_killed_run_is_marked_interrupted_by_history_and_the_next_run(slow_box):
    box, config, state = slow_box
    proc = start(config, "run", "--job", "users")
    wait_for_writes(state, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    shown = cli(config, "history")
    assert shown.returncode == 0 and "marked interrupted" in shown.stdout
    (killed,) = json.loads(cli(config, "history", "--json").stdout)[:1]
    assert killed["outcome"] == "interrupted" and killed["counts"]["applied"] > 0
    assert "ended before it finished" in killed["failure"]
    assert cli(config, "run", "--job", "users").returncode in (exit_codes.OK, exit_codes.CONFLICTS)


def test_a_failed_run_says_why_in_run_json_and_in_history(make_sandbox, tmp_path):
    box = make_sandbox(20, seed=42)
    state, config = tmp_path / "state.sqlite", tmp_path / "config.toml"
    text = box.config_toml(state_url=f"sqlite:///{state}")
    config.write_text(
        text.replace(box.data.credentials.creatio_password, "wrong-password-123"), encoding="utf-8"
    )
    result = cli(config, "run", "--json")
    assert result.returncode == exit_codes.FAILED
    report = json.loads(result.stdout)
    assert report["outcome"] == "failed" and report["failure"] and report["run_id"]
    (run,) = json.loads(cli(config, "history", "--json").stdout)[:1]
    assert run["run_id"] == report["run_id"] and run["outcome"] == "failed"
    assert run["failure"] == report["failure"]
    assert "wrong-password-123" not in result.stdout + result.stderr
    assert "reason:" in cli(config, "history").stdout


def test_history_needs_only_the_state_store_and_sees_the_same_runs_from_any_folder(make_sandbox, tmp_path):
    box = make_sandbox(20, seed=43)
    folder = tmp_path / "site"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(box.config_toml(state_url="sqlite:///state/state.sqlite"), encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(config), "run", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run_ids = set(json.loads(ran.stdout)["run_ids"].values())
    assert (folder / "state" / "state.sqlite").exists()
    # Credentials gone: history reads the state store alone, from another folder.
    only_state = folder / "state-only.toml"
    only_state.write_text('[state]\nurl = "sqlite:///state/state.sqlite"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = subprocess.run(
        [sys.executable, "-m", "jobs", "history", "--json", "--config", str(only_state)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert run_ids <= {r["run_id"] for r in json.loads(shown.stdout)}
    assert not (elsewhere / "state").exists()


def test_history_object_takes_a_username_or_an_id(make_sandbox, tmp_path):
    box = make_sandbox(20, seed=44)
    config = tmp_path / "config.toml"
    config.write_text(box.config_toml(state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"), encoding="utf-8")
    assert cli(config, "run").returncode in (exit_codes.OK, exit_codes.CONFLICTS)
    user = next(u for u in box.webitel_app.all_users() if u["extension"])
    by_name = json.loads(cli(config, "history", "--object", user["username"], "--json").stdout)
    by_id = json.loads(cli(config, "history", "--object", str(user["id"]), "--json").stdout)
    assert by_name == by_id and by_name
    keys = {row["event"]["key"] for row in by_name}
    assert f"webitel_user:{user['id']}" in keys and any(k.startswith("grant:") for k in keys)
