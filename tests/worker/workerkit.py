"""Helpers for the worker tests: configs as TOML, worker subprocesses and threads, polling."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOW_MS = 1_790_000_000_000  # the sandbox's frozen "today" for the licence catalog
EVERY_SECOND = 1 / 60  # every_minutes for a one-second interval


def config_data(box, state_url: str, **sections: dict) -> dict:
    """The sandbox's config with fast retries, merged with ``sections`` (nested tables allowed)."""
    data = box.config(state_url=state_url)
    data["retry"] = {"base_wait_s": 0.01, "max_wait_s": 0.05, "max_attempts": 2, "total_s": 5}
    for section, values in sections.items():
        merged = data.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    return data


def toml_text(data: dict, prefix: str = "") -> str:
    """Render nested tables of scalars as TOML (enough for a config)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    text = (f"[{prefix}]\n" if prefix and lines else "") + "".join(line + "\n" for line in lines)
    for key, value in tables:
        text += "\n" + toml_text(value, f"{prefix}.{key}" if prefix else key)
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerProcess:
    """``python -m jobs --log-format json [OPTIONS] --config FILE serve`` in a subprocess.

    Its stderr goes to a file that tests poll.
    """

    def __init__(self, config: Path, log: Path, *options: str) -> None:
        self.log = log
        self._err = open(log, "w", encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "jobs", "--log-format", "json", *options, "--config", str(config),
                   "serve"]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._err, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        """True while the process runs; fails the test, showing its log, if it ended early."""
        if self.proc.poll() is not None:
            tail = self.log.read_text(encoding="utf-8")[-3000:]
            pytest.fail(f"the worker exited early with code {self.proc.returncode}:\n{tail}")
        return True

    def lines(self) -> list[dict]:
        """Every log line so far, parsed (each must be JSON)."""
        text = self.log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._err.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._err.close()


def wait_for(condition: Callable[[], Any], *, timeout: float = 30, interval: float = 0.05,
             what: str = "") -> Any:
    """Poll ``condition`` until it returns something true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(interval)


@contextlib.contextmanager
def worker_thread(worker):
    """Run a ``jobs.serve.Worker`` on a thread; stop it and check its exit code on leaving."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", worker.run()), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(60)
    assert not thread.is_alive(), "the worker did not stop"
    assert result.get("code") == 0
