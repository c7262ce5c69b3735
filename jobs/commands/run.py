"""``run``: one sync cycle now (users, then licences), or its plan with ``--dry-run``.

Ctrl-C (SIGINT) or SIGTERM asks the run to stop: the batch in flight finishes, the run is recorded
as interrupted with what landed, and the command says so and exits 130 (SIGINT) or 1. A second
signal stops at once (the run is still recorded as interrupted).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from connector.errors import SyncError

from jobs import exit_codes
from jobs.commands import config_of
from jobs.logs import scrub
from jobs.report import render_text, write_json


class Stopping:
    """The stop flag a signal sets, and which signal it was."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.event.is_set()


@contextmanager
def stop_on_signals(err=None) -> Iterator[Stopping]:
    """SIGINT and SIGTERM set the stop flag while the block runs; a second one stops at once."""
    stopping, err = Stopping(), err or sys.stderr
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield stopping
        return

    def handler(signum, _frame) -> None:
        if stopping.event.is_set():
            raise KeyboardInterrupt
        stopping.signal = signum
        stopping.event.set()
        print("stopping after the batch in flight (press Ctrl-C again to stop at once)", file=err, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_run(args: argparse.Namespace) -> int:
    """One sync cycle now (``--dry-run``: the plan only)."""
    from jobs.sync.cycle import run_once

    config = config_of(args)
    jobs = ("users", "licenses") if args.job == "all" else (args.job,)
    approve = {name: n for name, n in (("deactivations", args.allow_deactivations),
                                       ("revocations", args.allow_revocations)) if n}
    with stop_on_signals() as stopping:
        try:
            reports = run_once(config, dry_run=args.dry_run, jobs=jobs, stop_requested=stopping.requested,
                               approve=approve, user=args.user, full=args.full)
        except SyncError as exc:
            if args.json:  # one JSON object, whatever happened
                failed = {
                    "run_id": getattr(exc, "run_id", None),
                    "outcome": "failed",
                    "failure": scrub(str(exc)),
                }
                print(json.dumps(failed, ensure_ascii=False))
            raise
        except KeyboardInterrupt:
            if args.json:
                print(json.dumps({"outcome": "interrupted"}))
            raise
    code = print_reports(reports, as_json=args.json) if reports else exit_codes.FAILED
    stopped = [r for r in reports if r.interrupted]
    if stopped or stopping.requested():
        which = f"run {stopped[0].run_id} " if stopped else ""
        print(
            f"interrupted: {which}stopped after the batch in flight; what was written stays; "
            "re-run to continue",
            file=sys.stderr,
        )
        return exit_codes.INTERRUPTED if stopping.signal == signal.SIGINT else exit_codes.FAILED
    return code


def print_reports(reports, *, as_json: bool, out=None) -> int:
    """The reports as text (or one JSON object); returns the worst exit code among them."""
    out = out or sys.stdout
    if as_json:
        write_json(reports, out)
    else:
        for report in reports:
            print(render_text(report), file=out)
    return max((r.exit_code() for r in reports), default=exit_codes.OK)
