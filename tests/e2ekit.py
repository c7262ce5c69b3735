"""What the end-to-end tests share: quiet runs of the jobs, and an administrator's own edits.

The sandbox servers and a real SQLite state file come from the fixtures (``make_sandbox``,
``make_config``); this module holds the plain functions the test files call.
"""

from __future__ import annotations

import uuid

from jobs.progress import Progress
from jobs.sync.cycle import run_once


def run_job(config, job: str = "users", **kw):
    """One job, once, without a progress bar; its report."""
    (report,) = run_once(config, progress=Progress(enabled=False), jobs=(job,), **kw)
    return report


def cycle(config, **kw):
    """Both jobs (users, then licences); their reports."""
    return run_once(config, progress=Progress(enabled=False), **kw)


def admin_create(box, entity: str, row: dict) -> dict:
    """A record an administrator made in Creatio (as its UI would: a new Id, stamped now)."""
    return box.creatio_app.insert(entity, {"Id": str(uuid.uuid4()), **row})
