"""The commands behind the command line. Each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import sys

from connector.errors import ConfigError

from . import exit_codes
from .config import AppConfig, config_path, load_config


def _config(args: argparse.Namespace) -> AppConfig:
    return load_config(config_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config; unless ``--offline``, reach both systems and verify the Creatio model."""
    from .check import run_check

    config = _config(args)
    if args.offline:
        print(f"{config_path(args.config)}: configuration is valid")
        return exit_codes.OK
    return run_check(config, out=sys.stdout)


def cmd_run(args: argparse.Namespace) -> int:
    """One sync cycle now (``--dry-run``: the plan only)."""
    from .sync import run_once

    config = _config(args)
    jobs = ("users", "licenses") if args.job == "all" else (args.job,)
    reports = run_once(config, dry_run=args.dry_run, jobs=jobs)
    return _print_reports(reports, as_json=args.json)


def _print_reports(reports, *, as_json: bool) -> int:
    from .report import render_text

    if as_json:
        from .report import write_json

        write_json(reports, sys.stdout)
    else:
        for report in reports:
            print(render_text(report))
    return max((r.exit_code() for r in reports), default=exit_codes.OK)


def cmd_serve(args: argparse.Namespace) -> int:
    """The scheduled worker: runs each job on its ``[schedule]`` until SIGTERM or SIGINT."""
    from .logs import setup_logging
    from .serve import serve

    config = _config(args)
    fmt = args.serve_log_format
    if fmt == "auto":
        # Under systemd or Docker stderr is no terminal: JSON lines are what log shippers read.
        fmt = "json" if args.log_format == "json" or not sys.stderr.isatty() else "text"
    setup_logging(args.log_level, fmt)
    return serve(config)


def cmd_history(args: argparse.Namespace) -> int:
    """Recent runs, one run's events, or one object's events across runs."""
    from .history import show_history

    config = _config(args)
    return show_history(config, run_id=args.run_id, limit=args.limit, as_json=args.json, key=args.object,
                        out=sys.stdout)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox with sample data, run the import against it, explain what happened."""
    from .demo import run_demo

    return run_demo(users=args.users, seed=args.seed, as_json=args.json, out=sys.stdout)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve the sandbox until Ctrl-C or SIGTERM, with a ready config pointing at it."""
    from .demo import serve_sandbox

    if args.users < 0:
        raise ConfigError("--users must be 0 or more")
    return serve_sandbox(users=args.users, seed=args.seed, config_out=args.config_out,
                         webitel_port=args.webitel_port, creatio_port=args.creatio_port, out=sys.stdout)


def cmd_licenses(args: argparse.Namespace) -> int:
    """The Webitel licence registry, or (``--users``) the user x licence matrix."""
    from .license_view import show_licenses

    return show_licenses(_config(args), users=args.users, product=args.product, search=args.search,
                         as_json=args.json, out=sys.stdout)


def cmd_license_upload(args: argparse.Namespace) -> int:
    """Upload a licence key (argument, ``-`` for standard input, or ``--file``)."""
    from .license_admin import read_key, upload_key

    config = _config(args)
    return upload_key(config, read_key(args.key, args.file), out=sys.stdout)


def cmd_license(args: argparse.Namespace) -> int:
    """``license assign|revoke USER LICENSE``."""
    from .license_admin import Refused, change_grant

    config = _config(args)
    try:
        return change_grant(config, args.action, args.user, args.license, out=sys.stdout)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return exit_codes.FAILED
