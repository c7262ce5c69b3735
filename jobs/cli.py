"""The command line: one entry point, ``webitel-creatio-sync`` (also ``python -m jobs``).

Each command is a ``cmd_*`` function in its module of ``jobs.commands``, bound to its sub-command
with ``set_defaults(func=...)``; this module only parses arguments, sets up logging and turns
errors into exit codes through one table (0 in sync, 1 failed, 2 bad usage or config, 3 conflicts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from connector.errors import AuthError, ConfigError, Refused, SyncError

from jobs import exit_codes
from jobs.commands.check import cmd_check
from jobs.commands.demo import cmd_demo, cmd_sandbox
from jobs.commands.history import cmd_history
from jobs.commands.license import cmd_license, cmd_license_upload
from jobs.commands.licenses import cmd_licenses
from jobs.commands.run import cmd_run
from jobs.commands.serve import cmd_serve

log = logging.getLogger("wcsync")

# What an error means to the person at the terminal: (type, prefix of the one-line message, exit
# code). The first row whose type matches wins, so the more specific types come first.
FAILURES: tuple[tuple[type[BaseException], str, int], ...] = (
    (ConfigError, "configuration error", exit_codes.USAGE),
    (Refused, "refused", exit_codes.FAILED),
    (AuthError, "not authorised", exit_codes.FAILED),
    (SyncError, "failed", exit_codes.FAILED),
    (KeyboardInterrupt, "interrupted", exit_codes.FAILED),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webitel-creatio-sync",
        description="Keep Webitel telephony users, extensions and licences in step with Creatio.",
        epilog="Exit codes: 0 in sync, 1 failed, 2 bad usage or configuration, "
        "3 conflicts left for an admin.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: $WCSYNC_CONFIG or ./config.toml)"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default WARNING)",
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="log line format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run one sync cycle now (users, then licences)")
    run.set_defaults(func=cmd_run)
    run.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    run.add_argument("--json", action="store_true", help="print the run report as one JSON object")
    run.add_argument("--job", choices=["users", "licenses", "all"], default="all", help="run one job only")

    serve = sub.add_parser("serve", help="run the scheduled worker until stopped (SIGTERM or Ctrl-C)")
    serve.set_defaults(func=cmd_serve)
    serve.add_argument(
        "--log-format",
        dest="serve_log_format",
        choices=["auto", "text", "json"],
        default="auto",
        help="log line format of the worker (default auto: text on a terminal, "
        "JSON otherwise, unless --log-format json comes before the command)",
    )
    check = sub.add_parser("check", help="validate the config and reach both systems")
    check.set_defaults(func=cmd_check)
    check.add_argument("--offline", action="store_true", help="only validate the config file")

    licenses = sub.add_parser("licenses", help="the Webitel licence registry")
    licenses.set_defaults(func=cmd_licenses)
    licenses.add_argument("--json", action="store_true")
    licenses.add_argument("--users", action="store_true", help="the user x licence matrix instead")
    licenses.add_argument("--product", help="only this product")
    licenses.add_argument("--search", help="only users whose name or username contains this")

    license_cmd = sub.add_parser("license", help="grant or remove one licence")
    license_cmd.set_defaults(func=cmd_license)
    license_cmd.add_argument("action", choices=["assign", "revoke"])
    license_cmd.add_argument("user", help="Webitel username")
    license_cmd.add_argument("license", help="licence serial, or a product with exactly one valid licence")

    upload = sub.add_parser("license-upload", help="upload a licence key to Webitel")
    upload.set_defaults(func=cmd_license_upload)
    upload.add_argument("key", nargs="?", help="the key, or - to read it from standard input")
    upload.add_argument("--file", help="read the key from this file")

    history = sub.add_parser("history", help="recent runs, or one run's per-object events")
    history.set_defaults(func=cmd_history)
    history.add_argument("run_id", nargs="?", help="show this run's events (a unique prefix is enough)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    history.add_argument("--object", help="every event of one object key across runs")

    demo = sub.add_parser("demo", help="start the sandbox with sample data and run a sync against it")
    demo.set_defaults(func=cmd_demo)
    demo.add_argument("--users", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true")

    sandbox = sub.add_parser("sandbox", help="serve the sandbox Webitel and Creatio servers for exploring")
    sandbox.set_defaults(func=cmd_sandbox)
    sandbox.add_argument("--users", type=int, default=300)
    sandbox.add_argument("--seed", type=int, default=7)
    sandbox.add_argument("--config-out", metavar="PATH", help="write a config pointing at the sandbox here")
    sandbox.add_argument("--webitel-port", type=int, default=0)
    sandbox.add_argument("--creatio-port", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    from jobs.logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except (SyncError, KeyboardInterrupt) as exc:
        for kind, prefix, code in FAILURES:
            if isinstance(exc, kind):
                print(f"{prefix}: {exc}" if str(exc) else prefix, file=sys.stderr)
                return code
        raise
