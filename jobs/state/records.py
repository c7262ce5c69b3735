"""Values the state store takes and returns (events, run records, links), and their rows.

The values are frozen dataclasses so that callers (the apply step, the report, ``history``) can
build and compare them without touching the database. The ``*_row(s)`` functions turn them into
the dicts the tables take, checking inputs before any transaction begins.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from jobs.state.schema import as_utc


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened (or was refused, or only planned) to one object in a run.

    Attributes:
        action: What was done, e.g. ``"create_contact"``, ``"grant"``, ``"revoke"``.
        object: The kind of object, e.g. ``"contact"``, ``"webitel_user"``, ``"grant"``.
        key: The object's stable key across runs; ``object_history`` looks events up by it.
        old: The object's relevant fields before, if known.
        new: The object's relevant fields after (or as planned).
        outcome: ``"applied"``, ``"refused"``, ``"failed"``, ``"planned"``...
        message: A human-readable reason or detail.
        at: When it happened; ``None`` means the ``now`` of the call that records it.
    """

    action: str
    object: str
    key: str
    old: dict | None = None
    new: dict | None = None
    outcome: str = "applied"
    message: str = ""
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a job as recorded in the state store.

    ``outcome`` is ``"running"`` until ``finish_run``; ``"interrupted"`` marks a run whose process
    died before finishing (see ``StateStore.mark_stale_runs``).
    """

    run_id: str
    job: str
    dry_run: bool
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    errors: int = 0
    report: dict | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """An id link from one system's object to the other's.

    Attributes:
        kind: The link family, e.g. ``"webitel_user"``, ``"contact"``, ``"licence"``.
        source_key: The key on the source side (unique within ``kind``).
        target_id: The id on the target side.
        extra: Small JSON details kept with the link.
        updated_at: When the link was last written.
        run_id: The run that last wrote it, if any.
    """

    kind: str
    source_key: str
    target_id: str
    extra: dict
    updated_at: dt.datetime
    run_id: str | None = None


def run_from_row(row: Any) -> RunRecord:
    """Build a ``RunRecord`` from a ``runs`` row."""
    return RunRecord(
        run_id=row.run_id, job=row.job, dry_run=bool(row.dry_run), started_at=row.started_at,
        finished_at=row.finished_at, outcome=row.outcome, counts=dict(row.counts or {}),
        conflicts=row.conflicts, errors=row.errors, report=row.report)


def event_from_row(row: Any) -> Event:
    """Build an ``Event`` from an ``events`` row."""
    return Event(action=row.action, object=row.object, key=row.key, old=row.old, new=row.new,
                 outcome=row.outcome, message=row.message, at=row.at)


def link_from_row(row: Any) -> Link:
    """Build a ``Link`` from a ``links`` row."""
    return Link(kind=row.kind, source_key=row.source_key, target_id=row.target_id,
                extra=dict(row.extra or {}), updated_at=row.updated_at, run_id=row.run_id)


def link_rows(kind: str, pairs: Iterable[tuple], *, run_id: str | None, now: dt.datetime) -> list[dict]:
    """Rows for the ``links`` table from ``(source_key, target_id[, extra])`` tuples.

    Raises:
        ValueError: A tuple has neither two nor three items.
        TypeError: A key or id is not a string (ids are compared as text on both sides).
    """
    rows = []
    for pair in pairs:
        if len(pair) not in (2, 3):
            raise ValueError(f"a link is (source_key, target_id[, extra]), got {pair!r}")
        source, target = pair[0], pair[1]
        extra = pair[2] if len(pair) == 3 else {}
        if not isinstance(source, str) or not isinstance(target, str):
            raise TypeError(f"link keys and ids are strings, got {pair!r}")
        rows.append({"kind": kind, "source_key": source, "target_id": target,
                     "extra": dict(extra or {}), "run_id": run_id, "updated_at": now})
    return rows


def event_rows(run_id: str, events: Sequence[Event], now: dt.datetime) -> list[dict]:
    """Rows for the ``events`` table; an event without ``at`` gets ``now``."""
    return [{"run_id": run_id, "action": e.action, "object": e.object, "key": e.key, "old": e.old,
             "new": e.new, "outcome": e.outcome, "message": e.message,
             "at": now if e.at is None else as_utc(e.at, "Event.at")} for e in events]


def grant_row(grant: tuple[str, str], now: dt.datetime) -> dict:
    """A row for the ``baseline`` table from ``(webitel_user_id, licence_serial)``."""
    user, serial = grant
    return {"webitel_user_id": user, "licence_serial": serial, "updated_at": now}
