"""A daily Creatio request budget: requests are counted per UTC day, and a run whose plan would
need more than is left stops before writing and says how many it needed and how many are left."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from e2ekit import run_job
from jobs import exit_codes
from jobs.state import StateStore

pytestmark = pytest.mark.e2e


def test_a_run_over_the_budget_stops_before_writing(make_sandbox, make_config):
    box = make_sandbox(120, seed=81)
    config = make_config(box, creatio={"daily_request_budget": 12, "batch_size": 20})
    box.creatio.stats.reset()
    records = len(box.creatio_app.rows("WebitelUser"))
    report = run_job(config)
    assert report.outcome == "refused" and report.exit_code() == exit_codes.FAILED
    guard = report.plan.guard
    assert guard.kind == "request_budget" and "are left of today's budget of 12" in guard.message
    assert box.creatio.stats.writes == 0 and len(box.creatio_app.rows("WebitelUser")) == records
    with StateStore.open(config.state.url) as store:
        used = store.requests_on("creatio", datetime.now(timezone.utc).date())
    assert used == report.details["requests"]["creatio"] > 0  # the reads were counted
    # With room, the same run goes through; the day's count grows by what it made.
    roomy = make_config(box, creatio={"daily_request_budget": 10_000})
    done = run_job(roomy)
    assert done.outcome in ("in_sync", "conflicts") and len(box.creatio_app.rows("WebitelUser")) > records
    with StateStore.open(config.state.url) as store:
        assert store.requests_on("creatio", datetime.now(timezone.utc).date()) == \
            used + done.details["requests"]["creatio"]


def test_check_shows_the_days_requests_and_the_budget(make_sandbox, make_config, capsys):
    from jobs.commands.check import probe_state

    box = make_sandbox(20, seed=82)
    config = make_config(box, creatio={"daily_request_budget": 5000})
    report = run_job(config)
    line = probe_state(config)
    assert f"{report.details['requests']['creatio']} Creatio requests today (UTC) of a budget of 5000" in line
