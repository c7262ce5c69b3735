"""``check``: the configuration is valid, both systems answer with these credentials, the Webitel
token may list users and licences, and every Creatio object and column of the profile exists.

When the configured objects are missing but a built-in profile fits the site, ``check`` names the
line to set; ``check --discover`` guesses the site's objects from its ``$metadata``
(``mappings.discovery``) and prints them as a ``[creatio.objects]`` block to confirm (or writes it
with ``--write FILE``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, TextIO

from connector.creatio.metadata import missing_columns
from connector.errors import ConfigError, ConnectorError, RecordError, StateError
from connector.webitel.models import WebitelUser
from mappings.discovery import discover, fitting_profiles, render_block
from mappings.profiles import PROFILES

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.report import Fitted
from jobs.sync.recording import utcnow
from jobs.wiring import creatio_client, webitel_client

# Decision: the first page of this many users is enough to show that users can be read (one
# request); an unreadable user there is named, not counted as one visible.
USERS_LOOKED_AT = 20


class ObjectsMissing(ConnectorError):
    """Configured Creatio objects or columns the site lacks, with what to do about it."""

    def __init__(self, message: str, *, hints: list[str]) -> None:
        super().__init__(message, system="creatio")
        self.hints = hints


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
            for hint in getattr(exc, "hints", ()):
                print(f"      {hint}", file=out)
        else:
            print(f"ok    {label}{': ' + detail if detail else ''}", file=out)

    print("ok    configuration is valid", file=out)
    step(f"state store {config.state.url}", lambda: probe_state(config))
    step(f"Webitel reachable at {config.webitel.url}", lambda: _whoami(webitel))
    step("Webitel token may list users", lambda: _readable_users(webitel))
    step(
        "Webitel token may list licences", lambda: _first_page(webitel.iter_licenses(page_size=1), "licence")
    )
    step(
        f"Creatio reachable at {config.creatio.url} ({config.creatio.auth} auth)",
        lambda: _contacts(config, creatio),
    )
    step("Creatio object model", lambda: _objects(config, creatio))
    return exit_codes.OK if failures == 0 else exit_codes.FAILED


def _contacts(config: AppConfig, creatio) -> str:
    contacts = f"{creatio.count('Contact')} contacts"
    if config.creatio.odata_path == "auto":
        return f"{contacts}, OData 4 at {creatio.odata_path}"
    return contacts


def _objects(config: AppConfig, creatio) -> str:
    """All objects and columns of the configured model are there; else what is missing and what
    would fit (a built-in profile, or ``check --discover``)."""
    model = config.creatio.objects
    site = creatio.site_metadata().names()
    missing = missing_columns(site, model)
    if not missing:
        return f"profile {model.profile!r}: all objects and columns present"
    # The configured model failed, so a profile that fits is another one, or this one without the
    # names the configuration lays over it.
    fits = fitting_profiles(site, PROFILES)
    if fits and fits[0] == model.profile:
        hint = (f'the built-in profile "{fits[0]}" fits this site as it is: remove the names under '
                "[creatio.objects] that override it")
    elif fits:
        hint = (f'the built-in profile "{fits[0]}" fits this site: set profile = "{fits[0]}" under '
                "[creatio.objects] (and drop any names there that override it)")
    else:
        hint = ("no built-in profile fits this site: `check --discover` guesses its objects and "
                "prints a [creatio.objects] block to confirm")
    raise ObjectsMissing("missing in $metadata: " + ", ".join(missing), hints=[hint])


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
        used = store.requests_on("creatio", utcnow().date())
        budget = getattr(getattr(config, "creatio", None), "daily_request_budget", None)
        today = f"{used} Creatio requests today (UTC)" + (f" of a budget of {budget}" if budget else "")
        return f"schema version {store.schema_version}, writable, {runs}{more} runs recorded; {today}"


def _whoami(webitel) -> str:
    info = webitel.userinfo()
    return f"signed in as {info.get('username', '?')} in domain {info.get('domain', '?')}"


def _readable_users(webitel) -> str:
    """At least one user of the first page can be read; an unreadable one is no user visible.

    Raises:
        ConnectorError: users are listed, but none of them can be read (naming the first).
    """
    unreadable: list[RecordError] = []
    for index, user in enumerate(webitel.iter_users(page_size=USERS_LOOKED_AT)):
        if isinstance(user, WebitelUser):
            return "at least one user visible"
        unreadable.append(user)
        if index + 1 >= USERS_LOOKED_AT:
            break
    if unreadable:
        raise ConnectorError(f"{len(unreadable)} users listed, none readable: {unreadable[0]}",
                             system="webitel")
    return "no user visible (the list is empty)"


def _first_page(items, what: str) -> str:
    for _ in items:
        return f"at least one {what} visible"
    return f"no {what} visible (the list is empty)"


def run_discover(config: AppConfig, *, out: TextIO, creatio=None, write: str | None = None,
                 force: bool = False) -> int:
    """Print (or write to ``write``) the ``[creatio.objects]`` block guessed from ``$metadata``.

    Raises:
        ConfigError: ``write`` names a file that exists and ``force`` is not set.
    """
    if write and os.path.exists(write) and not force:
        raise ConfigError(f"{write} exists; pass --force to overwrite it (nothing was written)")
    creatio = creatio or creatio_client(config)
    site = creatio.site_metadata()
    found = discover(site.entities, PROFILES)
    block = render_block(found, PROFILES, site=config.creatio.url)
    if write:
        with open(write, "w", encoding="utf-8") as handle:
            handle.write(block)
        print(f"wrote the [creatio.objects] block for {config.creatio.url} to {write}", file=sys.stderr)
    else:
        out.write(block)
    if found.user.entity is None:
        return exit_codes.FAILED
    return exit_codes.OK


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config; unless ``--offline``, reach both systems and verify the Creatio model;
    with ``--discover``, print the site's objects as a ``[creatio.objects]`` block instead."""
    from jobs.config import config_path

    if getattr(args, "write", None) and not getattr(args, "discover", False):
        raise ConfigError("--write goes with --discover")
    config = config_of(args)
    if getattr(args, "discover", False):
        if args.offline:
            raise ConfigError("--discover reads the site's $metadata: it cannot go with --offline")
        # The block is TOML: never wrapped to the terminal's width (its lines fit 80 columns).
        return run_discover(config, out=sys.stdout, write=args.write, force=args.force)
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
