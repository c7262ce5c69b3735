"""``licenses``: the registry as the Webitel admin shows it, and the user x licence matrix. Read-only."""

from __future__ import annotations

import argparse
import sys
import json
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.sync.recording import utcnow
from jobs.wiring import webitel_client


def registry_rows(licenses, now: datetime, expiring_days: int) -> list[dict[str, Any]]:
    """One row per licence with the admin page's columns (pure)."""
    rows = []
    for lic in sorted(licenses, key=lambda l: (l.product, l.valid_till or now, l.serial)):
        days = lic.days_left(now)
        state = "expired" if days is not None and days <= 0 else (
            "expiring" if days is not None and days < expiring_days else "ok")
        rows.append({"id": lic.serial, "product": lic.product, "name": lic.name,
                     "valid_from": lic.valid_from.date().isoformat() if lic.valid_from else None,
                     "valid_till": lic.valid_till.date().isoformat() if lic.valid_till else None,
                     "used": lic.used, "limit": lic.limit, "concurrent": lic.concurrent, "days_left": days,
                     "state": state})
    return rows


def matrix_rows(users, licenses, *, product: str | None, search: str | None) -> tuple[list[Any], list[dict]]:
    """The admin's Users tab: licences as columns, users as rows with each grant's expiry (pure)."""
    columns = [l for l in sorted(licenses, key=lambda l: (l.product, l.serial))
               if not product or l.product.casefold() == product.casefold()]
    wanted = {l.serial.lower() for l in columns}
    needle = (search or "").casefold()
    rows = []
    for user in sorted(users, key=lambda u: u.username.casefold()):
        if needle and needle not in user.username.casefold() and needle not in user.name.casefold():
            continue
        grants = {g.serial.lower(): g for g in user.licenses if g.serial.lower() in wanted}
        rows.append({"username": user.username, "name": user.name, "webitel_id": user.id,
                     "licenses": {s: (g.expires_at.date().isoformat() if g.expires_at else "")
                                  for s, g in sorted(grants.items())}})
    return columns, rows


def show_licenses(config: AppConfig, *, users: bool, product: str | None, search: str | None, as_json: bool,
                  out: TextIO, webitel=None, now: datetime | None = None) -> int:
    webitel = webitel or webitel_client(config)
    now = now or utcnow()
    licenses = webitel.list_licenses()
    console = Console(file=out, highlight=False, width=200 if not out.isatty() else None)
    if users:
        columns, rows = matrix_rows(
            webitel.list_users(fields=("id", "username", "name", "license")),
            licenses,
            product=product,
            search=search,
        )
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2), file=out)
            return exit_codes.OK
        table = Table(title="Licences by user", show_lines=False)
        table.add_column("User")
        table.add_column("Name")
        for lic in columns:
            table.add_column(f"{lic.title}\n({lic.valid_till:%d.%m.%Y})" if lic.valid_till else lic.title)
        for row in rows:
            table.add_row(
                row["username"],
                row["name"],
                *[
                    ("✓ " + _dotted(row["licenses"][l.serial.lower()]))
                    if l.serial.lower() in row["licenses"]
                    else ""
                    for l in columns
                ],
            )
        console.print(table)
        return exit_codes.OK
    rows = registry_rows(licenses, now, config.licenses.expiring_days)
    if product:
        rows = [r for r in rows if r["product"].casefold() == product.casefold()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2), file=out)
        return exit_codes.OK
    table = Table(title="Webitel licences")
    for name in ("ID", "Product", "Valid from", "Valid till", "Used / Limit", "Concurrent", "Status"):
        table.add_column(name)
    for row in rows:
        style = {"expired": "bold red", "expiring": "yellow"}.get(row["state"])
        status = (
            "EXPIRED"
            if row["state"] == "expired"
            else (
                f"{row['days_left']} days" + (" (expiring)" if row["state"] == "expiring" else "")
                if row["days_left"] is not None
                else ""
            )
        )
        table.add_row(
            row["id"],
            row["product"] + (f" ({row['name']})" if row["name"] else ""),
            _dotted(row["valid_from"]),
            _dotted(row["valid_till"]),
            f"{row['used']} / {row['limit']}",
            "Yes" if row["concurrent"] else "",
            status,
            style=style,
        )
    console.print(table)
    return exit_codes.OK


def _dotted(iso: str | None) -> str:
    """``2026-01-01`` as the admin UI writes it: ``01.01.2026``."""
    if not iso:
        return ""
    year, month, day = iso.split("-")
    return f"{day}.{month}.{year}"


def cmd_licenses(args: argparse.Namespace) -> int:
    """The Webitel licence registry, or (``--users``) the user x licence matrix."""
    return show_licenses(
        config_of(args),
        users=args.users,
        product=args.product,
        search=args.search,
        as_json=args.json,
        out=sys.stdout,
    )
