"""``serve``: the scheduled worker, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import sys

from jobs.commands import config_of
from jobs.logs import setup_logging


def cmd_serve(args: argparse.Namespace) -> int:
    """The scheduled worker: runs each job on its ``[schedule]`` until SIGTERM or SIGINT."""
    from jobs.worker.service import serve

    config = config_of(args)
    fmt = args.serve_log_format
    if fmt == "auto":
        # Under systemd or Docker stderr is no terminal: JSON lines are what log shippers read.
        fmt = args.log_format or ("text" if sys.stderr.isatty() else "json")
    setup_logging(args.log_level, fmt)
    return serve(config)
