"""Real worker processes (``python -m jobs --config FILE serve``) sharing one SQLite state file.

The sandbox runs in the test process; latency injected into its responses makes runs last long
enough to overlap with a second worker, a kill or a signal. Every assertion reads the shared run
history or the workers' JSON logs, never the clock's idea of how fast something was.
"""

from __future__ import annotations

import datetime as dt
import signal
import socket

import pytest
from pgtest import postgres_url
from sqlalchemy import create_engine

from jobs.state import StateStore, schema
from sandbox.faults import Faults
from workerkit import EVERY_SECOND, wait_for

pytestmark = pytest.mark.e2e
EVERY_SECOND_USERS = {"users": {"every_minutes": EVERY_SECOND}}


def all_runs(url):
    with StateStore.open(url) as store:
        return sorted(store.recent_runs(500), key=lambda r: r.started_at)




@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}" if request.param == "sqlite" else postgres_url()


def running_run(state) -> list:
    return state.exists() and [r for r in all_runs(state) if r.outcome == "running"]


def summaries(worker) -> list[dict]:
    return [line for line in worker.lines() if "outcome" in line and line.get("run_id")]


def lock_skips(worker) -> list[dict]:
    return [line for line in worker.lines() if "another run holds the run lock" in line["message"]]


def assert_no_overlap(runs) -> None:
    for earlier, later in zip(runs, runs[1:]):
        assert earlier.finished_at is not None, f"run {earlier.run_id} never finished"
        assert later.started_at >= earlier.finished_at, f"{later.run_id} started while {earlier.run_id} ran"


def secrets_of(box) -> list[str]:
    creds = box.data.credentials
    return [creds.webitel_token, creds.webitel_password, creds.creatio_password, creds.creatio_client_secret]


def test_two_workers_on_one_state_never_run_at_once(make_sandbox, config_file, spawn, state_url):
    # SQLite: the lease in the locks table; PostgreSQL: the advisory lock.
    box = make_sandbox(40, faults_creatio=Faults(latency_ms=40))
    path = config_file(box, schedule={**EVERY_SECOND_USERS, "run_at_start": True}, state={"url": state_url})
    first, second = spawn(path, "first"), spawn(path, "second")
    wait_for(lambda: first.running() and second.running() and (lock_skips(first) or lock_skips(second)),
             timeout=60, what="a run skipped for the lock")
    wait_for(lambda: sum(1 for r in all_runs(state_url) if r.finished_at) >= 4, timeout=60,
             what="four finished runs")
    for worker in (first, second):
        worker.proc.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0 and second.wait(60) == 0
    runs = all_runs(state_url)
    assert_no_overlap(runs)
    assert {r.outcome for r in runs} <= {"in_sync", "conflicts", "interrupted"}
    # Every run in the history is one of the two workers', and each worker logged its own.
    logged = {line["run_id"] for worker in (first, second) for line in summaries(worker)}
    assert logged == {r.run_id for r in runs if r.outcome != "interrupted"}
    for worker in (first, second):
        text = worker.log.read_text(encoding="utf-8")
        assert all(secret not in text for secret in secrets_of(box))
        for line in summaries(worker):
            assert line["job"] in ("users", "licenses") and {"counts", "duration_s"} <= line.keys()


def test_a_killed_holder_is_taken_over_at_once_on_the_same_host(make_sandbox, config_file, spawn, tmp_path):
    box = make_sandbox(60, faults_creatio=Faults(latency_ms=150))
    path = config_file(box, schedule={"run_at_start": True}, creatio={"batch_size": 5})
    doomed = spawn(path, "doomed")
    state = tmp_path / "state.sqlite"
    wait_for(lambda: doomed.running() and running_run(state),
             timeout=30, what="a run in progress")
    doomed.proc.kill()
    doomed.wait(10)
    box.creatio.faults = Faults()  # the heir's run need not be slow
    heir = spawn(path, "heir")
    # The lease (120 s) is far from expired: only seeing that its holder's process is gone lets
    # the heir in now. Waiting for the lease instead would time out here.
    def heir_ran():
        assert not lock_skips(heir), f"the heir waited for the dead worker's lock: {lock_skips(heir)}"
        return heir.running() and summaries(heir)

    wait_for(heir_ran, timeout=60, what="the heir's first run")
    heir.proc.send_signal(signal.SIGTERM)
    assert heir.wait(60) == 0
    runs = all_runs(state)
    assert runs[0].outcome == "interrupted" and runs[0].job == "users"
    assert not lock_skips(heir)
    assert summaries(heir)[0]["run_id"] == runs[1].run_id and runs[1].outcome == "conflicts"
    assert_no_overlap(runs)


def test_a_lease_held_on_another_host_is_waited_out(make_sandbox, config_file, spawn, tmp_path):
    box = make_sandbox(20)
    state = tmp_path / "state.sqlite"
    StateStore.open(state).close()  # create the schema
    now = dt.datetime.now(dt.timezone.utc)
    expires = now + dt.timedelta(seconds=2.5)
    engine = create_engine(f"sqlite:///{state}")
    with engine.begin() as connection:
        # A worker on another machine, alive as far as anyone here can tell: only its lease counts.
        connection.execute(schema.locks.insert().values(
            name="sync", holder="db-host-2:4242:abcd", host=f"not-{socket.gethostname()}", pid=4242,
            acquired_at=now, expires_at=expires))
    engine.dispose()
    path = config_file(box, schedule={**EVERY_SECOND_USERS, "run_at_start": True})
    worker = spawn(path)
    wait_for(lambda: worker.running() and summaries(worker), timeout=60, what="a run once the lease expired")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    skips = lock_skips(worker)
    assert skips and "db-host-2:4242:abcd" in skips[0]["message"] and skips[0]["job"] == "users"
    first = all_runs(state)[0]
    assert first.started_at >= expires


def test_sigterm_mid_run_records_an_interrupted_run_and_exits_0(make_sandbox, config_file, spawn, tmp_path):
    box = make_sandbox(60, faults_creatio=Faults(latency_ms=100))
    path = config_file(box, schedule={"run_at_start": True}, creatio={"batch_size": 5},
                       serve={"stop_timeout_s": 30})
    worker = spawn(path, "worker", "--log-level", "INFO")
    state = tmp_path / "state.sqlite"

    def applying():
        with StateStore.open(state) as store:
            running = [r for r in store.recent_runs(5) if r.outcome == "running"]
            return running and store.run_events(running[0].run_id)

    wait_for(lambda: worker.running() and state.exists() and applying(), timeout=30,
             what="a run writing its first batches")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(45) == 0  # within stop_timeout_s (30 s), with room for the interpreter's exit
    [run] = all_runs(state)
    # Part of the plan landed: the counts are of what landed, ``planned`` of what was planned.
    assert run.outcome == "interrupted" and 0 < run.counts["applied"] < run.counts["planned"]
    with StateStore.open(state) as store:
        assert store.lock("sync").holder_info() is None
    messages = [line["message"] for line in worker.lines()]
    assert any("SIGTERM received" in m for m in messages) and messages[-1] == "stopped"
    [summary] = summaries(worker)
    assert summary["run_id"] == run.run_id and summary["outcome"] == "interrupted"
    # Every line the run itself wrote (reading, planning, writing) names the run and the job.
    during = [line for line in worker.lines() if line["logger"].startswith("jobs.")]
    assert len(during) >= 3 and all(line.get("run_id") == run.run_id and line.get("job") == "users"
                                    for line in during)


def test_a_run_that_does_not_stop_in_time_is_abandoned_with_exit_1(make_sandbox, config_file, spawn,
                                                                    tmp_path):
    box = make_sandbox(10, faults_creatio=Faults(latency_ms=4000))
    path = config_file(box, schedule={"run_at_start": True}, serve={"stop_timeout_s": 1},
                       creatio={"timeout_s": 30})
    worker = spawn(path)
    state = tmp_path / "state.sqlite"
    wait_for(lambda: worker.running() and running_run(state), timeout=30, what="a run in progress")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 1
    [run] = all_runs(state)
    assert run.outcome == "interrupted"
    assert any("did not stop within 1 s" in line["message"] for line in worker.lines())
