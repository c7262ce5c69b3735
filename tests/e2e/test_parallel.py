"""Parallel requests end to end: four at a time against the sandbox, with faults and crashes, end in
the state a clean run one at a time reaches.

The sandbox's ``call_app`` is wrapped to count the requests in its apps at once (after a short
sleep outside the apps' lock, so that requests sent together are seen together): more than one
shows the run was parallel, never more than ``max_concurrency`` shows the bound held.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from jobs import exit_codes
from e2ekit import cycle, run_job
from sandbox.faults import Faults
from sandbox.harness import to_toml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FAULTS = Faults(seed=9, error_rate=0.2, rate_429=0.1, retry_after_s=0.01)


def state_of(box, *, concurrent_used: bool = True):
    """Both sides as comparable data (no timestamps): the Creatio objects and the Webitel grants.

    ``concurrent_used=False`` leaves out the "Used" count of concurrent licences: the licence plan
    moves it with the run's own revocations although Webitel counts sessions for them (its "used"
    stays 0), so a run that revokes after a crashed one leaves another (negative) count than one
    run alone. That is the plan's, with or without parallel requests.
    """
    def strip(rows):
        return sorted(tuple(sorted((k, v) for k, v in r.items() if k not in ("CreatedOn", "ModifiedOn")
                                   and not (k == "Used" and r.get("Concurrent") and not concurrent_used)))
                      for r in rows)

    app = box.creatio_app
    entities = ("WebitelUser", "Contact", "Account", "ContactCommunication", "WebitelLicense",
                "WebitelUserLicense")
    state = {e: strip(app.rows(e)) for e in entities}
    users = box.webitel_app.all_users()
    state["webitel grants"] = sorted((u["id"], tuple(sorted(u["license"]))) for u in users)
    return state


class InFlight:
    """The most requests inside one sandbox server's app at once."""

    def __init__(self, server, hold_s: float = 0.005):
        self.now = self.peak = 0
        self.lock = threading.Lock()
        inner = server.call_app

        def call_app(request):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(hold_s)
                return inner(request)
            finally:
                with self.lock:
                    self.now -= 1

        server.call_app = call_app


def parallel(max_concurrency: int = 4, batch_size: int = 10) -> dict:
    return {"creatio": {"max_concurrency": max_concurrency, "batch_size": batch_size},
            "webitel": {"max_concurrency": max_concurrency}}


def revoke_in_creatio(box, config, users: int) -> None:
    """An administrator removes every grant of ``users`` users in Creatio: the next licence sync
    revokes them in Webitel, one PATCH per user."""
    from jobs.wiring import creatio_client

    rows = sorted(box.creatio_app.rows("WebitelUserLicense"), key=lambda r: (r["UserId"], r["Id"]))
    chosen = sorted({r["UserId"] for r in rows})[:users]
    client = creatio_client(config)
    for row in rows:
        if row["UserId"] in chosen:
            client.delete("WebitelUserLicense", row["Id"])


def licences_both_ways(box, config) -> list:
    """A first cycle (the users, then Webitel's grants mirrored into Creatio), then grants of 40
    users removed in Creatio and a second cycle, which PATCHes those users in Webitel."""
    first = cycle(config)
    revoke_in_creatio(box, config, 40)
    return first + cycle(config)


def test_users_and_licences_four_at_a_time_under_faults_end_as_a_clean_run_one_at_a_time(
        make_sandbox, make_config):
    caps = {"max_revocations": 1000, "max_revocation_share": 1.0}
    clean = make_sandbox(100, seed=5, grants_per_user=2)
    licences_both_ways(clean, make_config(clean, state="clean.sqlite", licenses=caps, **parallel(1)))
    noisy = make_sandbox(100, seed=5, grants_per_user=2, faults_webitel=FAULTS, faults_creatio=FAULTS)
    creatio, webitel = InFlight(noisy.creatio), InFlight(noisy.webitel)
    config = make_config(noisy, state="noisy.sqlite", licenses=caps, **parallel(4))
    reports = licences_both_ways(noisy, config)
    assert all(r.outcome != "failed" for r in reports), [r.outcome for r in reports]
    assert noisy.webitel.stats.writes >= 40
    assert state_of(noisy) == state_of(clean)
    counts = [noisy.creatio.fault_counts, noisy.webitel.fault_counts]
    assert sum(c.get("error", 0) for c in counts) >= 5 and sum(c.get("429", 0) for c in counts) >= 2
    assert 1 < creatio.peak <= 4 and 1 < webitel.peak <= 4


def test_a_rerun_after_a_parallel_import_plans_nothing(make_sandbox, make_config):
    box = make_sandbox(80, seed=6)
    config = make_config(box, **parallel(4))
    cycle(config)
    box.creatio.stats.reset()
    box.webitel.stats.reset()
    again = cycle(config)
    assert [a for r in again for a in r.plan.actions] == []
    assert box.creatio.stats.writes == 0 and box.webitel.stats.writes == 0


def test_a_stop_lets_the_batches_in_flight_land_and_records_every_one(make_sandbox, make_config):
    from jobs.state import StateStore

    box = make_sandbox(120, seed=7)
    InFlight(box.creatio, hold_s=0.02)
    config = make_config(box, state="stop.sqlite", **parallel(4, batch_size=5))
    report = run_job(config, "users", stop_requested=lambda: box.creatio.stats.writes >= 30)
    assert report.interrupted
    written = {r["Id"] for e in ("Contact", "WebitelUser", "ContactCommunication")
               for r in box.creatio_app.rows(e)}
    with StateStore.open(config.state.url) as store:
        events = store.run_events(report.run_id)
    landed = {o.action.id for o in report.applied.outcomes}
    # Everything the run wrote was recorded: the chunks in flight at the stop landed and were
    # recorded too, and nothing was sent after it.
    assert {a.id for a in report.plan.actions if a.writes} & written == landed - {
        o.action.id for o in report.applied.outcomes if not o.action.writes}
    assert len([e for e in events if e.outcome in ("applied", "already_existed")]) == len(landed)
    assert 30 <= box.creatio.stats.writes < 30 + 4 * 5 + 5


def test_a_crash_amid_parallel_batches_then_a_rerun_converges_without_duplicates(make_sandbox, tmp_path):
    reference = make_sandbox(90, seed=21)
    reference_config = reference.config(state_url=f"sqlite:///{tmp_path / 'ref.sqlite'}")
    crash(reference, reference_config, tmp_path / "ref.toml", kill_at=None)
    box = make_sandbox(90, seed=21)
    data = box.config(state_url=f"sqlite:///{tmp_path / 'crash.sqlite'}")
    for section, values in parallel(4).items():
        data[section].update(values)
    landed = crash(box, data, tmp_path / "crash.toml", kill_at=37)
    assert state_of(box) == state_of(reference)
    assert landed < len([r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]])


def test_a_crash_amid_parallel_licence_revocations_then_a_rerun_converges(make_sandbox, tmp_path):
    from jobs.config import load_config

    boxes = []
    for name, kill_at in (("ref", None), ("crash", 12)):
        box = make_sandbox(80, seed=22, grants_per_user=3)
        data = box.config(state_url=f"sqlite:///{tmp_path / (name + '.sqlite')}")
        for section, values in parallel(4).items():
            data[section].update(values)
        data["licenses"] = {"max_revocations": 1000, "max_revocation_share": 1.0}
        cycle(load_config(data=data))
        revoke_in_creatio(box, load_config(data=data), 30)
        box.webitel.stats.reset()
        crash(box, data, tmp_path / f"{name}.toml", kill_at=kill_at, server=box.webitel, job="licenses")
        boxes.append(box)
    reference, crashed = boxes
    assert reference.webitel.stats.writes >= 30
    assert state_of(crashed) == state_of(reference)  # the concurrent licences' Used too (planned right)


def crash(box, data: dict, config_file: Path, *, kill_at: int | None, server=None,
          job: str | None = None) -> int:
    """Run the product in a child process, SIGKILLed at the ``kill_at``-th write ``server`` counts
    (None: not killed), then once more to the end; the WebitelUser records after the first run."""
    config_file.write_text(to_toml(data), encoding="utf-8")
    server = server or box.creatio
    args = ("run", "--job", job) if job else ("run",)
    if kill_at is not None:
        child = subprocess.Popen([sys.executable, "-m", "jobs", "--config", str(config_file), *args],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def kill_at_write(count):
            if count == kill_at:
                os.kill(child.pid, signal.SIGKILL)

        server.stats.on_write = kill_at_write
        child.wait(timeout=60)
        server.stats.on_write = None
        assert child.returncode == -signal.SIGKILL
    landed = len([r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]])
    rerun = jobs_cli(config_file, *args)
    assert rerun.returncode in (exit_codes.OK, exit_codes.CONFLICTS), rerun.stderr
    return landed


def jobs_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", "--config", str(config_file), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_sandbox_command_delays_every_answer(tmp_path):
    out_path = tmp_path / "sandbox.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs", "sandbox", "--users", "5", "--latency-ms", "150", "--config-out",
         str(out_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not out_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        import tomllib

        url = tomllib.loads(out_path.read_text())["creatio"]["url"]
        started = time.monotonic()
        requests.get(url + "/0/odata/", timeout=10)
        assert time.monotonic() - started >= 0.15
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "delayed by 150 ms" in out
