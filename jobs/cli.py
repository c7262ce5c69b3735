"""The command line: one entry point, ``webitel-creatio-sync`` (also ``python -m jobs``).

Each command is a ``cmd_*`` function in its module of ``jobs.commands``, bound to its sub-command
with ``set_defaults(func=...)``; this module only parses arguments, sets up logging and turns
errors into exit codes through one table (0 in sync, 1 failed, 2 bad usage or config, 3
conflicts, 130 interrupted). Whatever else goes wrong is one line on the terminal and a full
trace in a file, never a traceback in the administrator's face.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from connector.errors import AuthError, ConfigError, Refused, SyncError

from jobs import exit_codes
from jobs.commands.check import cmd_check
from jobs.commands.demo import cmd_demo, cmd_sandbox
from jobs.commands.history import cmd_history
from jobs.commands.license import cmd_license, cmd_license_upload
from jobs.commands.licenses import cmd_licenses
from jobs.commands.resolve import cmd_ignore, cmd_link, cmd_unignore
from jobs.commands.run import cmd_run
from jobs.commands.serve import cmd_serve
from jobs.report import fit

log = logging.getLogger("wcsync")

# What an error means to the person at the terminal: (type, prefix of the one-line message, exit
# code). The first row whose type matches wins, so the more specific types come first.
FAILURES: tuple[tuple[type[BaseException], str, int], ...] = (
    (ConfigError, "configuration error", exit_codes.USAGE),
    (Refused, "refused", exit_codes.FAILED),
    (AuthError, "not authorised", exit_codes.FAILED),
    (SyncError, "failed", exit_codes.FAILED),
    (KeyboardInterrupt, "interrupted", exit_codes.INTERRUPTED),
)

EXAMPLES = """\
examples (each command also has --help):
  demo                          sandbox servers, sample data, one sync
  --config prod.toml check      reach both systems, verify the Creatio model
  run --dry-run                 what a sync would change, writing nothing
  run --job users --json        the users import, its report as JSON
  history                       recent runs; history RUN_ID for one run
  licenses --users              who holds which licence

exit codes: 0 in sync, 1 failed (or refused by a safety cap), 2 bad usage
or configuration, 3 finished with conflicts left for an administrator,
130 interrupted (Ctrl-C).
"""


def _program_version() -> str:
    try:
        return version("webitel-creatio-sync")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _global_options(parser: argparse.ArgumentParser, *, top: bool, log_format: bool = True) -> None:
    """``--config``, ``--log-level``, ``--log-format``: accepted before the command and after it.

    On a sub-command they default to ``SUPPRESS``, so a value given there wins over one given
    before the command, and one not given there leaves the top-level value alone.
    """
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument("--config", metavar="FILE", default=default(None),
                        help="the config file (default: $WCSYNC_CONFIG, else ./config.toml)")
    parser.add_argument(
        "--log-level",
        default=default("WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        metavar="LEVEL",
        help="how much to log on standard error: DEBUG, INFO, WARNING (default) or ERROR",
    )
    if log_format:
        parser.add_argument(
            "--log-format",
            default=default(None),
            choices=["text", "json"],
            metavar="FORMAT",
            help="log lines as text or json (default text; serve: text on a terminal, JSON otherwise)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webitel-creatio-sync",
        description="Keep Webitel telephony users, extensions and licences in step with Creatio.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_program_version()}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func, help: str, *, log_format: bool = True, epilog: str | None = None):
        cmd = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _global_options(cmd, top=False, log_format=log_format)
        cmd.set_defaults(func=func)
        return cmd

    run = command(
        "run",
        cmd_run,
        "run one sync cycle now (users, then licences)",
        epilog=("examples:\n  run --dry-run\n  run --job licenses --json\n  run --allow-deactivations 38"),
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    run.add_argument("--json", action="store_true", help="print the run report as one JSON object")
    run.add_argument(
        "--job",
        choices=["users", "licenses", "all"],
        default="all",
        help="run one job only (default all: users, then licences)",
    )
    run.add_argument("--full", action="store_true",
                     help="read everything (and catch deletions) even when an incremental cycle is due")
    run.add_argument("--user", metavar="USER",
                     help="sync one Webitel user (username or id) now, both directions, with a trace")
    run.add_argument(
        "--allow-deactivations",
        type=_count,
        default=0,
        metavar="N",
        help="approve this run's deactivations and deletions up to N, over the cap",
    )
    run.add_argument(
        "--allow-revocations",
        type=_count,
        default=0,
        metavar="N",
        help="approve this run's licence revocations up to N, over the cap",
    )

    serve = command(
        "serve", cmd_serve, "run the scheduled worker until stopped (SIGTERM or Ctrl-C)", log_format=False
    )
    serve.add_argument(
        "--log-format",
        dest="serve_log_format",
        choices=["auto", "text", "json"],
        default="auto",
        help="log line format of the worker (default auto: text on a terminal, JSON otherwise)",
    )

    check = command(
        "check",
        cmd_check,
        "validate the config and reach both systems",
        epilog="examples:\n  check\n  check --offline\n  check --discover >> config.toml\n"
        "  check --discover --write objects.toml",
    )
    check.add_argument("--offline", action="store_true", help="only validate the config file; reach nothing")
    check.add_argument(
        "--discover",
        action="store_true",
        help="guess the site's Webitel objects from its $metadata; print them as a [creatio.objects] block",
    )
    check.add_argument("--write", metavar="FILE", help="with --discover: write the block to FILE instead")
    check.add_argument("--force", action="store_true", help="with --write: overwrite FILE if it exists")

    licenses = command(
        "licenses",
        cmd_licenses,
        "the Webitel licence registry, expiring licences flagged",
        epilog="examples:\n  licenses\n  licenses --users --search ann\n  licenses --product CHAT",
    )
    licenses.add_argument("--json", action="store_true", help="print the rows as JSON (full values)")
    licenses.add_argument("--users", action="store_true", help="the user x licence matrix instead")
    licenses.add_argument("--product", help="only licences of this product (e.g. CHAT)")
    licenses.add_argument("--search", help="with --users: only users whose name or username contains this")

    license_cmd = command(
        "license",
        cmd_license,
        "grant or remove one licence, mirrored to Creatio",
        epilog="examples:\n  license assign ann.lee CHAT\n  license revoke ann.lee 3f2a9c",
    )
    license_cmd.add_argument("action", choices=["assign", "revoke"], help="assign or revoke")
    license_cmd.add_argument("user", help="the Webitel username")
    license_cmd.add_argument(
        "license",
        help="a licence serial (a unique prefix is enough), or a product with exactly one licence that fits",
    )

    upload = command(
        "license-upload",
        cmd_license_upload,
        "upload a licence key to Webitel",
        epilog="examples:\n  license-upload --file key.txt\n  license-upload - < key.txt",
    )
    upload.add_argument("key", nargs="?", help="the key, or - to read it from standard input")
    upload.add_argument("--file", help="read the key from this file")

    history = command(
        "history",
        cmd_history,
        "recent runs, one run's events, or one user's story",
        epilog="examples:\n  history\n  history 3f2a9c1b\n  history --object ann.lee\n"
        "  history --object 1043 --json",
    )
    history.add_argument("run_id", nargs="?", help="show this run's events (a unique prefix of 6 or more)")
    history.add_argument("--limit", type=_count, default=20, help="how many runs or events (default 20)")
    history.add_argument("--json", action="store_true", help="print as JSON")
    history.add_argument(
        "--object",
        metavar="USER_OR_KEY",
        help="one user's story across runs: a Webitel username or id, or an event key",
    )

    link = command("link", cmd_link, "link a Webitel user to a Creatio contact (resolves an ambiguous match)",
                   epilog="examples:\n  link ann.lee \"Ann Lee\"\n"
                          "  link 1043 0f8e6c2a-1b7d-4c5e-9a3f-2d1e0c9b8a76")
    link.add_argument("user", help="the Webitel username or id")
    link.add_argument("contact", help="a Contact Id, or a name that exactly one contact has")
    link.add_argument("--json", action="store_true", help="print the result as JSON")
    ignore = command(
        "ignore",
        cmd_ignore,
        "accept a user's conflicts as they are now, with a reason",
        epilog='example:\n  ignore ann.lee --reason "shared desk phone, agreed with IT"',
    )
    ignore.add_argument("user", help="the Webitel username or id")
    ignore.add_argument(
        "--reason", required=True, help="why the conflict is accepted (shown in later reports)"
    )
    ignore.add_argument("--json", action="store_true", help="print the result as JSON")
    unignore = command(
        "unignore", cmd_unignore, "take a link or an ignore back", epilog="example:\n  unignore ann.lee"
    )
    unignore.add_argument("user", help="the Webitel username or id")
    unignore.add_argument("--json", action="store_true", help="print the result as JSON")

    demo = command("demo", cmd_demo, "start the sandbox with sample data and run a sync against it")
    demo.add_argument("--users", type=_count, default=300, help="Webitel users to generate (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    demo.add_argument("--json", action="store_true", help="print the run reports as JSON")
    demo.add_argument(
        "--creatio-model",
        choices=["default", "wsysaccount"],
        default="default",
        help="the sandbox Creatio's Webitel objects: default (WebitelUser...) or wsysaccount (WSysAccount)",
    )
    demo.add_argument(
        "--console",
        nargs="?",
        type=_count,
        const=0,
        default=None,
        metavar="PORT",
        help="then keep the sandbox running and serve the web console on 127.0.0.1:PORT "
        "(default: a free port) until Ctrl-C",
    )

    sandbox = command(
        "sandbox",
        cmd_sandbox,
        "serve the sandbox Webitel and Creatio servers for exploring",
        epilog="example:\n  sandbox --config-out sandbox.toml",
    )
    sandbox.add_argument("--users", type=_count, default=300, help="Webitel users to generate (default 300)")
    sandbox.add_argument("--seed", type=int, default=7, help="seed of the generated data (default 7)")
    sandbox.add_argument("--config-out", metavar="PATH", help="write a config pointing at the sandbox here")
    sandbox.add_argument("--latency-ms", type=_count, default=0, help="delay each answer by N ms (default 0)")
    sandbox.add_argument(
        "--webitel-port", type=int, default=0, help="port of the Webitel server (default: free)"
    )
    sandbox.add_argument(
        "--creatio-port", type=int, default=0, help="port of the Creatio server (default: free)"
    )
    sandbox.add_argument(
        "--creatio-model",
        choices=["default", "wsysaccount"],
        default="default",
        help="the sandbox Creatio's Webitel objects: default (WebitelUser...) or wsysaccount (WSysAccount)",
    )
    sandbox.add_argument(
        "--odata-path",
        choices=["/0/odata", "/odata"],
        default="/0/odata",
        help="where the sandbox Creatio serves OData 4: /0/odata (.NET Framework, default) or /odata "
        "(.NET 8)",
    )
    return parser


def _count(text: str) -> int:
    """A whole number of 0 or more (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help and --version
        return int(exc.code or 0)
    from jobs.logs import setup_logging
    from jobs.memory import tune_allocator

    tune_allocator()
    setup_logging(args.log_level, getattr(args, "log_format", None) or "text")
    try:
        return args.func(args)
    except (SyncError, KeyboardInterrupt) as exc:
        for kind, prefix, code in FAILURES:
            if isinstance(exc, kind):
                print(fit(f"{prefix}: {exc}" if str(exc) else prefix, more="  "), file=sys.stderr)
                return code
        raise
    except BrokenPipeError:  # `history | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_codes.OK
    except Exception as exc:  # a bug: one line here, the whole trace in a file
        where = _crash_report(exc)
        text = f"internal error: {type(exc).__name__}: {_scrubbed(str(exc))[:300]} (full trace in {where}; "
        print(fit(text + "please report it)", more="  "), file=sys.stderr)
        return exit_codes.FAILED


def _scrubbed(text: str) -> str:
    from jobs.logs import scrub

    return scrub(text)


def _crash_report(exc: BaseException) -> str:
    """Write the trace of an unexpected error (secrets scrubbed) to a file of its own; its path."""
    text = _scrubbed("".join(traceback.format_exception(exc)))
    name = f"webitel-creatio-sync-crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    path = os.path.join(tempfile.gettempdir(), name)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        log.error("internal error:\n%s", text)
        return "the log (standard error)"
    return path
