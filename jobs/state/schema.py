"""The state store's tables, their portable column types, and the engine that serves them.

Everything is SQLAlchemy Core. The same tables work on SQLite (the single-worker default) and on
PostgreSQL (several workers). The dialect-specific parts are how a connection is set up, how a
write transaction begins and how an upsert is spelled; all of them live in this module.

Times are stored as UTC. JSON columns are stored as text so that both databases read them alike.
"""

from __future__ import annotations

import datetime as dt
import os
import enum
import json
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.types import TypeDecorator

from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError
from sqlalchemy.exc import IntegrityError, OperationalError

from connector.errors import StateError, StateSchemaError

SCHEMA_VERSION = 2  # 2: resolutions, request counts
# How long a SQLite writer waits for another process's write transaction before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Connection execution option that makes SQLite begin with BEGIN IMMEDIATE (see write_transaction).
_WRITE_OPTION = "wcsync_write"
_SCHEMA_LOCK_KEY = "webitel-creatio-sync:schema"


def as_utc(value: dt.datetime, name: str = "now") -> dt.datetime:
    """Return ``value`` converted to UTC, refusing naive datetimes.

    Args:
        value: A timezone-aware datetime.
        name: What the value is, for the error message.

    Raises:
        TypeError: ``value`` is not a datetime.
        ValueError: ``value`` has no time zone.
    """
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(dt.timezone.utc)


def _json_default(value: Any) -> Any:
    # Event payloads are snapshots of API records; these are the non-JSON types they carry.
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")


def dump_json(value: Any) -> str:
    """Serialise a value for a JSON text column (sorted keys, so equal values store equal text)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_json_default)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        value = as_utc(value, "timestamp")
        # SQLite has no zone-aware type: naive UTC text keeps string order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class JSONText(TypeDecorator):
    """A JSON value stored as text, so SQLite and PostgreSQL read it back identically."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


# SQLite only aliases the rowid (cheap, ordered ids) for a column declared exactly INTEGER.
_RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs", metadata,
    # The integer id breaks ties between runs that started at the same instant.
    Column("id", _RowId, primary_key=True),
    Column("run_id", String(64), nullable=False, unique=True),
    Column("job", String(64), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(32), nullable=False),
    Column("counts", JSONText, nullable=False),
    Column("conflicts", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("report", JSONText),
    Index("ix_runs_started", "started_at"),
    Index("ix_runs_job_started", "job", "started_at"),
)

events = Table(
    "events", metadata,
    Column("id", _RowId, primary_key=True),  # insertion order
    Column("run_id", String(64), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("old", JSONText),
    Column("new", JSONText),
    Column("outcome", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_events_run", "run_id", "id"),
    Index("ix_events_key", "key", "id"),
)

links = Table(
    "links", metadata,
    Column("kind", String(64), primary_key=True),
    Column("source_key", String(255), primary_key=True),
    Column("target_id", String(255), nullable=False),
    Column("extra", JSONText, nullable=False),
    # Not a foreign key: a link outlives the pruning of the run that made it.
    Column("run_id", String(64)),
    Column("updated_at", UTCDateTime, nullable=False),
)

baseline = Table(
    "baseline", metadata,
    Column("webitel_user_id", String(255), primary_key=True),
    Column("licence_serial", String(255), primary_key=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

settings = Table(
    "settings", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Requests made to each system per UTC day (for ``[creatio] daily_request_budget``).
request_counts = Table(
    "request_counts", metadata,
    Column("day", String(10), primary_key=True),
    Column("system", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

# An administrator's resolution of one user's conflict: ``link`` (this Webitel user is that
# contact) or ``ignore`` (these conflicts are accepted, with a reason, until they change).
resolutions = Table(
    "resolutions", metadata,
    Column("webitel_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("contact_id", String(64)),
    Column("reason", Text, nullable=False),
    Column("signature", Text, nullable=False),  # ignore: the conflicts accepted, as they were
    Column("who", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

locks = Table(
    "locks", metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


def create_state_engine(url: str) -> Engine:
    """Create the engine for a state store URL.

    For a SQLite file the parent directory is created, and every connection gets WAL mode (readers
    never block the writer), a busy timeout (a second process waits for the write lock instead of
    failing) and enforced foreign keys. Other URLs are passed to SQLAlchemy unchanged.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///var/lib/wcsync/state.db`` or
            ``postgresql+psycopg://user@host/db``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    path = parsed.database or ""
    in_memory = path in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if not in_memory and not parsed.query.get("uri"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The store holds links, reports and the history: readable by its owner only. SQLite gives
        # its -wal and -shm files the database file's permissions.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is always DEFERRED; take transaction control so that
        # writers can say BEGIN IMMEDIATE (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                _set_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes cannot wait for the write lock under
        # WAL (it fails with SQLITE_BUSY at once); IMMEDIATE takes the lock first, honouring the
        # busy timeout, so concurrent writers queue instead of failing.
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _set_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch to WAL; retried, because two processes opening a new file at once race for the
    exclusive lock the switch needs, and SQLite answers "database is locked" at once there rather
    than waiting on the busy timeout."""
    import sqlite3
    import time

    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One short write transaction, committed on success and rolled back on any exception.

    On SQLite it begins with ``BEGIN IMMEDIATE``, so it holds the database's single write lock
    from its first statement to its commit. Keep it short: never call remote APIs inside it.

    Raises:
        StateError: the database refused (locked, read-only, corrupt, unreachable), said in one
            line with what to do.
    """
    with translated_errors(engine):
        with engine.connect() as connection:
            connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection


# (what the database says, what it means and what to do): the first match wins.
_STATE_ERRORS = (
    ("database is locked", "is locked by another process longer than the busy timeout; is another "
     "program holding it (a backup, an editor)? Try again when it is done"),
    ("readonly database", "is read-only for this user: give it (and its folder) write permission"),
    ("unable to open database file", "cannot be opened or created: check that its folder exists and is "
     "writable by this user, or set [state] url"),
    ("file is not a database", "is not a SQLite database (damaged, or another file): move it away and "
     "the next run starts a new store (links are found again; the licence baseline restarts)"),
    ("database disk image is malformed", "is damaged: restore a backup, or move it away and the next run "
     "starts a new store"),
    ("disk i/o error", "cannot be read or written (disk I/O error): check the disk and the folder"),
    ("connection refused", "cannot be reached: is the database server running, and is [state] url right?"),
    ("password authentication failed", "refused the credentials in [state] url"),
)


@contextmanager
def translated_errors(engine: Engine | None = None, where: str | None = None) -> Iterator[None]:
    """Database errors as one ``StateError`` line naming the store and what to do."""
    try:
        yield
    except IntegrityError:  # a constraint: the caller's own mistake, not the store's state
        raise
    except (OperationalError, SQLAlchemyDatabaseError) as exc:
        name = where or (
            engine.url.render_as_string(hide_password=True) if engine is not None else "the state store"
        )
        text = str(exc.orig if getattr(exc, "orig", None) is not None else exc).lower()
        meaning = next((m for needle, m in _STATE_ERRORS if needle in text), None)
        detail = meaning or f"failed: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"
        raise StateError(f"state store {name} {detail}") from None


def ensure_schema(engine: Engine, *, now: dt.datetime) -> int:
    """Create missing tables and record the schema version; return the stored version.

    Raises:
        StateSchemaError: The database was written by a newer schema version.
    """
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            # Two workers opening a fresh database at once would both run CREATE TABLE.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _SCHEMA_LOCK_KEY}
            )
        metadata.create_all(connection)
        found = connection.execute(select(func.max(schema_version.c.version))).scalar()
        if found is None:
            connection.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now))
            return SCHEMA_VERSION
        if found < SCHEMA_VERSION:  # the new tables were just created; say so
            connection.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=now))
            return SCHEMA_VERSION
        if found > SCHEMA_VERSION:
            raise StateSchemaError(
                f"the state store at {engine.url.render_as_string(hide_password=True)} has schema "
                f"version {found}, newer than this program's {SCHEMA_VERSION}; upgrade "
                "webitel-creatio-sync or point it at another state store"
            )
        return int(found)


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[dict],
    keys: Sequence[str],
    update: Sequence[str] = (),
) -> None:
    """Insert rows in one executemany; a row whose keys exist updates ``update`` columns.

    With no ``update`` columns an existing row is kept as it is. Rows repeating a key are reduced
    to the last one first, because PostgreSQL refuses to touch one row twice in a statement.
    """
    unique = list({tuple(row[k] for k in keys): row for row in rows}.values())
    if not unique:
        return
    name = connection.dialect.name
    if name in ("sqlite", "postgresql"):
        insert = (sqlite_insert if name == "sqlite" else postgresql_insert)(table)
        if update:
            statement = insert.on_conflict_do_update(
                index_elements=list(keys), set_={c: insert.excluded[c] for c in update}
            )
        else:
            statement = insert.on_conflict_do_nothing(index_elements=list(keys))
        connection.execute(statement, unique)
        return
    # Other dialects: delete then insert reaches the same end state within the transaction.
    match = and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
    connection.execute(table.delete().where(match), [{f"key_{k}": r[k] for k in keys} for r in unique])
    connection.execute(table.insert(), unique)
