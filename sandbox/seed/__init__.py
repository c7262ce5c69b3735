"""Seeded generator of realistic sandbox data for both systems.

``generate`` is deterministic: the same arguments give equal ``SeedData`` in any process (one
``random.Random(seed)`` drives every choice, uuids included, and no decision depends on set or
hash order). ``SeedData.notes`` lists what was planted on purpose, so the demo can explain it and
tests can assert the sync found it.
"""

from __future__ import annotations

import random

from sandbox.creatio.schema import get_model
from sandbox.seed.creatio import CreatioBuilder
from sandbox.seed.licenses import build_licenses
from sandbox.seed.names import UniqueLogins, login_for, person, stray_spaces
from sandbox.seed.types import Credentials, SeedData

__all__ = ["Credentials", "SeedData", "generate"]

FIRST_USER_ID = 1001
NO_EXTENSION_SHARE = 0.01  # users without an extension (they cannot register a SIP phone)
STRAY_SPACE_SHARE = 0.04   # display names with a leading, trailing or doubled space
NO_EMAIL_SHARE = 0.08


def generate(users: int, *, seed: int = 0, now_ms: int, domain: str = "demo.webitel.local",
             creatio_model: str = "default", account_name: str | None = None,
             with_account: bool = True, match_share: float = 0.5, unrelated_contacts: int | None = None,
             licenses: bool = True, grants_per_user: int = 1) -> SeedData:
    """Generate one consistent data set for the Webitel and Creatio sandboxes.

    Args:
        users: Number of Webitel users.
        seed: Seed of the single random source.
        now_ms: The "current" time in Unix ms; licence validity is placed around it.
        domain: The Webitel domain; also the default account name.
        creatio_model: The sandbox Creatio model (``sandbox.creatio.schema.MODELS``) whose
            entity and column names are written: ``"default"`` or ``"wsysaccount"``.
        account_name: Account that created contacts belong to (default: ``domain``).
        with_account: Whether that account already exists in Creatio.
        match_share: Share of the remaining users (after the planted system-user and ambiguous
            cases) that have a Creatio contact named after their username or display name.
        unrelated_contacts: Contacts unrelated to any Webitel user (default: twice ``users``).
        licenses: Whether to create a licence catalog and grants.
        grants_per_user: Valid licences held by each granted user (most users are granted).

    Returns:
        The data set; ``notes`` holds ``ambiguous_usernames``, ``no_extension_usernames``,
        ``clashing_extensions``, ``expired_license``, ``expiring_license``, ``full_license``
        (serials, ``None`` without licences), ``system_user_usernames``, ``linked_contacts``
        (username -> contact id the sync should link, for planted unambiguous matches) and
        ``account_name``.

    Raises:
        ValueError: negative ``users``, ``match_share`` outside [0, 1] or an unknown model.
    """
    if users < 0:
        raise ValueError("users must not be negative")
    if not 0.0 <= match_share <= 1.0:
        raise ValueError("match_share must be within [0, 1]")
    model = get_model(creatio_model)
    rng = random.Random(seed)
    account_name = account_name or domain
    webitel_users, people = _webitel_users(rng, users, domain)
    # Audit times as a live site has them: created months ago, last changed a day ago or earlier
    # (a random source of their own, so the data drawn from ``rng`` is the same as without them).
    stamps, day = random.Random(f"{seed}:audit"), 86_400_000
    for user in webitel_users:
        user["created_at"] = now_ms - stamps.randint(30, 730) * day
        user["updated_at"] = stamps.randint(user["created_at"], now_ms - day)

    notes: dict = {"expired_license": None, "expiring_license": None, "full_license": None}
    catalog: list[dict] = []
    if licenses:
        catalog, licence_notes = build_licenses(rng, webitel_users, now_ms=now_ms,
                                                grants_per_user=grants_per_user)
        notes.update(licence_notes)

    builder = CreatioBuilder(rng, webitel_users, people, model=model, account_name=account_name,
                             with_account=with_account)
    creatio, creatio_notes = builder.build(match_share, 2 * users if unrelated_contacts is None
                                           else unrelated_contacts)
    notes.update(creatio_notes)
    notes["no_extension_usernames"] = sorted(u["username"] for u in webitel_users if not u["extension"])
    notes["account_name"] = account_name
    return SeedData(domain=domain, webitel_users=webitel_users, licenses=catalog, creatio=creatio,
                    credentials=Credentials(webitel_domain=domain), notes=notes)


def _webitel_users(rng: random.Random, count: int, domain: str) -> tuple[list[dict], list[tuple[str, str]]]:
    """The Webitel users and each one's ``(first, last)`` name parts."""
    logins = UniqueLogins()
    # Extensions: distinct numbers of one width, at most half the range used, ascending with ids
    # as an admin numbering a growing team would hand them out.
    low = 1000
    while low * 9 < count * 2:
        low *= 10
    extensions = sorted(rng.sample(range(low, low * 10), count))
    no_extension = set(rng.sample(range(count), max(1, round(count * NO_EXTENSION_SHARE)))) \
        if count >= 10 else set()
    users: list[dict] = []
    people: list[tuple[str, str]] = []
    next_id = FIRST_USER_ID
    for i in range(count):
        _lang, first, last = person(rng)
        username = logins.claim(login_for(first, last, rng))
        name = f"{first} {last}"
        if rng.random() < STRAY_SPACE_SHARE:
            name = stray_spaces(rng, name)
        email = "" if rng.random() < NO_EMAIL_SHARE else f"{username}@{domain}"
        users.append({"id": next_id, "username": username, "name": name, "email": email,
                      "extension": "" if i in no_extension else str(extensions[i]),
                      "license": [], "deleted": False})
        people.append((first, last))
        # Occasional gaps: ids of users deleted long ago are not reused.
        next_id += 1 if rng.random() > 0.03 else rng.randint(2, 4)
    return users, people
