"""The Webitel licence catalog of the sandbox data, and the users' grants.

The catalog always plants the three cases the sync must handle: an expired licence, one expiring
within 30 days and a named licence with no seat left. Every other licence has room, so a first
sync of fresh data refuses nothing it did not plant.
"""

from __future__ import annotations

import random
import uuid
from typing import Callable

DAY_MS = 86_400_000
# Share of users holding licences; the rest are imported without any (a new hire, say).
GRANTED_SHARE = 0.92
# Share of users holding the full licence; its limit is then set to exactly its grant count.
FULL_SHARE = 0.05

PRODUCT_SCOPES: dict[str, list[str]] = {
    "CALL_CENTER": ["cc_agent", "cc_queue", "cc_team", "users"],
    "CALL_MANAGER": ["users", "calls", "devices"],
    "CHAT": ["chats", "users"],
    "EMAIL": ["email_profile", "users"],
    "WFM": ["wfm", "calendars", "cc_agent"],
    "VOIP_DEVICE": ["devices"],
}

# (role, product, name, competitive, weight among a user's picks); weight 0 = never granted.
CATALOG: tuple[tuple[str, str, str, bool, int], ...] = (
    ("main", "CALL_CENTER", "Contact Center Agent", False, 5),
    ("", "CALL_MANAGER", "Call Manager", False, 3),
    ("", "CALL_MANAGER", "Call Manager (concurrent)", True, 1),
    ("expiring", "CHAT", "Omnichannel Chat", False, 2),
    ("expired", "EMAIL", "Email Channel", False, 0),
    ("full", "WFM", "Workforce Management", False, 1),
    ("", "VOIP_DEVICE", "", True, 1),
)


def build_licenses(rng: random.Random, users: list[dict], *, now_ms: int,
                   grants_per_user: int = 1) -> tuple[list[dict], dict]:
    """Create the catalog and grant licences to ``users`` (their ``license`` lists are filled).

    Args:
        rng: The generator's random source.
        users: Webitel user dicts; each gets its serials appended to ``license``.
        now_ms: The "current" time the validity windows are placed around.
        grants_per_user: How many distinct valid licences a granted user holds (capped by the
            number of grantable licences).

    Returns:
        The licence dicts and the notes ``expired_license``, ``expiring_license``,
        ``full_license`` (serials).
    """
    uid: Callable[[], str] = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    licences: list[dict] = []
    roles: dict[str, dict] = {}
    weights: dict[str, int] = {}
    for role, product, name, competitive, weight in CATALOG:
        lic = {"id": uid(), "product": product, "name": name, "competitive": competitive,
               "scope": list(PRODUCT_SCOPES[product]), **_window(rng, role, now_ms), "limit": 0}
        licences.append(lic)
        weights[lic["id"]] = weight
        if role:
            roles[role] = lic

    full = roles["full"]
    cap = 0 if not users or grants_per_user <= 0 else max(1, round(len(users) * FULL_SHARE))
    counts = _grant(rng, users, [lic for lic in licences if weights[lic["id"]]], weights, full, cap,
                    grants_per_user)
    if cap and counts[full["id"]] == 0:
        # Few users and none drew the full licence: give it to one so "full" means something.
        users[0]["license"].append(full["id"])
        counts[full["id"]] = 1

    for lic in licences:
        used = counts.get(lic["id"], 0)
        if lic is full:
            lic["limit"] = used
        else:
            # Round numbers above the use, as licences are sold; always at least one seat free.
            lic["limit"] = ((used + rng.randint(1, 10)) // 10 + 1) * 10
    notes = {"expired_license": roles["expired"]["id"], "expiring_license": roles["expiring"]["id"],
             "full_license": full["id"]}
    return licences, notes


def _window(rng: random.Random, role: str, now_ms: int) -> dict[str, int]:
    """Validity window in ms: past-to-future, about to end, or already over."""
    hours = rng.randint(0, 23) * 3_600_000
    if role == "expired":
        not_after = now_ms - rng.randint(3, 60) * DAY_MS - hours
        return {"not_before": not_after - 365 * DAY_MS, "not_after": not_after}
    not_before = now_ms - rng.randint(30, 400) * DAY_MS - hours
    if role == "expiring":
        return {"not_before": not_before, "not_after": now_ms + rng.randint(5, 25) * DAY_MS + hours}
    return {"not_before": not_before, "not_after": now_ms + rng.randint(120, 730) * DAY_MS + hours}


def _grant(rng: random.Random, users: list[dict], grantable: list[dict], weights: dict[str, int],
           full: dict, cap: int, per_user: int) -> dict[str, int]:
    """Give most users ``per_user`` distinct licences by weight; ``full`` stops at ``cap``."""
    counts = {lic["id"]: 0 for lic in grantable}
    pools = {}
    for with_full in (True, False):
        pool = [lic for lic in grantable if with_full or lic is not full]
        cum, total = [], 0
        for lic in pool:
            total += weights[lic["id"]]
            cum.append(total)
        pools[with_full] = (pool, cum)
    for user in users:
        if rng.random() >= GRANTED_SHARE:
            continue
        pool, cum = pools[counts[full["id"]] < cap]
        chosen: list[str] = []
        while len(chosen) < min(per_user, len(pool)):
            serial = rng.choices(pool, cum_weights=cum)[0]["id"]
            if serial not in chosen:
                chosen.append(serial)
        for serial in chosen:
            counts[serial] += 1
        user["license"].extend(chosen)
    return counts
