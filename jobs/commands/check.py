"""``check``: the configuration is valid, both systems answer with these credentials, the Webitel
token may list users and licences, and every Creatio object and column of the profile exists."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, TextIO

from connector.errors import ConnectorError, StateError

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.report import Fitted
from jobs.sync.recording import utcnow
from jobs.wiring import creatio_client, webitel_client


def run_check(config: AppConfig, *, out: TextIO, webitel=None, creatio=None) -> int:
    """Run every check, print one line each, and return 0 (all passed) or 1."""
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    failures = 0

    def step(label: str, probe: Callable[[], str]) -> None:
        nonlocal failures
        try:
            detail = probe()
        except (ConnectorError, StateError) as exc:
            failures += 1
            print(f"FAIL  {label}: {exc}", file=out)
        else:
            print(f"ok    {label}{': ' + detail if detail else ''}", file=out)

    print("ok    configuration is valid", file=out)
    step(f"state store {config.state.url}", lambda: probe_state(config))
    step(f"Webitel reachable at {config.webitel.url}", lambda: _whoami(webitel))
    step("Webitel token may list users", lambda: _first_page(webitel.iter_users(page_size=1), "user"))
    step(
        "Webitel token may list licences", lambda: _first_page(webitel.iter_licenses(page_size=1), "licence")
    )
    step(
        f"Creatio reachable at {config.creatio.url} ({config.creatio.auth} auth)",
        lambda: f"{creatio.count('Contact')} contacts",
    )
    model = config.creatio.objects

    def objects() -> str:
        missing = creatio.missing_columns(model)
        if missing:
            raise ConnectorError("missing in $metadata: " + ", ".join(missing), system="creatio")
        return f"profile {model.profile!r}: all objects and columns present"

    step("Creatio object model", objects)
    return exit_codes.OK if failures == 0 else exit_codes.FAILED


def probe_state(config) -> str:
    """Open the state store (driver, reachable, schema) and write one value to prove it writable.

    Raises:
        StateError: what is wrong with it, in one line.
    """
    from jobs.state import StateStore

    with StateStore.open(config.state.url) as store:
        store.set_value("check.last_written", utcnow().isoformat(), now=utcnow())
        runs = len(store.recent_runs(1000))
        more = "+" if runs == 1000 else ""
        return f"schema version {store.schema_version}, writable, {runs}{more} runs recorded"


def _whoami(webitel) -> str:
    info = webitel.userinfo()
    return f"signed in as {info.get('username', '?')} in domain {info.get('domain', '?')}"


def _first_page(items, what: str) -> str:
    for _ in items:
        return f"at least one {what} visible"
    return f"no {what} visible (the list is empty)"


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config; unless ``--offline``, reach both systems and verify the Creatio model."""
    from jobs.config import config_path

    config = config_of(args)
    if args.offline:
        out = Fitted(sys.stdout)
        print(f"{config_path(args.config)}: configuration is valid", file=out)
        try:
            print(f"ok    state store {config.state.url}: {probe_state(config)}", file=out)
        except StateError as exc:
            print(f"FAIL  {exc}", file=out)
            return exit_codes.FAILED
        finally:
            out.flush()
        return exit_codes.OK
    return run_check(config, out=Fitted(sys.stdout))
