"""Fixtures shared by every test folder: sandbox servers started on demand and stopped after."""

import os
import sys
import time
from pathlib import Path

import pytest

# Test helper modules (tests/unit/planfakes.py, tests/pgtest.py) import by their plain names.
sys.path.insert(0, str(Path(__file__).parent / "unit"))
sys.path.insert(0, str(Path(__file__).parent))

# The sandbox's "today": the real one, because the product judges licence validity by the real
# clock. The data stays reproducible relative to it (same seed, same data).
NOW_MS = int(time.time() * 1000)


@pytest.fixture
def sandbox_defaults() -> dict:
    """Users and seed of ``make_sandbox`` when a test gives none (a folder's conftest may override)."""
    return {"users": 120, "seed": 3}


@pytest.fixture
def make_sandbox(sandbox_defaults):
    """Start sandboxes (both servers over loopback) for a test; all are stopped after it."""
    started = []

    def make(users: int | None = None, seed: int | None = None, **kw):
        box = start_sandbox(sandbox_defaults["users"] if users is None else users,
                            seed=sandbox_defaults["seed"] if seed is None else seed, now_ms=NOW_MS, **kw)
        started.append(box)
        return box

    from sandbox.harness import start_sandbox

    yield make
    for box in started:
        box.stop()


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Commands run by tests write to pipes: no COLUMNS, so no wrapping, unless a test sets its own
    width. (Something in the test process puts COLUMNS=80 and LINES=24 into the C-level environment
    that children inherit, past ``os.environ``: hence ``unsetenv`` as well.)"""
    for name in ("COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
        os.unsetenv(name)
