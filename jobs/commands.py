"""The commands behind the command line. Each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import sys

from . import exit_codes
from .config import config_path, load_config

# Commands whose issue is still open answer "not available yet" and exit 2.
PENDING = {
    "run": "issue 4 (GetWebitelUsers import)",
    "serve": "issue 6 (scheduled worker)",
    "check": "issue 2",
    "licenses": "issue 5 (licences)",
    "license": "issue 5 (licences)",
    "license-upload": "issue 5 (licences)",
    "history": "issue 4 (state store)",
    "demo": "issue 4 (demo)",
    "sandbox": "issue 3 (sandbox)",
}


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config; unless ``--offline``, reach both systems and verify the Creatio model."""
    from .check import run_check

    config = load_config(config_path(args.config))
    if args.offline:
        print(f"{config_path(args.config)}: configuration is valid")
        return exit_codes.OK
    return run_check(config, out=sys.stdout)
