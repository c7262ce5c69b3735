"""Unreachable servers are named (refused, DNS) and fail fast, for `check` and `run` alike."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import exit_codes

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:  # bound and closed again: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp_path, host: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[webitel]\nurl = "http://{host}/api"\ntoken = "t0ken-0123456789"\n'
                    f'[creatio]\nurl = "http://{host}"\nusername = "u"\npassword = "p4ssword-0123"\n'
                    f'[state]\nurl = "sqlite:///{tmp_path / "state.sqlite"}"\n', encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("command", [["check"], ["run"]])
def test_a_closed_port_fails_fast_and_says_refused(tmp_path, command):
    path = config(tmp_path, f"127.0.0.1:{closed_port()}")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "jobs", "--config", str(path), *command], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == exit_codes.FAILED
    assert "connection refused" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert took < 15, took


def test_an_unknown_host_says_dns(tmp_path):
    path = config(tmp_path, "no-such-host.invalid")
    result = subprocess.run([sys.executable, "-m", "jobs", "--config", str(path), "run"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == exit_codes.FAILED and "not found (DNS)" in result.stderr
