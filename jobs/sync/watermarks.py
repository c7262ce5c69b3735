"""Where each job's incremental cycle starts: its watermarks and its last full read, in the state
store's settings table, and the choice between a full and an incremental read.

Both watermarks are the start of the last complete cycle on this machine's clock (Webitel's as
Unix ms, for ``updated_at``; Creatio's as a time, for ``ModifiedOn``); ``[sync]
watermark_margin_s`` is taken off them when reading, for a server clock that lags. A burst of
changes is therefore read again only until the margin has passed, never for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.webitel.models import to_ms

from jobs.config import AppConfig, duration_s


@dataclass(frozen=True)
class Since:
    """Where an incremental read starts."""

    webitel_ms: int
    creatio: datetime


def marks(job: str) -> tuple[str, str, str]:
    """The state keys of a job's watermarks (Webitel ms, Creatio time) and of its last full read."""
    return f"watermark.{job}.webitel_ms", f"watermark.{job}.creatio", f"full.{job}.at"


def cycle_mode(config: AppConfig, store, now: datetime, *, job: str, full: bool = False) -> str:
    """``full`` when asked, before the job's first cycle, when its last full read is older than
    ``[sync] full_every``, or when a stored mark does not read (a hand-edited state store); else
    ``incremental``."""
    if full:
        return "full"
    _, _, full_at = marks(job)
    try:
        last_full = datetime.fromisoformat(store.get_value(full_at) or "")
        since(store, job)
    except (TypeError, ValueError):
        return "full"
    age = (now - last_full).total_seconds()
    return "full" if age >= duration_s(config.sync.full_every) else "incremental"


def since(store, job: str) -> Since:
    """The watermarks of ``job`` (``cycle_mode`` said incremental only when they read).

    Raises:
        TypeError, ValueError: a mark is missing or does not read.
    """
    webitel_mark, creatio_mark, _ = marks(job)
    return Since(int(store.get_value(webitel_mark)), datetime.fromisoformat(store.get_value(creatio_mark)))


def advance(store, job: str, *, started: datetime, mode: str, now: datetime) -> None:
    """After a cycle that read and applied everything: the next one starts where this one began."""
    webitel_mark, creatio_mark, full_at = marks(job)
    store.set_value(webitel_mark, str(to_ms(started)), now=now)
    store.set_value(creatio_mark, started.isoformat(), now=now)
    if mode == "full":
        store.set_value(full_at, started.isoformat(), now=now)
