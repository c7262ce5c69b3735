"""``link``, ``ignore``, ``unignore``: an administrator resolves a conflict from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import config_path, load_state_config
from jobs.report import Fitted


def _who() -> str:
    """Who resolved it, for the history: the operating-system user running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (a container without a passwd entry)
        return "cli"


def _say(args: argparse.Namespace, result: dict, text: str) -> int:
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        out = Fitted(sys.stdout)
        print(text, file=out)
        out.flush()
    return exit_codes.OK


def cmd_link(args: argparse.Namespace) -> int:
    """``link USER CONTACT``: the next run links that user to that contact."""
    from jobs.sync.resolutions import link_user

    result = link_user(config_of(args), args.user, args.contact, who=_who())
    return _say(args, result, f"{result['user']} will be linked to contact {result['contact']!r} "
                              f"({result['contact_id']}) by the next run.")


def cmd_ignore(args: argparse.Namespace) -> int:
    """``ignore USER --reason TEXT``: accept the user's conflicts as they are now."""
    from jobs.sync.resolutions import ignore_user

    result = ignore_user(
        load_state_config(config_path(args.config)), args.user, reason=args.reason, who=_who()
    )
    return _say(
        args,
        result,
        f"{result['user']}: {', '.join(result['conflicts'])} accepted ({result['reason']}); "
        "later reports list them as ignored until they change.",
    )


def cmd_unignore(args: argparse.Namespace) -> int:
    """``unignore USER``: take a link or an ignore back."""
    from jobs.sync.resolutions import unignore_user

    result = unignore_user(load_state_config(config_path(args.config)), args.user, who=_who())
    return _say(
        args,
        result,
        f"{args.user}: resolution taken back; its conflicts count again from the next run.",
    )
