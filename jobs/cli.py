"""The command line: one entry point, ``webitel-creatio-sync`` (also ``python -m jobs``).

Each command is a small function in ``jobs.commands``; this module only parses arguments, sets up
logging and turns errors into exit codes (0 in sync, 1 failed, 2 bad usage or config, 3 conflicts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from connector.errors import AuthError, ConfigError, ConnectorError, GuardTripped, SyncError

from . import exit_codes

log = logging.getLogger("wcsync")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webitel-creatio-sync",
        description="Keep Webitel telephony users, extensions and licences in step with Creatio.",
        epilog="Exit codes: 0 in sync, 1 failed, 2 bad usage or configuration, 3 conflicts left for an admin.")
    parser.add_argument("--config", metavar="FILE", help="config file (default: $WCSYNC_CONFIG or ./config.toml)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log verbosity (default WARNING)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="log line format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run one sync cycle now (users, then licences)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    run.add_argument("--json", action="store_true", help="print the run report as one JSON object")
    run.add_argument("--job", choices=["users", "licenses", "all"], default="all", help="run one job only")

    serve = sub.add_parser("serve", help="run the scheduled worker until stopped (SIGTERM or Ctrl-C)")
    serve.add_argument("--log-format", dest="serve_log_format", choices=["auto", "text", "json"],
                       default="auto", help="log line format of the worker (default auto: text on a terminal, "
                                            "JSON otherwise, unless --log-format json comes before the command)")
    check = sub.add_parser("check", help="validate the config and reach both systems")
    check.add_argument("--offline", action="store_true", help="only validate the config file")

    licenses = sub.add_parser("licenses", help="the Webitel licence registry")
    licenses.add_argument("--json", action="store_true")
    licenses.add_argument("--users", action="store_true", help="the user x licence matrix instead")
    licenses.add_argument("--product", help="only this product")
    licenses.add_argument("--search", help="only users whose name or username contains this")

    license_cmd = sub.add_parser("license", help="grant or remove one licence")
    license_cmd.add_argument("action", choices=["assign", "revoke"])
    license_cmd.add_argument("user", help="Webitel username")
    license_cmd.add_argument("license", help="licence serial, or a product with exactly one valid licence")

    upload = sub.add_parser("license-upload", help="upload a licence key to Webitel")
    upload.add_argument("key", nargs="?", help="the key, or - to read it from standard input")
    upload.add_argument("--file", help="read the key from this file")

    history = sub.add_parser("history", help="recent runs, or one run's per-object events")
    history.add_argument("run_id", nargs="?", help="show this run's events (a unique prefix is enough)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    history.add_argument("--object", help="every event of one object key across runs")

    demo = sub.add_parser("demo", help="start the sandbox with sample data and run a sync against it")
    demo.add_argument("--users", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true")

    sandbox = sub.add_parser("sandbox", help="serve the sandbox Webitel and Creatio servers for exploring")
    sandbox.add_argument("--users", type=int, default=300)
    sandbox.add_argument("--seed", type=int, default=7)
    sandbox.add_argument("--config-out", metavar="PATH", help="write a config pointing at the sandbox here")
    sandbox.add_argument("--webitel-port", type=int, default=0)
    sandbox.add_argument("--creatio-port", type=int, default=0)
    return parser


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function behind a command: ``cmd_<name>`` in ``jobs.commands``."""
    from . import commands

    return getattr(commands, "cmd_" + name.replace("-", "_"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    from .logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    command = _command(args.command)
    try:
        return command(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    except GuardTripped as exc:
        print(f"stopped by a safety guard: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    except AuthError as exc:
        print(f"not authorised: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    except ConnectorError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    except SyncError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_codes.FAILED
