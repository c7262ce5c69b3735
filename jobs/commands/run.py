"""``run``: one sync cycle now (users, then licences), or its plan with ``--dry-run``."""

from __future__ import annotations

import argparse
import sys

from jobs import exit_codes
from jobs.commands import config_of
from jobs.report import render_text, write_json


def cmd_run(args: argparse.Namespace) -> int:
    """One sync cycle now (``--dry-run``: the plan only)."""
    from jobs.sync.cycle import run_once

    config = config_of(args)
    jobs = ("users", "licenses") if args.job == "all" else (args.job,)
    reports = run_once(config, dry_run=args.dry_run, jobs=jobs)
    return print_reports(reports, as_json=args.json)


def print_reports(reports, *, as_json: bool, out=None) -> int:
    """The reports as text (or one JSON object); returns the worst exit code among them."""
    out = out or sys.stdout
    if as_json:
        write_json(reports, out)
    else:
        for report in reports:
            print(render_text(report), file=out)
    return max((r.exit_code() for r in reports), default=exit_codes.OK)
