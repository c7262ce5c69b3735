"""In-memory users and licences of the sandbox Webitel domain, with the indexes a fast API needs.

Users live in a dict by id plus sorted id lists (active, soft-deleted, all), so a plain page read is a
slice. Unique-ish lookups (lower(username), extension, lower(email)) and licence holders are indexed,
so exact filters and uniqueness checks never scan all users. Index values are sets of ids: the seed
may break a uniqueness rule on purpose, and the store must still load it.
"""

from __future__ import annotations

import bisect
import copy
import gc

def empty_fields() -> dict:
    """Every field a client may set (InputUser minus what the sandbox does not model), empty.

    This is what PUT clears omitted fields to.
    """
    # Built fresh each time (not deep-copied) because seeds load tens of thousands of users.
    return {
        "name": "", "email": "", "username": "", "extension": "", "license": [], "roles": [], "profile": {},
        "chat_name": "", "contact": None, "device": None, "devices": [], "force_password_change": False,
    }


def new_user(user_id: int, now: int) -> dict:
    """A blank stored user: every editable field empty, no password, created/updated at ``now``,
    offline (``presence`` is the status text, "" when offline), no audit references yet."""
    user = empty_fields()
    user.update(id=user_id, password="", created_at=now, updated_at=now, deleted_at=0, presence="",
                created_by=None, updated_by=None)
    return user


# Decision: the shapes of the vendor's recorded traffic, with values of the sandbox's own. A seeded
# user with an extension has a default SIP device named after it (ids DEVICE_ID_BASE + user id),
# which is also its one attached device; every second one of them is registered ("sip"
# presence); every third seeded user is linked to a Webitel contact (ids CONTACT_ID_BASE + user
# id); every seeded user has the role "user". The objects are the admin's doing (created_by).
DEVICE_ID_BASE = 100_000
CONTACT_ID_BASE = 200_000
USER_ROLE = {"id": 2, "name": "user"}
_ROLES = (USER_ROLE,)  # shared by every seeded user: a write replaces the value, never edits it


def _remove_sorted(ids: list[int], user_id: int) -> None:
    at = bisect.bisect_left(ids, user_id)
    if at < len(ids) and ids[at] == user_id:
        del ids[at]


class UserStore:
    """Users by id with sorted id lists and lookup indexes; every change goes through its methods."""

    def __init__(self) -> None:
        self.users: dict[int, dict] = {}
        self.active_ids: list[int] = []
        self.deleted_ids: list[int] = []
        self.all_ids: list[int] = []
        self._usernames: dict[str, set[int]] = {}
        self._extensions: dict[str, set[int]] = {}
        self._emails: dict[str, set[int]] = {}
        self._holders: dict[str, set[int]] = {}
        # High-water mark, so a permanently deleted last user never gets its id reused.
        self._last_id = 0

    def load(self, seed_users: list[dict], now: int, admin: dict | None = None) -> None:
        """Load seed user dicts (``sandbox.seed.types`` shape) in one pass, sorting ids once.

        Args:
            seed_users: the users.
            now: their creation time when the seed gives none (ms).
            admin: ``{id, name}`` of whoever made them (``created_by``/``updated_by``).
        """
        # Tens of thousands of new dicts/sets would trigger many full GC passes over a growing heap
        # (about half the load time at 50,000 users); nothing here makes cycles, so pause it.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._load(seed_users, now, admin)
        finally:
            if was_enabled:
                gc.enable()

    def _load(self, seed_users: list[dict], now: int, admin: dict | None = None) -> None:
        for raw in seed_users:
            user = new_user(int(raw["id"]), now)
            for name in ("username", "name", "email", "extension", "chat_name", "password"):
                user[name] = raw.get(name) or ""
            user["license"] = list(dict.fromkeys(raw.get("license") or []))
            # Seeds may carry their own audit times (ms) so incremental-sync tests can use them.
            user["created_at"] = int(raw.get("created_at") or now)
            user["updated_at"] = int(raw.get("updated_at") or user["created_at"])
            if raw.get("deleted"):
                user["deleted_at"] = int(raw.get("deleted_at") or now)
            uid = user["id"]
            if user["extension"]:
                user["device"] = {"id": DEVICE_ID_BASE + uid, "name": user["extension"]}
                user["devices"] = (user["device"],)
                user["presence"] = "sip" if uid % 2 == 0 else ""
            if uid % 3 == 0:
                user["contact"] = {"id": CONTACT_ID_BASE + uid, "name": user["name"] or user["username"]}
            user["roles"] = _ROLES
            user["created_by"] = user["updated_by"] = admin
            self.users[user["id"]] = user
            self._index(user)
        self.all_ids = sorted(self.users)
        self._last_id = max(self._last_id, self.all_ids[-1] if self.all_ids else 0)
        self.active_ids = [i for i in self.all_ids if not self.users[i]["deleted_at"]]
        self.deleted_ids = [i for i in self.all_ids if self.users[i]["deleted_at"]]

    def get(self, user_id: int) -> dict | None:
        """The stored user (live object, do not mutate outside the store) or None."""
        return self.users.get(user_id)

    def ids(self, *, include_active: bool = True, include_deleted: bool = False) -> list[int]:
        """The sorted id list for a view mode (live list, do not mutate)."""
        if include_active and include_deleted:
            return self.all_ids
        return self.deleted_ids if include_deleted else self.active_ids

    def next_id(self) -> int:
        """The id a new user gets: one more than the largest ever loaded or created."""
        return self._last_id + 1

    def with_username(self, username: str) -> set[int]:
        """Ids whose username equals ``username`` case-insensitively (soft-deleted included)."""
        return set(self._usernames.get(username.lower(), ()))

    def with_extension(self, extension: str) -> set[int]:
        """Ids whose extension equals ``extension`` exactly (soft-deleted included)."""
        return set(self._extensions.get(extension, ()))

    def with_email(self, email: str) -> set[int]:
        """Ids whose email equals ``email`` case-insensitively (soft-deleted included)."""
        return set(self._emails.get(email.lower(), ()))

    def holders(self, serial: str) -> set[int]:
        """Ids of the users (soft-deleted included) holding licence ``serial``."""
        return set(self._holders.get(serial, ()))

    def holder_count(self, serial: str) -> int:
        """How many users hold licence ``serial``."""
        return len(self._holders.get(serial, ()))

    def add(self, user: dict) -> None:
        """Insert a new user; its id must be unused."""
        self.users[user["id"]] = user
        self._last_id = max(self._last_id, user["id"])
        self._index(user)
        bisect.insort(self.all_ids, user["id"])
        bisect.insort(self.deleted_ids if user["deleted_at"] else self.active_ids, user["id"])

    def update(self, user_id: int, changes: dict) -> dict:
        """Apply ``changes`` (stored field values) to a user, keeping the indexes right."""
        user = self.users[user_id]
        self._unindex(user)
        user.update(copy.deepcopy(changes))
        self._index(user)
        return user

    def soft_delete(self, user_id: int, now: int) -> dict:
        """Mark a user deleted: hidden from default lists, still holding its username and grants."""
        user = self.users[user_id]
        user["deleted_at"] = now
        _remove_sorted(self.active_ids, user_id)
        bisect.insort(self.deleted_ids, user_id)
        return user

    def remove(self, user_id: int) -> dict:
        """Delete a user for good, freeing its username, extension, email and licence grants."""
        user = self.users.pop(user_id)
        self._unindex(user)
        for ids in (self.all_ids, self.active_ids, self.deleted_ids):
            _remove_sorted(ids, user_id)
        return user

    def _keys(self, user: dict):
        yield self._usernames, user["username"].lower()
        yield self._extensions, user["extension"]
        yield self._emails, user["email"].lower()
        for serial in user["license"]:
            yield self._holders, serial

    def _index(self, user: dict) -> None:
        for index, key in self._keys(user):
            if key:
                index.setdefault(key, set()).add(user["id"])

    def _unindex(self, user: dict) -> None:
        for index, key in self._keys(user):
            ids = index.get(key)
            if ids is not None:
                ids.discard(user["id"])
                if not ids:
                    del index[key]


class LicenseStore:
    """The domain's licence catalogue by serial, in load order (new serials are appended)."""

    def __init__(self, seed_licenses: list[dict]) -> None:
        self.licenses: dict[str, dict] = {}
        for lic in seed_licenses:
            self.put(lic)

    def get(self, serial: str) -> dict | None:
        """The licence with this serial, or None."""
        return self.licenses.get(serial)

    def all(self) -> list[dict]:
        """Every licence, in catalogue order."""
        return list(self.licenses.values())

    def put(self, lic: dict) -> dict:
        """Add a licence or replace the terms of an existing serial; returns the stored licence."""
        stored = {
            "id": str(lic["id"]), "product": lic["product"], "name": lic.get("name") or "",
            "not_before": int(lic.get("not_before") or 0), "not_after": int(lic.get("not_after") or 0),
            "limit": int(lic.get("limit") or 0), "competitive": bool(lic.get("competitive")),
            "scope": list(lic.get("scope") or []),
        }
        self.licenses[stored["id"]] = stored
        return stored

    @staticmethod
    def remain(lic: dict, holder_count: int) -> int:
        """Grants still available: limit − holders for named licences, limit for concurrent ones.

        Concurrent (competitive) licences count active sessions, and the sandbox has none.
        """
        if lic["competitive"]:
            return lic["limit"]
        # Decision: clamp at 0 when a re-upload lowered the limit below the existing grants.
        return max(0, lic["limit"] - holder_count)

    @staticmethod
    def is_current(lic: dict, now: int) -> bool:
        """Whether ``now`` is inside the licence's validity window [not_before, not_after)."""
        return (not lic["not_before"] or lic["not_before"] <= now) and (
            not lic["not_after"] or now < lic["not_after"])
