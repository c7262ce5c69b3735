"""The worker in this process (on a thread) against the sandbox: schedules in seconds, real HTTP.

Multi-process and signal behaviour is in test_worker_processes.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.config import load_config
from jobs.plan import Plan
from jobs.report import RunReport
from jobs.worker.service import Worker
from jobs.state import StateStore
from sandbox.faults import Faults
from workerkit import EVERY_SECOND, wait_for, worker_thread

pytestmark = pytest.mark.e2e


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def finished_runs(store, job: str = "users"):
    return sorted((r for r in store.recent_runs(100, job=job) if r.finished_at), key=lambda r: r.started_at)


def metric_samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_runs_fire_on_schedule_one_at_a_time(make_sandbox, make_config):
    # Each run takes longer than the one-second interval: the triggers that come due meanwhile are
    # skipped (max_instances=1), never stacked or run side by side.
    box = make_sandbox(40, faults_creatio=Faults(latency_ms=150))
    config = make_config(box, schedule={"users": {"every_minutes": EVERY_SECOND}})
    worker = Worker(config)
    with worker_thread(worker):
        wait_for(lambda: len(finished_runs(worker.store)) >= 2, timeout=60, what="two finished runs")
        skipped = worker.metrics.registry.get_sample_value("wcsync_skipped_runs_total",
                                                           {"job": "users", "reason": "still_running"})
    runs = finished_runs(worker.store)
    assert [r.outcome for r in runs[:2]] == ["conflicts", "conflicts"]  # created, then nothing to do
    assert runs[0].counts["applied"] > 0 and "applied" not in runs[1].counts
    for earlier, later in zip(runs, runs[1:]):
        assert later.started_at >= earlier.finished_at
    assert skipped and skipped >= 1
    assert worker.store.lock("sync").holder_info() is None


def test_health_turns_503_on_failures_with_backoff_and_200_after_a_success(make_sandbox, make_config):
    box = make_sandbox(25, faults_webitel=Faults(error_rate=1.0))
    config = make_config(box, schedule={"users": {"every_minutes": EVERY_SECOND}, "run_at_start": True,
                                        "backoff_after_failures": 1, "max_backoff_minutes": 2 / 60},
                         serve={"http_port": 0})
    worker = Worker(config)
    with worker_thread(worker):
        base = wait_for(lambda: worker.http and worker.http.url, what="the status server")
        wait_for(lambda: finished_runs(worker.store) and finished_runs(worker.store, "licenses"),
                 what="the first (failed) runs")
        status, text = get(base + "/healthz")
        body = json.loads(text)
        assert status == 503 and body["healthy"] is False
        users = body["jobs"]["users"]
        assert users["last_outcome"] == "failed" and users["consecutive_failures"] >= 1
        assert users["backoff_s"] == 2 and users["backoff_until"] and "-> 50" in users["last_error"]
        # run_at_start runs every job once, the hourly licences job included; it failed too.
        assert body["jobs"]["licenses"]["last_outcome"] == "failed"
        assert users["next_attempt"] is not None

        box.webitel.faults = Faults()
        wait_for(lambda: get(base + "/healthz")[0] == 200, timeout=30, what="healthy again")
        body = json.loads(get(base + "/healthz")[1])
        assert body["jobs"]["users"]["last_outcome"] == "conflicts"
        # The licences job, due again in ten hours, was retried after its backoff instead.
        assert body["jobs"]["licenses"]["last_outcome"] in ("in_sync", "conflicts")
        assert body["jobs"]["users"]["consecutive_failures"] == 0 and body["jobs"]["users"]["backoff_s"] == 0

        status, text = get(base + "/metrics")
        assert status == 200 and "wcsync_runs_total" in metric_samples(text).__repr__()
        assert get(base + "/nowhere")[0] == 404
    # Compared once the worker stopped, so that no run slips in between the two readings.
    samples = metric_samples(worker.metrics_payload()[1].decode())
    runs = finished_runs(worker.store)
    failed = sum(1 for r in runs if r.outcome == "failed")
    applying = [r for r in runs if r.counts.get("applied")]
    assert failed >= 1 and len(applying) == 1
    assert samples[("wcsync_runs_total", (("job", "users"), ("outcome", "failed")))] == failed
    assert samples[("wcsync_runs_total", (("job", "users"), ("outcome", "conflicts")))] >= 1
    # The actions counted are the applying run's own counts, kind by kind.
    written = {kind: n for kind, n in applying[0].counts.items()
               if kind not in ("applied", "failed", "planned", "conflicts", "warnings", "errors")}
    for kind, n in written.items():
        labels = (("job", "users"), ("kind", kind), ("result", "applied"))
        assert samples[("wcsync_actions_total", labels)] == n
    conflicts = sum(v for (name, labels), v in samples.items() if name == "wcsync_conflicts_total")
    assert conflicts == sum(r.conflicts for r in runs if r.outcome == "conflicts")
    webitel_errors = sum(v for (name, labels), v in samples.items()
                         if name == "wcsync_http_requests_total" and ("system", "webitel") in labels
                         and dict(labels)["status"].startswith("5"))
    assert webitel_errors >= 2 * failed  # two attempts per failed request (retry.max_attempts = 2)
    assert samples[("wcsync_http_requests_total", (("status", "200"), ("system", "creatio")))] > 0
    # The day's request count is the state store's (what the budget is checked against).
    today = worker.ctx.clock().date()
    today_creatio = samples[("wcsync_requests_today", (("system", "creatio"),))]
    assert today_creatio == worker.store.requests_on("creatio", today) and today_creatio > 0
    assert samples[("wcsync_consecutive_failures", (("job", "users"),))] == 0
    last = max(r.finished_at for r in runs if r.outcome == "conflicts")
    assert samples[("wcsync_last_success_timestamp_seconds", (("job", "users"),))] == last.timestamp()
    assert samples[("wcsync_run_duration_seconds_count", (("job", "users"),))] == len(runs)


def test_a_run_longer_than_its_interval_skips_the_next_ones_with_a_warning(tmp_path, caplog):
    # No sandbox: a job that blocks until released stands in for a slow run.
    release = threading.Event()

    def blocking(config, *, store, clock, **_):
        run_id = store.start_run("users", dry_run=False, now=clock())
        release.wait(30)
        store.finish_run(run_id, outcome="in_sync", now=clock(), counts={}, conflicts=0, errors=0)
        return RunReport(run_id, "users", False, Plan("users"))

    config = load_config(data={
        "webitel": {"url": "http://127.0.0.1:9/api", "token": "t0ken-value-1"},
        "creatio": {"url": "http://127.0.0.1:9", "username": "u", "password": "p4ssword-value"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "schedule": {"users": {"every_minutes": EVERY_SECOND}, "run_at_start": True}})
    worker = Worker(config, webitel=object(), creatio=object(), functions={"users": blocking})
    skip = "users: the previous run is still going; this run is skipped"
    with caplog.at_level(logging.WARNING), worker_thread(worker):
        try:
            wait_for(lambda: sum(r.getMessage() == skip for r in caplog.records) >= 2, timeout=10,
                     what="two skipped intervals")
        finally:
            release.set()
        wait_for(lambda: finished_runs(worker.store), what="the long run to finish")
    skips = [r for r in caplog.records if r.getMessage() == skip]
    assert all(r.name == "wcsync.worker" and r.levelno == logging.WARNING for r in skips)
    assert all(r.fields["skipped"] == "still_running" and r.fields["due_at"] for r in skips)
    # Once per skipped interval: each warning is for another due time, and each is counted.
    assert len({r.fields["due_at"] for r in skips}) == len(skips)
    counted = worker.metrics.registry.get_sample_value("wcsync_skipped_runs_total",
                                                       {"job": "users", "reason": "still_running"})
    assert counted == len(skips)
    assert not [r for r in caplog.records if r.exc_info or "listener" in r.getMessage()]


def test_failed_runs_by_hand_neither_delay_the_first_run_nor_make_it_unhealthy(make_sandbox, make_config):
    box = make_sandbox(20)
    config = make_config(box, schedule={"users": {"every_minutes": 10}, "run_at_start": True,
                                        "backoff_after_failures": 1}, serve={"http_port": 0})
    worker = Worker(config)
    now = dt.datetime.now(dt.timezone.utc)
    for minutes in range(5, 0, -1):  # five failed `run`s in the last minutes, as recorded_run leaves them
        started = now - dt.timedelta(minutes=minutes)
        run_id = worker.store.start_run("users", dry_run=False, now=started)
        worker.store.finish_run(run_id, outcome="failed", now=started + dt.timedelta(seconds=5), counts={},
                                conflicts=0, errors=1,
                                report={"run_id": run_id, "outcome": "failed", "failure": "creatio: 401"})
    ok, body = worker.health()
    users = body["jobs"]["users"]
    assert ok and users["consecutive_failures"] == 0 and users["backoff_until"] is None
    assert users["last_run"]["manual"] is True and users["last_run"]["outcome"] == "failed"
    assert users["last_run"]["error"] == "creatio: 401" and "started by hand ended failed" in users["reason"]
    with worker_thread(worker):
        base = wait_for(lambda: worker.http and worker.http.url, what="the status server")
        ran = wait_for(lambda: [r for r in finished_runs(worker.store) if r.report.get("started_by")],
                       timeout=60, what="the worker's first run")
        status, text = get(base + "/healthz")
    assert ran[0].started_at - worker.started_at < dt.timedelta(seconds=5)  # at start, not backed off
    assert worker.metrics.registry.get_sample_value("wcsync_skipped_runs_total",
                                                    {"job": "users", "reason": "backoff"}) in (None, 0)
    users = json.loads(text)["jobs"]["users"]
    assert status == 200 and users["last_outcome"] == "conflicts"
    assert users["last_run"] == {"run_id": ran[0].run_id, "outcome": "conflicts", "manual": False,
                                 "started_at": ran[0].started_at.isoformat(timespec="seconds")}


def test_a_schedule_that_cannot_be_used_stops_the_start(make_sandbox, make_config, tmp_path):
    from jobs.cli import main

    box = make_sandbox(5)
    path = tmp_path / "bad.toml"
    from workerkit import config_data, toml_text

    data = config_data(box, f"sqlite:///{tmp_path / 's.sqlite'}", schedule={"users": {"cron": "0 3 * * 8"}})
    path.write_text(toml_text(data), encoding="utf-8")
    assert main(["--config", str(path), "serve"]) == 2
    assert not StateStore.open(tmp_path / "s.sqlite").recent_runs()
