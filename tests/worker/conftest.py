"""Fixtures for the scheduled worker: the sandbox, configs in memory and on disk, worker processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers module (workerkit.py) imports by its plain name, as tests/unit/planfakes.py does.
sys.path.insert(0, str(Path(__file__).parent))

from jobs.config import load_config  # noqa: E402
from workerkit import WorkerProcess, config_data, toml_text  # noqa: E402


@pytest.fixture
def sandbox_defaults() -> dict:
    return {"users": 30, "seed": 5}


@pytest.fixture
def make_config(tmp_path):
    """An ``AppConfig`` for a sandbox; only the users job is scheduled unless a test says otherwise."""
    def make(box, **sections):
        sections.setdefault("schedule", {}).setdefault("licenses", {"every_minutes": 600})
        return load_config(data=config_data(box, f"sqlite:///{tmp_path / 'state.sqlite'}", **sections))

    return make


@pytest.fixture
def config_file(tmp_path):
    """Write a config file for a sandbox; returns its path (the state file is shared per test)."""
    def write(box, name: str = "config.toml", **sections) -> Path:
        sections.setdefault("schedule", {}).setdefault("licenses", {"every_minutes": 600})
        path = tmp_path / name
        path.write_text(toml_text(config_data(box, f"sqlite:///{tmp_path / 'state.sqlite'}", **sections)),
                        encoding="utf-8")
        # As a deployment keeps it: a file others can read is warned about, outside any run's lines.
        path.chmod(0o600)
        return path

    return write


@pytest.fixture
def spawn(tmp_path):
    started: list[WorkerProcess] = []

    def start(config: Path, name: str = "worker", *options: str) -> WorkerProcess:
        worker = WorkerProcess(config, tmp_path / f"{name}.log", *options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
