"""End-to-end fixtures: the sandbox servers over real loopback HTTP, a real SQLite state file."""

from __future__ import annotations

import pytest

from jobs.config import load_config

@pytest.fixture
def make_config(tmp_path):
    def make(box, *, state: str = "state.sqlite", **sections):
        data = box.config(state_url=f"sqlite:///{tmp_path / state}")
        data["retry"] = {"base_wait_s": 0.01, "max_wait_s": 0.05, "max_attempts": 8}
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        return load_config(data=data)

    return make
