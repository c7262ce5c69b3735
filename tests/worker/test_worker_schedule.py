"""The timetable, backoff and health rules as pure functions: explicit times, no scheduler, no servers."""

from __future__ import annotations

import datetime as dt

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.errors import ConfigError
from jobs.config import JobSchedule, load_config
from jobs.state import RunRecord
from jobs.worker.schedule import SYNC_JOBS, crontab_weekdays, interval_s, job_id, make_trigger, make_triggers
from jobs.worker.status import STARTED_BY, WORKER, BackoffPolicy, health, job_status

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
BASE = {"webitel": {"url": "https://w.example/api", "token": "t0ken-value-1"},
        "creatio": {"url": "https://c.example", "username": "u", "password": "p4ssword-value"}}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def run(job: str, outcome: str, start_min: float, *, dry_run: bool = False, failure: str = "",
        by_hand: bool = False) -> RunRecord:
    """A run in the history: started by the worker (marked as such) unless ``by_hand``."""
    report = {"failure": failure} if failure else {}
    if not by_hand:
        report[STARTED_BY] = WORKER
    return RunRecord(run_id=f"{job}-{start_min}", job=job, dry_run=dry_run, started_at=at(start_min),
                     finished_at=None if outcome == "running" else at(start_min + 1), outcome=outcome,
                     report=None if outcome == "running" else report)


# --- triggers ------------------------------------------------------------------------------------

def test_interval_trigger_fires_every_n_minutes():
    trigger = make_trigger(JobSchedule(every_minutes=15), timezone=UTC, name="users")
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.get_next_fire_time(at(0), at(0)) == at(15)
    assert interval_s(trigger, T0) == 900


@pytest.mark.parametrize("field, expected", [
    ("*", "*"),
    ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"), ("0,6", "sun,sat"),
    ("*/2", "sun,tue,thu,sat"), ("mon-fri", "mon-fri"), ("1,sat", "mon,sat"),
])
def test_crontab_weekday_numbers_mean_what_cron_means(field, expected):
    assert crontab_weekdays(field) == expected


def test_cron_sunday_is_sunday_not_monday():
    # APScheduler 3.x alone would read "0" as Monday (its issue 286).
    trigger = make_trigger(JobSchedule(cron="30 2 * * 0"), timezone=UTC, name="users")
    fire = trigger.get_next_fire_time(None, T0)
    assert fire == dt.datetime(2026, 3, 8, 2, 30, tzinfo=UTC) and fire.strftime("%a") == "Sun"


def test_cron_interval_is_the_gap_between_the_last_two_fire_times():
    every_quarter = make_trigger(JobSchedule(cron="*/15 * * * *"), timezone=UTC, name="users")
    assert interval_s(every_quarter, at(7)) == 900
    # Twice a day at uneven hours: the gap that just passed decides.
    uneven = make_trigger(JobSchedule(cron="0 6,9 * * *"), timezone=UTC, name="users")
    assert interval_s(uneven, dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)) == 3 * 3600
    assert interval_s(uneven, dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC)) == 21 * 3600
    weekly = make_trigger(JobSchedule(cron="0 3 * * 1"), timezone=UTC, name="users")
    assert interval_s(weekly, T0) == 7 * 86400
    yearly = make_trigger(JobSchedule(cron="0 0 1 1 *"), timezone=UTC, name="users")
    assert interval_s(yearly, T0) == 365 * 86400  # 2026-01-01 -> 2027-01-01, looked up ahead


@pytest.mark.parametrize("cron, message", [("* * * *", "five fields"), ("0 3 * * 9", "0-7")])
def test_unusable_cron_is_a_config_error(cron, message):
    with pytest.raises(ConfigError, match=message):
        make_trigger(JobSchedule.model_construct(every_minutes=None, cron=cron), timezone=UTC, name="users")


@pytest.mark.parametrize("table, message", [
    ({"every_minutes": 5, "cron": "* * * * *"}, "exactly one of every_minutes and cron"),
    ({}, "exactly one of every_minutes and cron"),
    ({"cron": "61 * * * *"}, "not a valid cron expression"),
])
def test_schedule_tables_are_checked_when_the_config_loads(table, message):
    with pytest.raises(ConfigError, match=message):
        load_config(data={**BASE, "schedule": {"users": table}})


def test_schedule_timezone_and_backoff_keys():
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_config(data={**BASE, "schedule": {"timezone": "Mars/Olympus"}})
    config = load_config(data={**BASE, "serve": {"stop_timeout_s": 5},
                               "schedule": {"timezone": "Europe/Kyiv", "users": {"cron": "0 3 * * *"}}})
    triggers = make_triggers(config)
    assert set(triggers) == set(SYNC_JOBS) and job_id("users") == "sync-users"
    assert isinstance(triggers["users"], CronTrigger) and str(triggers["users"].timezone) == "Europe/Kyiv"
    assert config.schedule.backoff_after_failures == 3 and config.schedule.max_backoff_minutes == 60
    assert config.serve.stop_timeout_s == 5 and config.serve.lock_lease_s == 120


# --- backoff -------------------------------------------------------------------------------------

@pytest.mark.parametrize("failures, delay", [(0, 0), (2, 0), (3, 1800), (4, 3600), (5, 3600), (40, 3600)])
def test_backoff_doubles_the_interval_up_to_the_cap(failures, delay):
    assert BackoffPolicy(after_failures=3, max_s=3600).delay_s(failures, 900) == delay


def test_status_counts_failures_since_the_last_success_passing_over_interruptions():
    runs = [run("users", "running", 60), run("users", "failed", 45, failure="webitel: 503"),
            run("users", "interrupted", 40), run("licenses", "failed", 35),
            run("users", "planned", 33, dry_run=True),
            run("users", "guard_tripped", 30), run("users", "failed", 15), run("users", "conflicts", 0),
            run("users", "failed", -15)]
    status = job_status("users", runs, interval_s=900, policy=BackoffPolicy(after_failures=3, max_s=3600))
    assert status.consecutive_failures == 3 and status.last_outcome == "failed"
    assert status.last_error == "webitel: 503" and status.running_since == at(60)
    assert status.last_success_at == at(1) and status.last_run_at == at(45)
    # Backoff from the start of the latest failure: 2 intervals after the third failure.
    assert status.backoff_s == 1800 and status.backoff_until == at(75)
    assert status.in_backoff(at(74)) and not status.in_backoff(at(75))


def test_a_success_resets_the_backoff():
    runs = [run("users", "in_sync", 60)] + [run("users", "failed", m) for m in (45, 30, 15)]
    status = job_status("users", runs, interval_s=900, policy=BackoffPolicy(after_failures=1))
    assert status.consecutive_failures == 0 and status.backoff_until is None and not status.in_backoff(at(61))


def test_failures_of_runs_started_by_hand_do_not_count():
    # Five failed `run`s while someone fixes a password: the worker's first run is on schedule.
    runs = [run("users", "failed", m, by_hand=True, failure="creatio: 401") for m in (50, 40, 30, 20, 10)]
    status = job_status("users", runs, interval_s=900, policy=BackoffPolicy(after_failures=1))
    assert status.consecutive_failures == 0 and status.backoff_until is None and status.last_outcome is None
    assert status.latest is runs[0]
    # Between the worker's own failures they neither count nor break the streak.
    runs = [run("users", "failed", 60, by_hand=True), run("users", "failed", 45, failure="webitel: 503"),
            run("users", "refused", 40, by_hand=True), run("users", "failed", 30),
            run("users", "in_sync", 0)]
    status = job_status("users", runs, interval_s=900, policy=BackoffPolicy(after_failures=2, max_s=3600))
    assert status.consecutive_failures == 2 and status.last_outcome == "failed"
    assert status.last_error == "webitel: 503" and status.last_run_at == at(45)
    assert status.backoff_s == 1800 and status.backoff_until == at(75)


def test_a_success_by_hand_ends_the_workers_failing_streak():
    runs = [run("users", "conflicts", 60, by_hand=True)] + [run("users", "failed", m) for m in (45, 30, 15)]
    status = job_status("users", runs, interval_s=900, policy=BackoffPolicy(after_failures=1))
    assert status.consecutive_failures == 0 and status.backoff_until is None
    assert status.last_outcome == "conflicts" and status.last_success_at == at(61)


def test_a_refused_run_of_the_worker_counts_with_the_caps_message():
    refused = run("users", "refused", 15)
    refused.report["refused"] = {"kind": "deactivation_cap", "message": "40 deactivations over the cap"}
    status = job_status("users", [refused], interval_s=900, policy=BackoffPolicy(after_failures=1))
    assert status.consecutive_failures == 1 and status.last_error == "40 deactivations over the cap"


# --- health --------------------------------------------------------------------------------------

POLICY = BackoffPolicy(after_failures=2, max_s=3600)


def judge(runs, now, *, started=T0 - dt.timedelta(minutes=600)):
    status = job_status("users", runs, interval_s=900, policy=POLICY)
    return health(status, now=now, interval_s=900, worker_started_at=started, next_attempt=at(90))


def test_healthy_after_a_recent_success_or_conflicts():
    for outcome in ("in_sync", "conflicts"):
        ok, body = judge([run("users", outcome, 0)], at(30))
        assert ok and body["last_outcome"] == outcome and body["next_attempt"] == at(90).isoformat()


def test_unhealthy_when_the_last_success_is_older_than_twice_the_interval():
    ok, body = judge([run("users", "in_sync", 0)], at(32))  # finished at 1, window 30 minutes
    assert not ok and "more than twice the interval (30 min)" in body["reason"]


def test_unhealthy_after_a_failure_with_the_reason_and_backoff():
    ok, body = judge([run("users", "failed", 15, failure="creatio: 401"), run("users", "failed", 0),
                      run("users", "in_sync", -15)], at(17))
    assert not ok and body["reason"] == "the last run ended failed: creatio: 401"
    assert body["consecutive_failures"] == 2 and body["backoff_s"] == 1800
    assert body["backoff_until"] == at(45).isoformat() and body["last_error"] == "creatio: 401"


def test_a_fresh_worker_gets_one_window_for_its_first_run():
    ok, body = judge([], at(10), started=at(0))
    assert ok and body["reason"] == "waiting for the first run"
    ok, body = judge([], at(31), started=at(0))
    assert not ok and "no run has succeeded yet" in body["reason"]
    # An old success from before a restart does not make a just-started worker unhealthy.
    ok, _ = judge([run("users", "in_sync", -600)], at(10), started=at(0))
    assert ok


def test_a_failure_by_hand_alone_leaves_the_worker_healthy_and_shows_as_the_last_run():
    ok, body = judge([run("users", "failed", 20, by_hand=True, failure="creatio: 401"),
                      run("users", "in_sync", 0)], at(25))
    assert ok and body["last_outcome"] == "in_sync" and body["consecutive_failures"] == 0
    assert body["reason"] == ("the last run ended in_sync; a later run started by hand ended failed, "
                              "which does not count here")
    assert body["last_run"] == {"run_id": "users-20", "started_at": at(20).isoformat(), "outcome": "failed",
                                "manual": True, "error": "creatio: 401"}
    # The worker's own run is the last run too when nothing came after it.
    ok, body = judge([run("users", "conflicts", 0)], at(5))
    assert ok and body["last_run"]["manual"] is False and body["last_run"]["outcome"] == "conflicts"
    # A run whose process died before recording its end cannot say who started it.
    dead = RunRecord(run_id="d", job="users", dry_run=False, started_at=at(10), finished_at=at(12),
                     outcome="interrupted")
    ok, body = judge([dead, run("users", "in_sync", 0)], at(15))
    assert ok and body["last_run"]["manual"] is None and body["last_run"]["outcome"] == "interrupted"
