"""Contract tests for the state store, against a real SQLite file (and PostgreSQL when available).

The ``store`` fixture runs each contract test on SQLite and, marked ``postgres``, on the server in
``WCSYNC_TEST_PG_URL`` (a throwaway database: its state-store tables are dropped). Tests about
the SQLite file itself take ``sqlite_url`` directly.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pgtest import postgres_url as _pg
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from connector.errors import StateSchemaError
from jobs.state import BASELINE_SET_KEY, SCHEMA_VERSION, Event, StateStore
from jobs.state import schema

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)




def drop_state_tables(url: str) -> None:
    engine = create_engine(url)
    schema.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nested' / 'dir' / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, sqlite_url: str):
    if request.param == "sqlite":
        url = sqlite_url
    else:
        url = _pg(empty=False)
        drop_state_tables(url)
    with StateStore.open(url) as opened:
        yield opened
    if request.param == "postgres":
        drop_state_tables(url)


@pytest.fixture
def statements():
    """Every statement sent to any database during the test, with its executemany flag."""
    seen: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, executemany))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


# --- links ----------------------------------------------------------------------------------------

def test_links_upsert_read_and_delete(store: StateStore) -> None:
    store.put_links("contact", [("u1", "c1"), ("u2", "c2", {"name": "Ann"})], run_id=None, now=at(0))
    store.put_links("account", [("u1", "a1")], run_id=None, now=at(0))
    store.put_links("contact", [("u2", "c2b"), ("u3", "c3")], run_id="r1", now=at(5))

    assert store.links("contact") == {"u1": "c1", "u2": "c2b", "u3": "c3"}
    assert store.links("account") == {"u1": "a1"}
    rows = {link.source_key: link for link in store.link_rows("contact")}
    assert [link.source_key for link in store.link_rows("contact")] == ["u1", "u2", "u3"]
    # Replacing a link without extra resets its extra; the write time and run follow the write.
    assert (rows["u2"].extra, rows["u2"].updated_at, rows["u2"].run_id) == ({}, at(5), "r1")
    assert (rows["u1"].extra, rows["u1"].updated_at, rows["u1"].run_id) == ({}, at(0), None)

    store.delete_links("contact", ["u1", "missing", "u1"])
    assert store.links("contact") == {"u2": "c2b", "u3": "c3"}
    assert store.links("account") == {"u1": "a1"}, "deleting one kind leaves the others"
    assert store.links("nothing") == {}


def test_put_links_keeps_extra_and_last_duplicate_wins(store: StateStore) -> None:
    store.put_links("licence", [("L1", "x", {"a": 1}), ("L1", "y", {"b": [1, 2]})], run_id=None,
                    now=at(0))
    [link] = store.link_rows("licence")
    assert (link.target_id, link.extra) == ("y", {"b": [1, 2]})


@pytest.mark.parametrize("pair, error", [
    (("only-one",), ValueError),
    (("a", "b", {}, "extra"), ValueError),
    (("a", None), TypeError),
    ((1, "b"), TypeError),
])
def test_put_links_refuses_malformed_pairs(store: StateStore, pair: tuple, error: type) -> None:
    with pytest.raises(error):
        store.put_links("contact", [("ok", "fine"), pair], run_id=None, now=at(0))
    assert store.links("contact") == {}


def test_naive_times_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.put_links("contact", [("a", "b")], run_id=None, now=dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.start_run("users", dry_run=False, now=dt.datetime(2025, 1, 1))


def test_times_come_back_as_utc(store: StateStore) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    run_id = store.start_run("users", dry_run=True, now=dt.datetime(2025, 3, 1, 14, 0, tzinfo=plus_two))
    run = store.get_run(run_id)
    assert run.started_at == T0 and run.started_at.tzinfo == UTC


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abcde"), st.sampled_from("xyz")),
                max_size=25))
def test_links_behave_like_a_dict(operations: list[tuple[bool, str, str]]) -> None:
    model: dict[str, str] = {}
    with StateStore.open("sqlite://") as memory:
        for put, source, target in operations:
            if put:
                memory.put_links("k", [(source, target)], run_id=None, now=T0)
                model[source] = target
            else:
                memory.delete_links("k", [source])
                model.pop(source, None)
        assert memory.links("k") == model


def test_bulk_links_use_one_statement_per_table(store: StateStore, statements: list) -> None:
    pairs = [(f"user-{i}", str(uuid.UUID(int=i)), {"n": i}) for i in range(10_000)]
    store.put_links("contact", pairs, run_id=None, now=at(0))
    inserts = [(sql, many) for sql, many in statements if sql.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and inserts[0][1] is True and "ON CONFLICT" in inserts[0][0].upper()
    links = store.links("contact")
    assert len(links) == 10_000 and links["user-9999"] == str(uuid.UUID(int=9999))

    run_id = store.start_run("users", dry_run=False, now=at(1))
    statements.clear()
    events = [Event("link", "contact", f"user-{i}") for i in range(10_000)]
    store.record_applied(run_id, events, links={"contact": [(k, "new") for k, _, _ in pairs]},
                         now=at(2))
    inserts = [sql.split("(")[0].split()[-1] for sql, many in statements
               if sql.lstrip().upper().startswith("INSERT") and many]
    assert sorted(inserts) == ["events", "links"]
    assert len(store.run_events(run_id)) == 10_000
    assert set(store.links("contact").values()) == {"new"}


# --- runs and events ------------------------------------------------------------------------------

def test_run_lifecycle(store: StateStore) -> None:
    run_id = store.start_run("users", dry_run=False, now=at(0))
    assert len(run_id) == 32 and int(run_id, 16) >= 0
    [running] = store.recent_runs()
    assert (running.run_id, running.outcome, running.finished_at, running.counts) == (
        run_id, "running", None, {})

    store.finish_run(run_id, outcome="conflicts", now=at(30), counts={"created": 3, "linked": 2},
                     conflicts=1, errors=0, report={"conflicts": [{"key": "u1", "why": "ambiguous"}]})
    run = store.get_run(run_id)
    assert run.outcome == "conflicts" and run.job == "users" and run.dry_run is False
    assert (run.started_at, run.finished_at) == (at(0), at(30))
    assert (run.counts, run.conflicts, run.errors) == ({"created": 3, "linked": 2}, 1, 0)
    assert run.report == {"conflicts": [{"key": "u1", "why": "ambiguous"}]}

    with pytest.raises(LookupError):
        store.finish_run("no-such-run", outcome="ok", now=at(31), counts={}, conflicts=0, errors=0)


def test_start_run_with_given_id_refuses_duplicates(store: StateStore) -> None:
    assert store.start_run("licenses", dry_run=True, now=at(0), run_id="fixed-id") == "fixed-id"
    assert store.get_run("fixed-id").dry_run is True
    with pytest.raises(IntegrityError):
        store.start_run("licenses", dry_run=True, now=at(1), run_id="fixed-id")


def test_recent_runs_newest_first_by_job_and_limit(store: StateStore) -> None:
    ids = [store.start_run("users" if i % 2 else "licenses", dry_run=False, now=at(i)) for i in range(6)]
    tie = store.start_run("users", dry_run=False, now=at(5))  # same start as ids[5]: later insert first
    assert [r.run_id for r in store.recent_runs()] == [tie, *reversed(ids)]
    assert [r.run_id for r in store.recent_runs(limit=2)] == [tie, ids[5]]
    assert [r.run_id for r in store.recent_runs(job="licenses")] == [ids[4], ids[2], ids[0]]


def test_get_run_by_unique_prefix(store: StateStore) -> None:
    for run_id in ("abcdef0123", "abcdef9999", "1234567890"):
        store.start_run("users", dry_run=False, now=at(0), run_id=run_id)
    assert store.get_run("1234567890").run_id == "1234567890"
    assert store.get_run("123456").run_id == "1234567890"
    assert store.get_run("abcdef0").run_id == "abcdef0123"
    assert store.get_run("12345") is None, "prefixes shorter than 6 characters are not looked up"
    assert store.get_run("fedcba") is None
    assert store.get_run("ABCDEF0") is None, "ids are matched case-sensitively"
    assert store.get_run("abcd%_") is None, "no wildcard meaning"
    with pytest.raises(LookupError, match="ambiguous"):
        store.get_run("abcdef")


def test_record_applied_stores_events_links_and_baseline(store: StateStore) -> None:
    store.set_baseline([("u1", "L-old"), ("u9", "L9")], now=at(0))
    store.put_links("contact", [("gone", "c0")], run_id=None, now=at(0))
    run_id = store.start_run("licenses", dry_run=False, now=at(1))
    events = [Event("create_contact", "contact", "u1", new={"name": "Ann", "seen": at(1)}),
              Event("grant", "grant", "u1/L1", old={"id": uuid.UUID(int=1)}, at=at(3))]
    store.record_applied(run_id, events, links={"contact": [("u1", "c1", {"created": True})],
                                                "account": [("dom", "a1")]},
                         unlinks={"contact": ["gone"]}, baseline_add=[("u1", "L1")],
                         baseline_remove=[("u1", "L-old")], now=at(2))
    stored = store.run_events(run_id)
    assert [(e.action, e.key, e.outcome, e.at) for e in stored] == [
        ("create_contact", "u1", "applied", at(2)), ("grant", "u1/L1", "applied", at(3))]
    assert stored[0].new == {"name": "Ann", "seen": "2025-03-01T12:00:01+00:00"}
    assert stored[1].old == {"id": str(uuid.UUID(int=1))}
    assert store.links("contact") == {"u1": "c1"} and store.links("account") == {"dom": "a1"}
    assert store.link_rows("contact")[0].run_id == run_id
    assert store.baseline() == {("u1", "L1"), ("u9", "L9")}


def test_record_applied_refuses_a_batch_adding_and_removing_the_same(store: StateStore) -> None:
    run_id = store.start_run("licenses", dry_run=False, now=at(0))
    with pytest.raises(ValueError, match="added and removed"):
        store.record_applied(run_id, [Event("grant", "grant", "g")], baseline_add=[("u", "L")],
                             baseline_remove=[("u", "L")], now=at(1))
    with pytest.raises(ValueError, match="added and removed"):
        store.record_applied(run_id, [], links={"contact": [("u", "c")]},
                             unlinks={"contact": ["u"]}, now=at(1))
    assert store.run_events(run_id) == []


def _nothing_landed(store: StateStore, run_id: str) -> None:
    assert store.run_events(run_id) == []
    assert store.links("contact") == {"kept": "c0"}
    assert store.baseline() == {("u0", "L0")}


def test_record_applied_is_atomic_on_a_constraint_violation(store: StateStore) -> None:
    store.put_links("contact", [("kept", "c0")], run_id=None, now=at(0))
    store.set_baseline([("u0", "L0")], now=at(0))
    run_id = store.start_run("licenses", dry_run=False, now=at(1))
    # The grant's NULL licence serial fails on the last table, after events and links were sent.
    with pytest.raises(IntegrityError):
        store.record_applied(run_id, [Event("grant", "grant", "u1/L1")],
                             links={"contact": [("u1", "c1")]}, unlinks={"contact": ["kept"]},
                             baseline_add=[("u1", None)], now=at(2))
    _nothing_landed(store, run_id)


def test_record_applied_is_atomic_when_a_later_statement_fails(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_links("contact", [("kept", "c0")], run_id=None, now=at(0))
    store.set_baseline([("u0", "L0")], now=at(0))
    run_id = store.start_run("licenses", dry_run=False, now=at(1))
    sent: list[str] = []
    real_execute = Connection.execute

    def failing_execute(self, statement, *args, **kwargs):
        table = getattr(getattr(statement, "table", None), "name", None)
        sent.append(table)
        if table == "baseline" and statement.is_delete:
            raise RuntimeError("simulated crash mid-batch")
        return real_execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "execute", failing_execute)
    with pytest.raises(RuntimeError, match="simulated"):
        store.record_applied(run_id, [Event("revoke", "grant", "u0/L0")],
                             links={"contact": [("u1", "c1")]}, unlinks={"contact": ["kept"]},
                             baseline_remove=[("u0", "L0")], now=at(2))
    assert sent[:3] == ["events", "links", "links"], "events and links were written before the failure"
    monkeypatch.undo()
    _nothing_landed(store, run_id)


def test_events_need_an_existing_run(store: StateStore) -> None:
    with pytest.raises(IntegrityError):
        store.record_events("no-such-run", [Event("grant", "grant", "k")], now=at(0))
    with pytest.raises(IntegrityError):
        store.record_applied("no-such-run", [Event("grant", "grant", "k")],
                             links={"contact": [("u", "c")]}, now=at(0))
    assert store.links("contact") == {}


def test_run_events_in_insertion_order_and_by_key(store: StateStore) -> None:
    run_id = store.start_run("users", dry_run=False, now=at(0))
    other = store.start_run("users", dry_run=False, now=at(0))
    store.record_events(run_id, [Event("create", "contact", "b", outcome="failed", message="500"),
                                 Event("create", "contact", "a", outcome="refused", at=at(-5))],
                        now=at(1))
    store.record_events(other, [Event("create", "contact", "a")], now=at(1))
    store.record_applied(run_id, [Event("link", "contact", "a")], now=at(2))
    assert [(e.key, e.outcome) for e in store.run_events(run_id)] == [
        ("b", "failed"), ("a", "refused"), ("a", "applied")]
    assert store.run_events(run_id)[0].message == "500"
    assert [e.action for e in store.run_events(run_id, key="a")] == ["create", "link"]
    assert store.run_events("unknown") == []


def test_object_history_across_runs_newest_first(store: StateStore) -> None:
    first = store.start_run("users", dry_run=False, now=at(0))
    second = store.start_run("users", dry_run=True, now=at(10))
    store.record_applied(first, [Event("create", "contact", "u1"), Event("create", "contact", "u2")],
                         now=at(1))
    store.record_events(second, [Event("update", "contact", "u1", outcome="planned")], now=at(11))
    store.record_events(first, [Event("extension", "contact", "u1", outcome="failed")], now=at(12))

    history = store.object_history("u1")
    assert [(run.run_id, e.action) for run, e in history] == [
        (first, "extension"), (second, "update"), (first, "create")]
    assert history[1][0].dry_run is True
    assert [e.action for _, e in store.object_history("u1", limit=1)] == ["extension"]
    assert store.object_history("nobody") == []


def test_mark_stale_runs(store: StateStore) -> None:
    crashed = store.start_run("users", dry_run=False, now=at(0))
    finished = store.start_run("users", dry_run=False, now=at(0))
    store.finish_run(finished, outcome="ok", now=at(5), counts={}, conflicts=0, errors=0)
    recent = store.start_run("users", dry_run=False, now=at(3000))

    assert store.mark_stale_runs(now=at(3600), older_than_s=3600) == 0, "exactly the limit is not stale"
    assert store.mark_stale_runs(now=at(3601), older_than_s=3600) == 1
    assert store.get_run(crashed).outcome == "interrupted"
    assert store.get_run(crashed).finished_at == at(3601)
    assert store.get_run(finished).outcome == "ok" and store.get_run(recent).outcome == "running"
    assert store.mark_stale_runs(now=at(3602), older_than_s=3600) == 0


# --- baseline and settings ------------------------------------------------------------------------

def test_baseline_semantics(store: StateStore) -> None:
    assert store.has_baseline() is False and store.baseline() == set()
    run_id = store.start_run("licenses", dry_run=False, now=at(0))
    store.record_applied(run_id, [], baseline_add=[("u1", "L1")], now=at(1))
    assert store.baseline() == {("u1", "L1")}
    assert store.has_baseline() is False, "incremental grants do not complete a first licence sync"

    store.set_baseline([], now=at(2))
    assert store.has_baseline() is True and store.baseline() == set()
    store.set_baseline([("u1", "L1"), ("u2", "L1"), ("u1", "L1")], now=at(3))
    store.set_baseline([("u2", "L1"), ("u3", "L2")], now=at(4))
    assert store.baseline() == {("u2", "L1"), ("u3", "L2")}, "set_baseline replaces the whole set"
    assert store.get_value(BASELINE_SET_KEY) == at(4).isoformat()


def test_settings(store: StateStore) -> None:
    assert store.get_value("users.watermark") is None
    store.set_value("users.watermark", "2025-03-01T12:00:00Z", now=at(0))
    store.set_value("schedule.next", "x", now=at(0))
    store.set_value("users.watermark", "2025-03-02T00:00:00Z", now=at(1))
    assert store.get_value("users.watermark") == "2025-03-02T00:00:00Z"
    assert store.get_value("schedule.next") == "x"
    with pytest.raises(TypeError):
        store.set_value("n", 5, now=at(0))


# --- the SQLite file ------------------------------------------------------------------------------

def test_reopening_the_file_keeps_everything(sqlite_url: str) -> None:
    with StateStore.open(sqlite_url) as store:
        store.put_links("contact", [("u1", "c1", {"x": 1})], run_id="r", now=at(0))
        run_id = store.start_run("users", dry_run=False, now=at(0))
        store.record_applied(run_id, [Event("create", "contact", "u1", new={"n": 1})], now=at(1))
        store.finish_run(run_id, outcome="ok", now=at(2), counts={"created": 1}, conflicts=0, errors=0)
        store.set_baseline([("u1", "L1")], now=at(2))
        store.set_value("k", "v", now=at(2))
    with StateStore.open(sqlite_url) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.link_rows("contact")[0].extra == {"x": 1}
        assert store.get_run(run_id).counts == {"created": 1}
        assert store.run_events(run_id)[0].new == {"n": 1}
        assert store.has_baseline() and store.baseline() == {("u1", "L1")}
        assert store.get_value("k") == "v"


def test_open_creates_directories_and_uses_wal(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    with StateStore.open(sqlite_url):
        pass
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_open_accepts_a_plain_path(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "plain" / "state.db") as store:
        store.set_value("k", "v", now=at(0))
    assert (tmp_path / "plain" / "state.db").exists()


def test_a_newer_schema_is_refused(sqlite_url: str) -> None:
    with StateStore.open(sqlite_url):
        pass
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as raw:
        raw.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, "2030-01-01"))
    with pytest.raises(StateSchemaError, match="newer"):
        StateStore.open(sqlite_url)


def test_writes_begin_immediate_and_leave_no_transaction_open(sqlite_url: str, statements: list) -> None:
    with StateStore.open(sqlite_url) as store:
        statements.clear()
        run_id = store.start_run("users", dry_run=False, now=at(0))
        assert "BEGIN IMMEDIATE" in [sql for sql, _ in statements]
        statements.clear()
        store.links("contact")
        assert [sql for sql, _ in statements][0] == "BEGIN", "reads do not take the write lock"
        store.record_applied(run_id, [Event("a", "b", "c")], now=at(1))
        store.get_run(run_id)
        # Another process could write right now: no call left a transaction open.
        raw = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        raw.close()


WRITER = """
import sys, datetime as dt
from jobs.state import Event, StateStore
url, name = sys.argv[1], sys.argv[2]
now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
with StateStore.open(url) as store:
    run_id = store.start_run(name, dry_run=False, now=now)
    for i in range(150):
        store.record_applied(run_id, [Event("link", "contact", f"{name}-{i}")],
                             links={"contact": [(f"{name}-{i}", str(i))]}, now=now)
"""


def test_two_processes_write_one_file(sqlite_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, sqlite_url, name], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    with StateStore.open(sqlite_url) as store:
        assert len(store.links("contact")) == 300
        assert sorted(len(store.run_events(r.run_id)) for r in store.recent_runs()) == [150, 150]


def test_the_state_file_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "sub" / "state.sqlite"
    StateStore.open(f"sqlite:///{path}").close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_baseline_of_some_users_is_read_and_replaced_alone(store):
    store.set_baseline([("1", "a"), ("1", "b"), ("2", "a"), ("3", "c")], now=at(0))
    assert store.baseline_of(["1", "3", "9"]) == {("1", "a"), ("1", "b"), ("3", "c")}
    assert store.baseline_size() == 4
    # User 1 lost b and got d; user 3 lost everything; user 2 is not in the scope: untouched,
    # even when a grant of it is passed along.
    store.set_baseline_of(["1", "3"], [("1", "a"), ("1", "d"), ("2", "zz")], now=at(1))
    assert store.baseline() == {("1", "a"), ("1", "d"), ("2", "a")}
