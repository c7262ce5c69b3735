"""Every way a state store can be unusable is one line saying what to do, in every command."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from connector.errors import StateError, StateSchemaError
from jobs import exit_codes
from jobs.state import StateStore, schema

ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "state-only.toml"
    config.write_text(f'[state]\nurl = "{url}"\n', encoding="utf-8")
    config.chmod(0o600)
    # No COLUMNS (pytest sets one): output to a pipe is one line per message.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "jobs", "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)


def one_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_damaged_file(tmp_path):
    bad = tmp_path / "state.sqlite"
    bad.write_bytes(b"this is not a database, only some text " * 50)
    with pytest.raises(StateError, match="not a SQLite database"):
        StateStore.open(f"sqlite:///{bad}")
    result = cli(tmp_path, f"sqlite:///{bad}", "history")
    assert result.returncode == exit_codes.FAILED and "move it away" in one_line(result)


def test_a_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(tmp_path, f"sqlite:///{blocker}/sub/state.sqlite", "history")
    assert result.returncode == exit_codes.FAILED and "cannot be created" in one_line(result)


def test_a_missing_driver_names_the_package(tmp_path):
    pytest.importorskip("sqlalchemy")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        result = cli(tmp_path, "postgresql+psycopg://u@127.0.0.1:1/db", "history")
        assert "pip install 'psycopg[binary]'" in one_line(result)
    else:
        pytest.skip("psycopg is installed here")


def test_a_read_only_store(tmp_path):
    path = tmp_path / "state.sqlite"
    StateStore.open(f"sqlite:///{path}").close()
    store = StateStore.open(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StateError, match="read-only"):
        store.set_value(
            "x", "y", now=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)
        )
    store.close()


def test_a_locked_store(tmp_path, monkeypatch):
    path = tmp_path / "state.sqlite"
    StateStore.open(f"sqlite:///{path}").close()
    monkeypatch.setattr(schema, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateError, match="locked by another process"):
            StateStore.open(f"sqlite:///{path}")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_newer_schema_is_one_line(tmp_path):
    path = tmp_path / "state.sqlite"
    StateStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version, applied_at) VALUES (999, '2030-01-01 00:00:00')")
    with pytest.raises(StateSchemaError):
        StateStore.open(f"sqlite:///{path}")
    result = cli(tmp_path, f"sqlite:///{path}", "history")
    assert result.returncode == exit_codes.FAILED and "newer" in one_line(result)


def test_check_offline_looks_at_the_state_store(tmp_path):
    bad = tmp_path / "state.sqlite"
    bad.write_bytes(b"garbage " * 100)
    config = tmp_path / "config.toml"
    config.write_text(
        '[webitel]\nurl = "https://w.example"\ntoken = "t0ken-0123456789"\n'
        '[creatio]\nurl = "https://c.example"\nusername = "u"\npassword = "p4ssword-0123"\n'
        f'[state]\nurl = "sqlite:///{bad}"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(config), "check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        result.returncode == exit_codes.FAILED and "FAIL" in result.stdout and "not a SQLite" in result.stdout
    )
