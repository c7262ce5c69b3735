"""Licence rules shared by the sync's plan and the administrator's ``license assign``: pure.

Webitel owns the licence catalog; Creatio shows it read-only. A *new* grant of a licence is
refused when the licence has expired, is not valid yet, or (a named licence) has no seat left.
Both the planner and the ``license`` command ask ``grant_refusal``, so their rules cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The columns of a Creatio licence record the catalog fills (logical names of ``LicenseRecord``).
CATALOG_FIELDS = ("serial", "product", "name", "valid_from", "valid_till", "limit", "used", "concurrent")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a grant is refused: ``kind`` is the report's conflict kind, ``reason`` says it in words."""

    kind: str
    reason: str


def grant_refusal(lic: Any, now: datetime, *, seats_left: int | None = None) -> Refusal | None:
    """Why a new grant of ``lic`` would be refused at ``now``, or None.

    Args:
        lic: a Webitel licence (``valid_from``, ``valid_till``, ``concurrent``, ``remain``, ``limit``).
        now: the moment validity is judged at.
        seats_left: the named licence's free seats as the caller counts them (the planner adds the
            seats its own revocations free); default ``lic.remain``. Concurrent licences have no
            seat limit.
    """
    if lic.valid_till is not None and now >= lic.valid_till:
        return Refusal("license_expired", f"it expired on {lic.valid_till:%Y-%m-%d}")
    if lic.valid_from is not None and now < lic.valid_from:
        return Refusal("license_not_yet_valid", f"it is valid from {lic.valid_from:%Y-%m-%d}")
    if not lic.concurrent and (lic.remain if seats_left is None else seats_left) <= 0:
        return Refusal("license_limit_reached", f"all {lic.limit} seats are taken")
    return None


def catalog_values(lic: Any, *, used: int | None = None) -> dict[str, Any]:
    """A Webitel licence as the values of its Creatio licence record.

    Args:
        lic: the Webitel licence.
        used: the seats in use once the run's own grants and revocations land (default: as read).
    """
    return {
        "serial": lic.serial.lower(),
        "product": lic.product,
        "name": lic.title,
        "valid_from": lic.valid_from,
        "valid_till": lic.valid_till,
        "limit": lic.limit,
        "used": lic.used if used is None else used,
        "concurrent": lic.concurrent,
    }
