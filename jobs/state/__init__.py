"""The state store: id links, run history, the licence-grant baseline, settings and the run lock.

SQLite by default, PostgreSQL by URL, both through SQLAlchemy Core::

    with StateStore.open("sqlite:///var/lib/wcsync/state.db") as store, store.lock():
        run_id = store.start_run("users", dry_run=False, now=now)
"""

from jobs.state.lock import RunLock
from jobs.state.records import Event, Link, RunRecord
from jobs.state.schema import SCHEMA_VERSION
from jobs.state.store import BASELINE_SET_KEY, StateStore

__all__ = [
    "BASELINE_SET_KEY",
    "Event",
    "Link",
    "RunLock",
    "RunRecord",
    "SCHEMA_VERSION",
    "StateStore",
]
