"""``licenses``: the registry as the Webitel admin shows it, and the user x licence matrix. Read-only."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from datetime import datetime
from typing import Any, TextIO

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.report import text_width
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
    """The registry (or the user x licence matrix) as text that fits the terminal, or as JSON.

    Text abbreviates licence serials to their first ``SERIAL_SHOWN`` characters (a unique prefix
    is what ``license assign`` takes) and says so in a legend; ``--json`` has every value in full.
    """
    webitel = webitel or webitel_client(config)
    now = now or utcnow()
    licenses = webitel.list_licenses()
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
        _print_matrix(columns, rows, out)
        return exit_codes.OK
    rows = registry_rows(licenses, now, config.licenses.expiring_days)
    if product:
        rows = [r for r in rows if r["product"].casefold() == product.casefold()]
    if search:
        needle = search.casefold()
        rows = [r for r in rows if needle in f"{r['id']} {r['product']} {r['name']}".casefold()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2), file=out)
        return exit_codes.OK
    _print_registry(rows, out)
    return exit_codes.OK


SERIAL_SHOWN = 8
REGISTRY = (
    ("ID", 8),
    ("Product", 12),
    ("Valid from", 10),
    ("Valid till", 10),
    ("Used / Limit", 12),
    ("Conc.", 5),
    ("Status", 10),
)


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_registry(rows: list[dict], out: TextIO) -> None:
    """One line per licence, 78 columns at most; expired and expiring flagged."""
    print("  ".join(f"{name:<{width}}" for name, width in REGISTRY).rstrip(), file=out)
    for row in rows:
        days = row["days_left"]
        status = "EXPIRED" if row["state"] == "expired" else ("" if days is None else f"{days} days")
        if row["state"] == "expiring":
            status += " !"
        product = row["product"] + (
            f" ({row['name']})" if row["name"] and row["name"] != row["product"] else ""
        )
        cells = (
            row["id"][:SERIAL_SHOWN],
            product,
            _dotted(row["valid_from"]),
            _dotted(row["valid_till"]),
            f"{row['used']} / {row['limit']}",
            "Yes" if row["concurrent"] else "",
            status,
        )
        print("  ".join(f"{_cell(c, w):<{w}}" for c, (_, w) in zip(cells, REGISTRY)).rstrip(), file=out)
    print(f"ID: the serial's first {SERIAL_SHOWN} characters (a unique prefix is enough for", file=out)
    print("`license`); !: expiring soon. --json shows every value in full.", file=out)


def _print_matrix(columns, rows: list[dict], out: TextIO) -> None:
    """One line per user with the licences held, wrapped to the terminal's width."""
    width = max(60, text_width() or 80)
    by_serial = {l.serial.lower(): l for l in columns}
    print(f"{'User':<18}  {'Name':<22}  Licences held (product serial till)", file=out)
    for row in rows:
        held = [
            f"{by_serial[s].product} {by_serial[s].serial[:SERIAL_SHOWN]}"
            + (f" ({_dotted(till)})" if till else "")
            for s, till in row["licenses"].items()
        ]
        head = f"{_cell(row['username'], 18):<18}  {_cell(row['name'], 22):<22}  "
        text = textwrap.fill(
            ", ".join(held) or "-",
            width=width,
            initial_indent=head,
            subsequent_indent=" " * len(head),
            break_long_words=True,
        )
        print(text, file=out)
    print(f"Serials show their first {SERIAL_SHOWN} characters; --json shows every value in full.", file=out)


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
