"""``demo`` and ``sandbox``: the first thing a new user sees, and a sandbox to explore by hand."""

from __future__ import annotations

import argparse
import sys
import signal
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from jobs import exit_codes
from connector.errors import ConfigError

from jobs.config import load_config
from jobs.report import Fitted, render_text, write_json

EXPLAIN = """
What you are looking at
  Two sandbox servers on this machine play Webitel ({webitel}) and Creatio ({creatio}),
  seeded with {users} telephony users and a CRM with contacts, system users and an account.
  The import just did what Creatio's GetWebitelUsers process does, safely:
  - each Webitel user was matched to a Creatio contact (system-user login, then contact name =
    username, then contact name = display name) or a contact was created under the account;
  - a Webitel-user record links each user to its contact, with the extension;
  - conflicts were reported and NOT written: an ambiguous name ({ambiguous}), an extension that a
    Creatio-only record already holds ({clash}); {noext}
  - {licences}
  Run it again and nothing changes. To explore by hand: `webitel-creatio-sync sandbox --config-out
  sandbox.toml`, then `webitel-creatio-sync --config sandbox.toml run --dry-run`, `licenses`, `history`.
"""

# What differs between the sandbox Creatio's two object models.
MODEL_PARTS = {
    "default": {
        "noext": "a user without extension ({users}) was imported\n    with a warning, because it "
                 "cannot register a SIP phone;",
        "licences": "the licence job then pushed Webitel's licence catalog to Creatio and mirrored every "
                    "grant as a\n    \"User Licenses\" row; from now on a grant added or removed on "
                    "either side reaches the other.",
    },
    "wsysaccount": {
        "noext": "a user without extension ({users}) got no\n    row: the WSysAccount Login (the "
                 "extension) is required, so it is reported instead;",
        "licences": "this Creatio has the older WebitelCollaborations objects (WSysAccount: Login = "
                    "the\n    extension), without licence objects: the licence job only says licences "
                    "are not synchronised.\n    An administrator finds this profile with `check` (it names "
                    "the line to set) or `check\n    --discover` (it prints the [creatio.objects] "
                    "block): `sandbox --creatio-model wsysaccount`.",
    },
}


def run_demo(*, users: int, seed: int, as_json: bool, out: TextIO, creatio_model: str = "default",
             console: int | None = None) -> int:
    """Start the sandbox in-process, run the import, print the report, exit 0.

    Args:
        creatio_model: the sandbox Creatio's objects, ``"default"`` or ``"wsysaccount"``; the
            demo's configuration names the matching profile itself (an administrator would find it
            with ``check``).
        console: with a port (0: any free one), keep the sandbox up and serve the web console on
            it until Ctrl-C or SIGTERM, for exploring.
    """
    from sandbox.harness import start_sandbox

    from jobs.progress import Progress
    from jobs.sync.cycle import run_once

    with (tempfile.TemporaryDirectory(prefix="wcsync-demo-") as folder,
          start_sandbox(users, seed=seed, creatio_model=creatio_model) as box):
        data = box.config(state_url=f"sqlite:///{Path(folder) / 'state.sqlite'}")
        data["creatio"]["objects"] = {"profile": creatio_model}
        config = load_config(data=data)
        reports = run_once(config, progress=Progress(enabled=False if as_json else None))
        if as_json:
            write_json(reports, out)
        else:
            for report in reports:
                print(render_text(report, limit=8), file=out)
            notes = box.data.notes
            parts = MODEL_PARTS[creatio_model]
            print(
                EXPLAIN.format(
                    webitel=box.webitel_server_url,
                    creatio=box.creatio_url,
                    users=users,
                    ambiguous=", ".join(notes.get("ambiguous_usernames", [])[:2]) or "none",
                    clash=", ".join(notes.get("clashing_extensions", [])[:2]) or "none",
                    noext=parts["noext"].format(
                        users=", ".join(notes.get("no_extension_usernames", [])[:2]) or "none"),
                    licences=parts["licences"],
                ),
                file=out,
            )
        if console is not None:
            from jobs.worker.console.local import serve_console

            # The sandbox stays up while the console serves (until Ctrl-C or SIGTERM): the runs
            # started from the console go to this sandbox and this state store.
            serve_console(config, out=sys.stderr if as_json else out, port=console)
    # Conflicts are part of the show: the demo succeeded if the run finished.
    return exit_codes.OK if all(r.outcome != "failed" for r in reports) else exit_codes.FAILED


def serve_sandbox(
    *, users: int, seed: int, config_out: str | None, webitel_port: int, creatio_port: int, out: TextIO,
    creatio_model: str = "default", odata_path: str = "/0/odata", latency_ms: int = 0,
) -> int:
    """Serve both sandbox servers until Ctrl-C or SIGTERM; print (or write) a config pointing at them.

    The config holds the plain server addresses and no ``[creatio.objects]``: the connector finds
    the API and OData roots, and on the ``wsysaccount`` model ``check`` names the profile to set,
    as on a real site. ``latency_ms`` delays every answer of both servers, as the distance to a
    real site does (a cloud Creatio is some tens of milliseconds away), to watch parallel
    requests at work.
    """
    from sandbox.faults import Faults
    from sandbox.harness import start_sandbox

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    faults = Faults(latency_ms=latency_ms) if latency_ms else None
    with start_sandbox(users, seed=seed, webitel_port=webitel_port, creatio_port=creatio_port,
                       creatio_model=creatio_model, creatio_options={"odata_path": odata_path},
                       faults_webitel=faults, faults_creatio=faults) as box:
        creds = box.data.credentials
        text = box.config_toml(state_url="sqlite:///.wcsync/sandbox-state.sqlite")
        print(
            f"Webitel sandbox: {box.webitel_server_url}  (token {creds.webitel_token}, or "
            f"{creds.webitel_username} / {creds.webitel_password} in domain {box.data.domain})",
            file=out,
        )
        print(
            f"Creatio sandbox: {box.creatio_url}  ({creds.creatio_username} / {creds.creatio_password}; "
            f"OAuth client {creds.creatio_client_id}; {creatio_model} objects, OData 4 at {odata_path})",
            file=out,
        )
        if latency_ms:
            print(f"every answer of both servers is delayed by {latency_ms} ms", file=out)
        if config_out:
            Path(config_out).write_text(text, encoding="utf-8")
            Path(config_out).chmod(0o600)  # it holds credentials (the sandbox's, but a habit to keep)
            print(
                f"config written to {config_out}; "
                f"try: webitel-creatio-sync --config {config_out} run --dry-run",
                file=out,
            )
        else:
            print("\n" + text, file=out)
        print("serving until Ctrl-C", file=out, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return exit_codes.OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox with sample data, run the import against it, explain what happened."""
    out = sys.stdout if args.json else Fitted(sys.stdout)
    try:
        return run_demo(users=args.users, seed=args.seed, as_json=args.json, out=out,
                        creatio_model=getattr(args, "creatio_model", "default"),
                        console=getattr(args, "console", None))
    finally:
        out.flush()


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve the sandbox until Ctrl-C or SIGTERM, with a ready config pointing at it."""
    if args.users < 0:
        raise ConfigError("--users must be 0 or more")
    return serve_sandbox(
        users=args.users,
        seed=args.seed,
        config_out=args.config_out,
        webitel_port=args.webitel_port,
        creatio_port=args.creatio_port,
        out=Fitted(sys.stdout),
        creatio_model=getattr(args, "creatio_model", "default"),
        odata_path=getattr(args, "odata_path", "/0/odata"),
        latency_ms=getattr(args, "latency_ms", 0),
    )
