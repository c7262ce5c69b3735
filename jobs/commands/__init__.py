"""The commands behind the command line, one module per family.

Each ``cmd_*`` function takes the parsed arguments and returns an exit code; ``jobs.cli`` binds
them to their sub-commands with ``set_defaults(func=...)`` and turns errors into exit codes.
"""

from __future__ import annotations

import argparse

from jobs.config import AppConfig, config_path, load_config


def config_of(args: argparse.Namespace) -> AppConfig:
    """The configuration named by ``--config`` (or ``$WCSYNC_CONFIG``, or ``./config.toml``)."""
    return load_config(config_path(args.config))
