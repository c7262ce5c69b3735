"""End-to-end fixtures: the sandbox servers over real loopback HTTP, a real SQLite state file."""

from __future__ import annotations

import pytest

from jobs.config import load_config
from sandbox.harness import start_sandbox

NOW_MS = 1_790_000_000_000  # 2026-09-21: a fixed "today" for the licence catalog


@pytest.fixture
def make_sandbox():
    started = []

    def make(users: int = 120, seed: int = 3, **kw):
        box = start_sandbox(users, seed=seed, now_ms=NOW_MS, **kw)
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


@pytest.fixture
def make_config(tmp_path):
    def make(box, *, state: str = "state.sqlite", **sections):
        data = box.config(state_url=f"sqlite:///{tmp_path / state}")
        data["retry"] = {"base_wait_s": 0.01, "max_wait_s": 0.05, "max_attempts": 8}
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        return load_config(data=data)

    return make
