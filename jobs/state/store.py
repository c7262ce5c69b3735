"""The state store: id links, run history, the licence-grant baseline and small settings.

Every public method is one short transaction of its own; nothing is held open between calls, so
a caller can never keep the database locked across remote API calls. ``record_applied`` is how
the apply step records a landed batch: its events, the links they made and the baseline changes
commit together or not at all, so a crash loses nothing already applied and a re-run plans
nothing new.

Times are passed in by the caller as ``now`` (timezone-aware); the store reads the clock only
when opening (the schema version's ``applied_at``).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from itertools import islice
from sys import intern
from typing import Iterator, Iterable, Mapping, Sequence

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine, make_url

from connector.errors import StateError

from jobs.state import records, schema
from jobs.state.lock import RunLock
from jobs.state.records import Event, Link, RunRecord, event_from_row, link_from_row, run_from_row
from jobs.state.schema import as_utc, upsert, write_transaction

MIN_RUN_PREFIX = 6
STALE_REASON = ("the process running it ended before it finished (killed, crashed or the machine stopped); "
                "what was written stays, and the next run continued")
# Settings key marking that a licence sync has set the baseline (even to the empty set).
BASELINE_SET_KEY = "baseline.set_at"
_LINK_KEYS = ("kind", "source_key")
_LINK_UPDATE = ("target_id", "extra", "run_id", "updated_at")
_GRANT_KEYS = ("webitel_user_id", "licence_serial")
BASELINE_CHUNK = 5000  # baseline rows per statement (and per fetch)


class StateStore:
    """The sync's persistent state, over SQLAlchemy Core (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, engine: Engine, *, schema_version: int = schema.SCHEMA_VERSION) -> None:
        """Wrap an engine whose schema is ready; use ``StateStore.open`` instead."""
        self._engine = engine
        self.schema_version = schema_version

    @classmethod
    def open(cls, url: str | os.PathLike) -> StateStore:
        """Open (creating if needed) the state store at ``url``.

        Args:
            url: A SQLAlchemy URL (``sqlite:///path/state.db``, ``postgresql+psycopg://...``) or
                a plain file path, which means a SQLite file there.

        Raises:
            StateSchemaError: The store was written by a newer version of this program.
            StateError: It cannot be opened (driver missing, folder not writable, file damaged,
                locked, server unreachable), said in one line with what to do.
        """
        text = os.fspath(url)
        if "://" not in text:
            text = f"sqlite:///{os.path.abspath(os.path.expanduser(text))}"
        where = make_url(text).render_as_string(hide_password=True)
        try:
            engine = schema.create_state_engine(text)
        except ModuleNotFoundError as exc:  # the URL names a driver that is not installed
            package = "psycopg[binary]" if "psycopg" in (exc.name or "") else exc.name
            raise StateError(
                f"state store {where} needs the {exc.name} driver: pip install '{package}'"
            ) from None
        except OSError as exc:  # its folder cannot be made, or the file cannot be created
            raise StateError(
                f"state store {where} cannot be created: {exc.strerror or exc}; check the "
                "folder's permissions or set [state] url"
            ) from None
        try:
            with schema.translated_errors(engine, where):
                version = schema.ensure_schema(engine, now=dt.datetime.now(dt.timezone.utc))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, schema_version=version)

    @property
    def url(self) -> str:
        """The store's URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lock(
        self, name: str = "sync", *, holder: str | None = None, lease_s: float = 120, clock=None
    ) -> RunLock:
        """A run lock named ``name`` in this store (see ``RunLock``); not yet acquired."""
        return RunLock(self._engine, name, holder=holder, lease_s=lease_s, clock=clock)

    # --- links -------------------------------------------------------------------------------

    def links(self, kind: str) -> dict[str, str]:
        """Every link of ``kind`` as ``{source_key: target_id}``."""
        t = schema.links
        with self._engine.connect() as connection:
            rows = connection.execute(select(t.c.source_key, t.c.target_id).where(t.c.kind == kind))
            # Interned: the same ids come again from the reads (Creatio's GUIDs are interned as parsed).
            return {intern(source): intern(target) for source, target in rows}

    def link_rows(self, kind: str) -> list[Link]:
        """Every link of ``kind`` with its details, ordered by source key."""
        return list(self.iter_link_rows(kind))

    def iter_link_rows(self, kind: str) -> Iterator[Link]:
        """``link_rows`` one at a time, fetched in chunks: tens of thousands never sit in memory at once."""
        t = schema.links
        with self._engine.connect() as connection:
            result = connection.execution_options(yield_per=2000).execute(
                select(t).where(t.c.kind == kind).order_by(t.c.source_key)
            )
            for row in result:
                yield link_from_row(row)

    def put_links(self, kind: str, pairs: Iterable[tuple], *, run_id: str | None, now: dt.datetime) -> None:
        """Insert or replace links of ``kind``.

        Args:
            kind: The link family.
            pairs: ``(source_key, target_id)`` or ``(source_key, target_id, extra)``; a pair
                without ``extra`` replaces any stored extra with ``{}``.
            run_id: The run writing them, kept with each link for the audit trail.
            now: Write time.
        """
        rows = records.link_rows(kind, pairs, run_id=run_id, now=as_utc(now))
        with write_transaction(self._engine) as connection:
            upsert(connection, schema.links, rows, _LINK_KEYS, _LINK_UPDATE)

    def delete_links(self, kind: str, source_keys: Iterable[str]) -> None:
        """Delete the links of ``kind`` with these source keys; missing ones are ignored."""
        with write_transaction(self._engine) as connection:
            _delete_links(connection, kind, source_keys)

    # --- runs and events ---------------------------------------------------------------------

    def start_run(self, job: str, *, dry_run: bool, now: dt.datetime, run_id: str | None = None) -> str:
        """Record a run as ``"running"`` and return its id (a new uuid4 hex unless given)."""
        run_id = run_id or uuid.uuid4().hex
        with write_transaction(self._engine) as connection:
            connection.execute(
                schema.runs.insert().values(
                    run_id=run_id,
                    job=job,
                    dry_run=dry_run,
                    started_at=as_utc(now),
                    finished_at=None,
                    outcome="running",
                    counts={},
                    conflicts=0,
                    errors=0,
                    report=None,
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        outcome: str,
        now: dt.datetime,
        counts: Mapping[str, int],
        conflicts: int,
        errors: int,
        report: dict | None = None,
    ) -> None:
        """Record how a run ended.

        Raises:
            LookupError: No run has this id.
        """
        t = schema.runs
        with write_transaction(self._engine) as connection:
            result = connection.execute(
                update(t)
                .where(t.c.run_id == run_id)
                .values(
                    outcome=outcome,
                    finished_at=as_utc(now),
                    counts=dict(counts),
                    conflicts=conflicts,
                    errors=errors,
                    report=report,
                )
            )
            if result.rowcount != 1:
                raise LookupError(f"no run with id {run_id!r}")

    def record_applied(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        links: Mapping[str, Iterable[tuple]] | None = None,
        unlinks: Mapping[str, Iterable[str]] | None = None,
        baseline_add: Iterable[tuple[str, str]] = (),
        baseline_remove: Iterable[tuple[str, str]] = (),
        now: dt.datetime,
    ) -> None:
        """Record a landed batch in one transaction: its events, links and baseline changes.

        Either all of it is stored or, on any error, none of it.

        Args:
            run_id: The run the batch belongs to (must exist).
            events: The batch's events, stored in order.
            links: Links to insert or replace, per kind, as in ``put_links``.
            unlinks: Source keys whose links to delete, per kind (e.g. after a deletion).
            baseline_add: Grants ``(webitel_user_id, licence_serial)`` now present on both sides.
            baseline_remove: Grants now absent from both sides.
            now: Write time, and the time of events that carry none.

        Raises:
            ValueError: A link or grant is both added and removed in this batch.
        """
        now = as_utc(now)
        new_events = records.event_rows(run_id, events, now)
        new_links = [
            row
            for kind, pairs in (links or {}).items()
            for row in records.link_rows(kind, pairs, run_id=run_id, now=now)
        ]
        gone_links = {kind: set(keys) for kind, keys in (unlinks or {}).items()}
        added = [records.grant_row(grant, now) for grant in baseline_add]
        removed = {tuple(grant) for grant in baseline_remove}
        # Both directions at once means the caller's batch is wrong; storing either would hide it.
        clashes = [
            (r["kind"], r["source_key"])
            for r in new_links
            if r["source_key"] in gone_links.get(r["kind"], ())
        ]
        clashes += [g for g in ((r["webitel_user_id"], r["licence_serial"]) for r in added) if g in removed]
        if clashes:
            raise ValueError(f"added and removed in the same batch: {clashes[:5]}")
        with write_transaction(self._engine) as connection:
            if new_events:
                connection.execute(schema.events.insert(), new_events)
            upsert(connection, schema.links, new_links, _LINK_KEYS, _LINK_UPDATE)
            for kind, keys in gone_links.items():
                _delete_links(connection, kind, keys)
            upsert(connection, schema.baseline, added, _GRANT_KEYS)
            _delete_grants(connection, removed)

    def record_events(self, run_id: str, events: Sequence[Event], *, now: dt.datetime) -> None:
        """Record events that change no link (refused, failed, planned-only), in order."""
        rows = records.event_rows(run_id, events, as_utc(now))
        if rows:
            with write_transaction(self._engine) as connection:
                connection.execute(schema.events.insert(), rows)

    def recent_runs(self, limit: int = 20, job: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first, optionally of one job."""
        t = schema.runs
        statement = select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
        if job is not None:
            statement = statement.where(t.c.job == job)
        with self._engine.connect() as connection:
            return [run_from_row(row) for row in connection.execute(statement)]

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, or with this unique id prefix (at least 6 characters).

        Raises:
            LookupError: The prefix matches more than one run.
        """
        t = schema.runs
        with self._engine.connect() as connection:
            row = connection.execute(select(t).where(t.c.run_id == run_id)).first()
            if row is not None:
                return run_from_row(row)
            if len(run_id) < MIN_RUN_PREFIX:
                return None
            # substr rather than LIKE: exact and case-sensitive on both backends, nothing to escape.
            rows = connection.execute(
                select(t).where(func.substr(t.c.run_id, 1, len(run_id)) == run_id).order_by(t.c.id).limit(5)
            ).all()
        if len(rows) > 1:
            shown = ", ".join(row.run_id for row in rows)
            raise LookupError(f"run id prefix {run_id!r} is ambiguous: {shown}")
        return run_from_row(rows[0]) if rows else None

    def run_events(self, run_id: str, *, key: str | None = None) -> list[Event]:
        """The events of one run in the order they were recorded, optionally for one key."""
        t = schema.events
        statement = select(t).where(t.c.run_id == run_id).order_by(t.c.id)
        if key is not None:
            statement = statement.where(t.c.key == key)
        with self._engine.connect() as connection:
            return [event_from_row(row) for row in connection.execute(statement)]

    def object_history(self, keys: str | Sequence[str], limit: int = 50) -> list[tuple[RunRecord, Event]]:
        """Every event of some object keys across runs, newest first, each with its run.

        Args:
            keys: one key, or several; a key ending in ``:`` stands for every key it begins
                (``grant:17:`` is all of user 17's grants).
        """
        e, r = schema.events, schema.runs
        keys = [keys] if isinstance(keys, str) else list(keys)
        conditions = [
            e.c.key == k if not k.endswith(":") else func.substr(e.c.key, 1, len(k)) == k for k in keys
        ]
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(e).where(or_(*conditions)).order_by(e.c.id.desc()).limit(limit)
            ).all()
            run_ids = {row.run_id for row in rows}
            found = connection.execute(select(r).where(r.c.run_id.in_(run_ids))) if run_ids else []
            by_id = {row.run_id: run_from_row(row) for row in found}
        return [(by_id[row.run_id], event_from_row(row)) for row in rows]

    def webitel_id_of(self, username: str, *, scan: int = 100_000) -> str | None:
        """The Webitel id of ``username``: from the links (which keep each user's username), else
        from the newest ``scan`` Webitel-user events that wrote one; None when neither knows it."""
        e, t = schema.events, schema.links
        wanted = username.strip().casefold()
        with self._engine.connect() as connection:
            links = connection.execution_options(yield_per=2000).execute(
                select(t.c.source_key, t.c.extra).where(t.c.kind == "webitel_user")
            )
            for source_key, extra in links:
                if isinstance(extra, dict) and str(extra.get("username", "")).strip().casefold() == wanted:
                    return source_key
            rows = connection.execute(
                select(e.c.key, e.c.new)
                .where(func.substr(e.c.key, 1, 13) == "webitel_user:", e.c.new.like('%"username"%'))
                .order_by(e.c.id.desc())
                .limit(scan)
            )
            for key, new in rows:
                if isinstance(new, dict) and str(new.get("username", "")).strip().casefold() == wanted:
                    return key.split(":", 1)[1]
        return None

    def mark_stale_runs(self, *, now: dt.datetime, older_than_s: float) -> int:
        """Mark runs still ``"running"`` that started over ``older_than_s`` ago as ``"interrupted"``.

        Call it while holding the run lock: then no other live run of this configuration exists,
        and a ``"running"`` row can only be left by a process that died.

        Returns:
            How many runs were marked.
        """
        if older_than_s < 0:
            raise ValueError("older_than_s must not be negative")
        now = as_utc(now)
        t = schema.runs
        cutoff = now - dt.timedelta(seconds=older_than_s)
        e = schema.events
        with write_transaction(self._engine) as connection:
            stale = (
                connection.execute(
                    select(t.c.run_id).where(t.c.outcome == "running", t.c.started_at < cutoff)
                )
                .scalars()
                .all()
            )
            for run_id in stale:
                # What landed before the process died, from the events recorded batch by batch.
                landed = connection.execute(
                    select(e.c.action, func.count())
                    .where(e.c.run_id == run_id, e.c.outcome.in_(("applied", "already_existed")))
                    .group_by(e.c.action)
                ).all()
                counts = {action: n for action, n in landed}
                counts["applied"] = sum(counts.values())
                connection.execute(
                    update(t)
                    .where(t.c.run_id == run_id, t.c.outcome == "running")
                    .values(
                        outcome="interrupted",
                        finished_at=now,
                        counts=counts,
                        report={"run_id": run_id, "outcome": "interrupted", "failure": STALE_REASON},
                    )
                )
            return len(stale)

    # --- licence-grant baseline --------------------------------------------------------------

    def baseline(self) -> set[tuple[str, str]]:
        """The grants ``(webitel_user_id, licence_serial)`` in sync after the last licence sync."""
        t = schema.baseline
        with self._engine.connect() as connection:
            rows = connection.execution_options(yield_per=BASELINE_CHUNK).execute(
                select(t.c.webitel_user_id, t.c.licence_serial))
            # Interned: a user id recurs once per grant and a serial once per holder.
            return {(intern(user), intern(serial)) for user, serial in rows}

    def baseline_of(self, users: Iterable[str]) -> set[tuple[str, str]]:
        """The baseline grants of these Webitel users."""
        t = schema.baseline
        wanted = sorted(set(users))
        out: set[tuple[str, str]] = set()
        with self._engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                query = select(t.c.webitel_user_id, t.c.licence_serial).where(t.c.webitel_user_id.in_(chunk))
                out.update((user, serial) for user, serial in connection.execute(query))
        return out

    def baseline_size(self) -> int:
        """How many grants the baseline holds."""
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(schema.baseline)).scalar() or 0)

    def set_baseline_of(self, users: Iterable[str], grants: Iterable[tuple[str, str]], *,
                        now: dt.datetime) -> None:
        """Replace the baseline grants of these users only (an incremental licence sync)."""
        now = as_utc(now)
        members = set(users)
        wanted = sorted(members)
        rows = [records.grant_row(grant, now) for grant in grants if grant[0] in members]
        t = schema.baseline
        with write_transaction(self._engine) as connection:
            for start in range(0, len(wanted), 500):
                connection.execute(delete(t).where(t.c.webitel_user_id.in_(wanted[start:start + 500])))
            upsert(connection, t, rows, _GRANT_KEYS)

    def has_baseline(self) -> bool:
        """Whether ``set_baseline`` was ever called (even with no grants).

        Grants added through ``record_applied`` do not count: a first licence sync is complete
        only once it sets the whole baseline.
        """
        return self.get_value(BASELINE_SET_KEY) is not None

    def set_baseline(self, grants: Iterable[tuple[str, str]], *, now: dt.datetime) -> None:
        """Replace the whole baseline with ``grants`` and mark it as set."""
        now = as_utc(now)
        grants = iter(grants)
        with write_transaction(self._engine) as connection:
            connection.execute(delete(schema.baseline))
            # In chunks: a whole baseline of rows (150,000 grants) never sits in memory at once.
            while rows := [records.grant_row(grant, now) for grant in islice(grants, BASELINE_CHUNK)]:
                upsert(connection, schema.baseline, rows, _GRANT_KEYS)
            _put_setting(connection, BASELINE_SET_KEY, now.isoformat(), now)

    # --- requests per day --------------------------------------------------------------------

    def add_requests(self, system: str, day: dt.date, count: int) -> None:
        """Add ``count`` requests made to ``system`` on UTC ``day`` (several workers may add at once)."""
        if count <= 0:
            return
        t = schema.request_counts
        key = (t.c.day == day.isoformat()) & (t.c.system == system)
        with write_transaction(self._engine) as connection:
            if connection.execute(update(t).where(key).values(count=t.c.count + count)).rowcount == 0:
                connection.execute(t.insert().values(day=day.isoformat(), system=system, count=count))

    def requests_on(self, system: str, day: dt.date) -> int:
        """Requests made to ``system`` on UTC ``day`` so far."""
        t = schema.request_counts
        with self._engine.connect() as connection:
            found = connection.execute(
                select(t.c.count).where(t.c.day == day.isoformat(), t.c.system == system)).scalar()
        return int(found or 0)

    # --- an administrator's resolutions -----------------------------------------------------

    def put_resolution(
        self,
        webitel_id: str,
        kind: str,
        *,
        who: str,
        now: dt.datetime,
        contact_id: str | None = None,
        reason: str = "",
        signature: str = "",
    ) -> None:
        """Record (or replace) the resolution of one Webitel user's conflict."""
        t = schema.resolutions
        row = {
            "webitel_id": str(webitel_id),
            "kind": kind,
            "contact_id": contact_id,
            "reason": reason,
            "signature": signature,
            "who": who,
            "at": as_utc(now),
        }
        with write_transaction(self._engine) as connection:
            upsert(
                connection,
                t,
                [row],
                ("webitel_id",),
                ("kind", "contact_id", "reason", "signature", "who", "at"),
            )

    def delete_resolution(self, webitel_id: str) -> bool:
        """Forget one user's resolution; whether there was one."""
        t = schema.resolutions
        with write_transaction(self._engine) as connection:
            return connection.execute(delete(t).where(t.c.webitel_id == str(webitel_id))).rowcount > 0

    def resolutions(self, kind: str | None = None) -> dict[str, dict]:
        """Webitel id -> its resolution (kind, contact_id, reason, signature, who, at)."""
        t = schema.resolutions
        query = select(t) if kind is None else select(t).where(t.c.kind == kind)
        with self._engine.connect() as connection:
            return {
                row.webitel_id: {
                    "kind": row.kind,
                    "contact_id": row.contact_id,
                    "reason": row.reason,
                    "signature": row.signature,
                    "who": row.who,
                    "at": row.at,
                }
                for row in connection.execute(query)
            }

    # --- small settings ----------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        """The setting stored under ``key``, or ``None``."""
        t = schema.settings
        with self._engine.connect() as connection:
            return connection.execute(select(t.c.value).where(t.c.key == key)).scalar()

    def set_value(self, key: str, value: str, *, now: dt.datetime) -> None:
        """Store a setting (schedule state, a watermark...), replacing any previous value."""
        if not isinstance(value, str):
            raise TypeError(f"setting values are strings, got {type(value).__name__}")
        with write_transaction(self._engine) as connection:
            _put_setting(connection, key, value, as_utc(now))


def _delete_links(connection: Connection, kind: str, source_keys: Iterable[str]) -> None:
    t = schema.links
    params = [{"source": key} for key in dict.fromkeys(source_keys)]
    if params:
        connection.execute(delete(t).where(t.c.kind == kind, t.c.source_key == bindparam("source")), params)


def _delete_grants(connection: Connection, grants: Iterable[tuple[str, str]]) -> None:
    t = schema.baseline
    params = [{"user": user, "serial": serial} for user, serial in grants]
    if params:
        connection.execute(
            delete(t).where(
                t.c.webitel_user_id == bindparam("user"), t.c.licence_serial == bindparam("serial")
            ),
            params,
        )


def _put_setting(connection: Connection, key: str, value: str, now: dt.datetime) -> None:
    upsert(
        connection,
        schema.settings,
        [{"key": key, "value": value, "updated_at": now}],
        ("key",),
        ("value", "updated_at"),
    )
