"""Which run the open conflicts come from: the latest cycle's, not a one-grant command's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from jobs.state import StateStore
from jobs.sync.resolutions import earlier_conflicts, open_conflicts

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
CLASH = {"kind": "license_expired", "message": "expired", "user": "ann (id 1)", "webitel_id": 1}


def finished(store, minutes: int, report: dict) -> None:
    run_id = store.start_run("licenses", dry_run=False, now=T0 + timedelta(minutes=minutes))
    store.finish_run(run_id, outcome="conflicts" if report.get("conflicts") else "in_sync",
                     now=T0 + timedelta(minutes=minutes, seconds=5), counts={},
                     conflicts=len(report.get("conflicts", [])), errors=0, report=report)


def test_a_license_command_after_a_cycle_leaves_the_cycles_conflicts_open(tmp_path):
    with StateStore.open(tmp_path / "state.sqlite") as store:
        finished(store, 0, {"mode": "full", "conflicts": [CLASH]})
        finished(store, 1, {"command": "license assign", "conflicts": []})
        assert [c["webitel_id"] for c in open_conflicts(store) if c["job"] == "licenses"] == [1]
        assert [c.webitel_id for c in earlier_conflicts(store, "licenses")] == [1]
        finished(store, 2, {"mode": "incremental", "conflicts": []})  # a cycle that saw it resolved
        assert open_conflicts(store) == [] and earlier_conflicts(store, "licenses") == []
