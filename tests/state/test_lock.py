"""The run lock: one holder at a time, leases that expire, and real processes contending for it.

Lease tests pass ``now`` explicitly. The PostgreSQL tests need ``psycopg`` and a server in
``WCSYNC_TEST_PG_URL`` (a throwaway database) and are skipped otherwise.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pgtest import postgres_url
from sqlalchemy import create_engine, text

from connector.errors import LockBusy, StateError
from jobs.state import RunLock, StateStore
from jobs.state import schema

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)




@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, url: str) -> str:
    return url if request.param == "sqlite" else postgres_url()


@pytest.fixture
def sqlite_store(url: str):
    with StateStore.open(url) as opened:
        yield opened


@pytest.fixture
def store(any_url: str):
    """A store on SQLite and, marked ``postgres``, on PostgreSQL: the lock's common contract."""
    with StateStore.open(any_url) as opened:
        yield opened


def test_acquire_refuse_release(store: StateStore) -> None:
    first, second = store.lock(holder="first"), store.lock(holder="second")
    assert first.acquire(now=at(0)) is True and first.held
    assert second.acquire(now=at(1)) is False and not second.held
    info = second.holder_info(now=at(1))
    assert info["holder"] == "first" and info["pid"] == os.getpid()
    assert info["host"] == socket.gethostname()
    assert (info["acquired_at"], info["expires_at"]) == (at(0), at(120))

    first.release()
    assert not first.held and second.holder_info(now=at(2)) is None
    assert second.acquire(now=at(2)) is True
    first.release()  # not the holder any more: must not free the lock for a third party
    assert store.lock(holder="third").acquire(now=at(3)) is False


def test_acquiring_again_renews_without_resetting(store: StateStore) -> None:
    lock = store.lock(holder="me", lease_s=60)
    assert lock.acquire(now=at(0)) and lock.acquire(now=at(30))
    info = lock.holder_info(now=at(30))
    assert (info["acquired_at"], info["expires_at"]) == (at(0), at(90))


def test_an_expired_lease_can_be_taken_over(sqlite_store: StateStore) -> None:
    store = sqlite_store
    crashed, successor = store.lock(holder="crashed", lease_s=60), store.lock(holder="next", lease_s=60)
    assert crashed.acquire(now=at(0))
    assert successor.acquire(now=at(59.9)) is False
    assert successor.acquire(now=at(60)) is True, "a lease ends at its expiry time"
    assert successor.holder_info(now=at(61))["acquired_at"] == at(60)
    assert crashed.heartbeat(now=at(61)) is False and not crashed.held
    crashed.release()
    assert crashed.holder_info(now=at(62))["holder"] == "next"


def test_heartbeat_extends_the_lease(sqlite_store: StateStore) -> None:
    store = sqlite_store
    lock, other = store.lock(holder="worker", lease_s=60), store.lock(holder="other", lease_s=60)
    assert lock.acquire(now=at(0))
    assert lock.heartbeat(now=at(50)) is True
    assert other.acquire(now=at(100)) is False, "the heartbeat moved expiry to 110"
    assert other.acquire(now=at(110)) is True
    assert lock.heartbeat(now=at(111)) is False
    assert store.lock(holder="never").heartbeat(now=at(0)) is False


def test_heartbeat_after_expiry_keeps_an_untaken_lock(store: StateStore) -> None:
    lock = store.lock(holder="slow", lease_s=10)
    assert lock.acquire(now=at(0))
    assert lock.heartbeat(now=at(15)) is True, "nobody else entered, so nothing was lost"
    assert store.lock(holder="other").acquire(now=at(20)) is False


def test_locks_with_different_names_are_independent(store: StateStore) -> None:
    # Keep the holders referenced: on PostgreSQL a dropped RunLock ends its session, and its lock.
    held = [store.lock("tenant-a", holder="x"), store.lock("tenant-b", holder="y")]
    assert [lock.acquire(now=at(0)) for lock in held] == [True, True]
    assert store.lock("tenant-a", holder="y").acquire(now=at(0)) is False


def test_context_manager_raises_lock_busy_with_the_holder(store: StateStore) -> None:
    with store.lock(holder="host-a:42:cafe") as held:
        assert held.held
        with pytest.raises(LockBusy) as caught:
            with store.lock(holder="second"):
                pytest.fail("entered a held lock")
        assert isinstance(caught.value, StateError)  # one hierarchy: the CLI prints one line for it
        assert "host-a:42:cafe" in str(caught.value) and caught.value.holder["holder"] == "host-a:42:cafe"
        assert caught.value.name == "sync"
    with store.lock(holder="second"):  # released on exit
        pass


def test_the_lock_is_released_when_the_body_raises(store: StateStore) -> None:
    with pytest.raises(KeyError):
        with store.lock(holder="a"):
            raise KeyError("boom")
    assert store.lock(holder="b").acquire()


def test_default_holder_names_host_and_process(store: StateStore) -> None:
    lock = store.lock()
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:{os.getpid()}:[0-9a-f]{{8}}", lock.holder)
    assert lock.holder != store.lock().holder
    with pytest.raises(ValueError):
        store.lock(lease_s=0)


CONTENDER = """
import os, sys, time
from jobs.state import StateStore
url, out, go, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = StateStore.open(url)
lock = store.lock("sync")
open(out + ".ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
done = refused = 0
with open(out, "w") as log:
    while done < rounds:
        if not lock.acquire():
            refused += 1
            time.sleep(0.001)
            continue
        entered = time.time_ns()
        time.sleep(0.01)
        log.write(f"{entered} {time.time_ns()}\\n")
        log.flush()
        lock.release()
        done += 1
        time.sleep(0.001)
    log.write(f"refused {refused}\\n")
store.close()
"""


def test_two_processes_are_never_inside_at_once(any_url: str, tmp_path: Path) -> None:
    url = any_url
    StateStore.open(url).close()
    go, rounds = tmp_path / "go", 25
    outs = [tmp_path / f"p{i}.log" for i in (1, 2)]
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, url, str(out), str(go), str(rounds)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for out in outs]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{out}.ready").exists() for out in outs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "start failed"
            time.sleep(0.01)
        go.touch()  # both are ready: start them together so that they really contend
        errors = [proc.communicate(timeout=120)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0, 0], errors

    intervals, refused = [], 0
    for out in outs:
        *lines, last = out.read_text().splitlines()
        refused += int(last.split()[1])
        intervals += [tuple(map(int, line.split())) for line in lines]
    assert len(intervals) == 2 * rounds
    intervals.sort()
    for (_, left_exit), (right_enter, _) in zip(intervals, intervals[1:]):
        assert right_enter >= left_exit, "two processes held the lock at once"
    assert refused > 0, "the processes never contended, so the test proved nothing"


CRASHER = """
import os, sys
from jobs.state import StateStore
store = StateStore.open(sys.argv[1])
assert store.lock(holder="crasher", lease_s=30).acquire()
os._exit(0)  # die holding the lock: no release, no clean shutdown
"""


def test_a_crashed_process_lease_expires(url: str, sqlite_store: StateStore) -> None:
    """A holder that crashed on *another* host blocks until its lease runs out."""
    subprocess.run([sys.executable, "-c", CRASHER, url], cwd=ROOT, check=True, timeout=60)
    from sqlalchemy import update

    with sqlite_store._engine.begin() as connection:  # the crash happened on another machine
        connection.execute(update(schema.locks).values(host="another-host"))
    survivor = sqlite_store.lock(holder="survivor")
    info = survivor.holder_info()
    assert info and info["holder"] == "crasher"
    assert survivor.acquire() is False
    assert survivor.acquire(now=info["expires_at"] + dt.timedelta(seconds=1)) is True


def acquire_within(lock: RunLock, seconds: float) -> bool:
    """Retry ``acquire`` while the server notices a dead session."""
    deadline = time.monotonic() + seconds
    while not lock.acquire():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- PostgreSQL: advisory lock ------------------------------------------------------------------

@pytest.fixture
def pg_url() -> str:
    return postgres_url()


@pytest.fixture
def pg_store(pg_url: str):
    with StateStore.open(pg_url) as opened:
        yield opened


@pytest.mark.postgres
def test_postgres_advisory_lock_is_exclusive(pg_store: StateStore) -> None:
    first, second = pg_store.lock(holder="first", lease_s=60), pg_store.lock(holder="second")
    assert first.acquire(now=at(0)) is True
    assert second.acquire(now=at(1)) is False
    assert second.holder_info(now=at(1))["holder"] == "first"
    # An expired lease does not matter on PostgreSQL: the live session still holds the lock.
    assert second.acquire(now=at(600)) is False
    assert first.heartbeat(now=at(30)) is True
    first.release()
    assert second.acquire() is True
    second.release()


@pytest.mark.postgres
def test_postgres_lock_dies_with_its_session(pg_store: StateStore) -> None:
    first: RunLock = pg_store.lock(holder="first")
    assert first.acquire()
    # What the server sees when the worker process dies: its session ends.
    admin = create_engine(os.environ["WCSYNC_TEST_PG_URL"])
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first._session_pid})
    admin.dispose()
    successor = pg_store.lock(holder="next")
    assert acquire_within(successor, 10), "the dead session's lock was never freed"
    assert first.heartbeat() is False and not first.held
    assert successor.holder_info()["holder"] == "next"
    first.release()  # must not free the successor's lock
    assert pg_store.lock(holder="third").acquire() is False
    successor.release()


@pytest.mark.postgres
def test_postgres_lock_of_a_crashed_process_is_freed_at_once(pg_url: str, pg_store: StateStore) -> None:
    subprocess.run([sys.executable, "-c", CRASHER, pg_url], cwd=ROOT, check=True, timeout=60)
    # The lease row says "crasher" for 30 s more, but its session is gone, and so is its lock.
    assert acquire_within(pg_store.lock(holder="survivor"), 10)


@pytest.mark.postgres
def test_postgres_lock_never_released_is_freed_with_the_object(pg_store: StateStore) -> None:
    forgotten = pg_store.lock(holder="forgotten")
    assert forgotten.acquire()
    gc.disable()  # freed by reference counting alone, not at some later collection
    try:
        del forgotten
        # Its session is closed, not parked in a pool where the next lock would re-enter it.
        assert acquire_within(pg_store.lock(holder="next"), 10)
    finally:
        gc.enable()


def test_lease_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    import subprocess
    import sys

    from jobs.state import StateStore

    url = f"sqlite:///{tmp_path / 'dead.sqlite'}"
    script = ("import sys; from jobs.state import StateStore; s = StateStore.open(sys.argv[1]); "
              "assert s.lock('sync', lease_s=3600).acquire()")
    subprocess.run([sys.executable, "-c", script, url], check=True, cwd=str(tmp_path.parent),
                   env={**__import__("os").environ,
                        "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[2])})
    store = StateStore.open(url)
    lock = store.lock("sync", lease_s=60)
    assert lock.acquire(), "a lease left by an exited process on this host must not block"
    other = store.lock("sync", lease_s=60)
    assert not other.acquire(), "a live holder (this process) still blocks"
