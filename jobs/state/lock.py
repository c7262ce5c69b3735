"""One run at a time per configuration, across processes and hosts.

The lock is a lease in the ``locks`` table: a holder id, when it was taken and when it expires.
Taking it is one atomic transaction (``BEGIN IMMEDIATE`` on SQLite) that succeeds if the row is
absent, expired or already ours. A holder that crashes simply stops renewing, and its lease
expires; a live holder renews it with ``heartbeat`` well within ``lease_s``.

On PostgreSQL the lock itself is ``pg_try_advisory_lock(hashtext('webitel-creatio-sync:' ||
name))`` on an unpooled connection kept for the lock's life, so the server releases it the moment
the worker's session dies, and lease expiry plays no part. The lease row is still written there,
so that ``holder_info`` can say who holds it. Keep a reference to a held ``RunLock``: on
PostgreSQL dropping it ends its session and so frees the lock (on SQLite the lease just runs out).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from typing import Any, Callable

from sqlalchemy import create_engine, delete, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from connector.errors import LockBusy

from jobs.state import schema
from jobs.state.schema import as_utc, upsert, write_transaction

_ADVISORY_PREFIX = "webitel-creatio-sync:"


def default_holder() -> str:
    """A holder id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now(now: dt.datetime | None) -> dt.datetime:
    # The documented default: the wall clock, since leases are compared across hosts.
    return dt.datetime.now(dt.timezone.utc) if now is None else as_utc(now)


class RunLock:
    """A named, lease-based lock; obtain one from ``StateStore.lock``.

    Use it as a context manager (raising ``LockBusy`` when taken), or call ``acquire`` /
    ``heartbeat`` / ``release``. The ``now`` parameters default to the wall clock and exist so
    that tests can move time.
    """

    def __init__(self, engine: Engine, name: str = "sync", *, holder: str | None = None,
                 lease_s: float = 120, clock: Callable[[], dt.datetime] | None = None) -> None:
        """Describe the lock; nothing is taken until ``acquire``.

        Args:
            engine: The state store's engine.
            name: The lock's name, one per configuration (e.g. per tenant).
            holder: This holder's id; default ``host:pid:random``.
            lease_s: How long a lease lasts without a heartbeat.
            clock: The wall clock leases are judged by (default: the real UTC clock); a call's own
                ``now`` wins over it.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.lease_s = float(lease_s)
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._session: Connection | None = None  # PostgreSQL: the session owning the advisory lock
        self._session_pid: int | None = None
        self._session_engine: Engine | None = None
        self._held = False

    def _time(self, now: dt.datetime | None) -> dt.datetime:
        if now is None and self._clock is not None:
            now = self._clock()
        return _now(now)

    @property
    def held(self) -> bool:
        """Whether this object believes it holds the lock (as of its last call)."""
        return self._held

    def acquire(self, *, now: dt.datetime | None = None) -> bool:
        """Try to take the lock without waiting.

        Returns:
            True if this holder holds the lock now (also when it already did).
        """
        now = self._time(now)
        if self._postgres:
            if self._session is not None:  # already ours: acquiring again only renews the lease
                return self.heartbeat(now=now)
            if not self._advisory_lock():
                return False
            try:
                self._write_lease(now, take_over=True)
            except BaseException:
                self._advisory_unlock()
                raise
            self._held = True
            return True
        try:
            self._held = self._write_lease(now, take_over=False)
        except IntegrityError:
            # Dialects without BEGIN IMMEDIATE: another holder inserted the row first.
            self._held = False
        return self._held

    def heartbeat(self, *, now: dt.datetime | None = None) -> bool:
        """Extend the lease by ``lease_s`` from ``now``.

        Returns:
            False if the lock was lost (another holder took it over, or on PostgreSQL the
            session holding it died); the caller should stop writing.
        """
        now = self._time(now)
        if self._postgres and not self._session_alive():
            self._held = False
            return False
        t = schema.locks
        with write_transaction(self._engine) as connection:
            result = connection.execute(
                update(t).where(t.c.name == self.name, t.c.holder == self.holder)
                .values(expires_at=now + dt.timedelta(seconds=self.lease_s)))
        # On PostgreSQL the live session is the lock; the row only informs holder_info.
        self._held = self._postgres or result.rowcount == 1
        return self._held

    def release(self) -> None:
        """Give the lock up; does nothing if it is not ours."""
        t = schema.locks
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(delete(t).where(t.c.name == self.name, t.c.holder == self.holder))
        finally:
            if self._postgres:
                self._advisory_unlock()
            self._held = False

    def holder_info(self, *, now: dt.datetime | None = None) -> dict[str, Any] | None:
        """Who holds the lock: holder, host, pid, acquired_at, expires_at; None if nobody."""
        t = schema.locks
        with self._engine.connect() as connection:
            row = connection.execute(select(t).where(t.c.name == self.name)).first()
        if row is None or row.expires_at <= self._time(now):
            return None
        return {"holder": row.holder, "host": row.host, "pid": row.pid,
                "acquired_at": row.acquired_at, "expires_at": row.expires_at}

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise LockBusy(self.name, self.holder_info())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock(name={self.name!r}, holder={self.holder!r}, held={self._held})"

    def _write_lease(self, now: dt.datetime, *, take_over: bool) -> bool:
        t = schema.locks
        expires = now + dt.timedelta(seconds=self.lease_s)
        row = {"name": self.name, "holder": self.holder, "host": socket.gethostname(),
               "pid": os.getpid(), "acquired_at": now, "expires_at": expires}
        with write_transaction(self._engine) as connection:
            if take_over:  # PostgreSQL: the advisory lock already decided who holds it
                upsert(connection, t, [row], ("name",), ("holder", "host", "pid", "acquired_at",
                                                         "expires_at"))
                return True
            current = connection.execute(
                select(t).where(t.c.name == self.name).with_for_update()).first()
            if current is None:
                connection.execute(t.insert().values(**row))
                return True
            if current.holder == self.holder:
                row["acquired_at"] = current.acquired_at  # re-acquiring only renews the lease
            elif current.expires_at > now and not _dead_here(current.host, current.pid):
                return False
            connection.execute(update(t).where(t.c.name == self.name).values(**row))
            return True

    def _advisory_lock(self) -> bool:
        if self._session_engine is None:
            # Unpooled: a session closed or dropped (even by a lock never released) really ends,
            # instead of going back to a pool still holding the lock for the next borrower.
            self._session_engine = create_engine(self._engine.url, poolclass=NullPool)
        session = self._session_engine.connect()
        try:
            # Autocommit: the session must not sit "idle in transaction" for the whole run.
            session.execution_options(isolation_level="AUTOCOMMIT")
            got, pid = _ask(session, "SELECT pg_try_advisory_lock(hashtext(:key)), pg_backend_pid()",
                            key=_ADVISORY_PREFIX + self.name)
        except BaseException:
            session.invalidate()
            session.close()
            raise
        if not got:
            session.close()
            return False
        self._session, self._session_pid = session, pid
        return True

    def _session_alive(self) -> bool:
        if self._session is None:
            return False
        try:
            pid = None if self._session.invalidated else _ask(self._session,
                                                              "SELECT pg_backend_pid()")[0]
        except SQLAlchemyError:
            pid = None
        # Another backend pid means SQLAlchemy reconnected: the lock died with the old session.
        if pid != self._session_pid:
            self._drop_session()
            return False
        return True

    def _advisory_unlock(self) -> None:
        if self._session is None:
            return
        try:
            _ask(self._session, "SELECT pg_advisory_unlock(hashtext(:key))",
                 key=_ADVISORY_PREFIX + self.name)
            self._session.close()
        except SQLAlchemyError:
            self._drop_session()
        self._session = None

    def _drop_session(self) -> None:
        # Never return a session that may still own the advisory lock to the pool.
        if self._session is not None:
            try:
                self._session.invalidate()
                self._session.close()
            except SQLAlchemyError:
                pass  # already unusable, which is all we wanted
        self._session = None


def _dead_here(host: str | None, pid: int | None) -> bool:
    """Whether the holder is a process on this host that no longer exists (a killed run).

    Its lease would otherwise block every run until it expires. Holders on other hosts can only
    be judged by their lease. Assumes host names are unique among the machines sharing a state
    file (true of containers unless several are given the same ``hostname``).
    """
    if host != socket.gethostname() or not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _ask(session: Connection, sql: str, **params: Any) -> Any:
    """One row from the lock's own session."""
    row = session.execute(text(sql), params).one()
    # Ends SQLAlchemy's bookkeeping transaction (a no-op under autocommit). While it is open the
    # connection and it refer to each other, so a lock dropped without release would keep its
    # session, and the lock, until the garbage collector ran.
    session.commit()
    return row
