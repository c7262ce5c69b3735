"""The signed-in admin (userinfo, current user), the password policy, and the seed-vocabulary view."""

from __future__ import annotations

import secrets
import string

from sandbox.webitel.wire import ms, omit_empty, user_wire

# Values a fresh Webitel domain would plausibly have; names from protos engine/system_settings.proto.
PASSWORD_SETTINGS = {"password_min_length": 8, "password_categories": 3, "password_contains_login": False}
# Decision: the virtual admin's id when no seed user carries the admin username.
FALLBACK_ADMIN_ID = 1
ADMIN_SCOPE = ("users", "roles", "license", "devices", "contacts", "cc_agent")
ADMIN_PERMISSIONS = (
    ("read", "Select Any"), ("add", "Create Any"), ("write", "Edit Any"), ("delete", "Delete Any"),
)
_CATEGORIES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#$%&*+-=?@^_")


def seed_view(user: dict) -> dict:
    """A copy of a stored user in the seed vocabulary (``sandbox.seed.types``), plus extras.

    ``id`` is an int, ``license`` the list of serials, ``deleted`` a bool; the audit times are ints
    (ms) and ``password`` is included, since this view is for tests, never for the wire.
    """
    return {
        "id": user["id"], "username": user["username"], "name": user["name"], "email": user["email"],
        "extension": user["extension"], "license": list(user["license"]), "deleted": bool(user["deleted_at"]),
        "chat_name": user["chat_name"], "password": user["password"],
        "roles": [dict(r) for r in user["roles"]], "profile": dict(user["profile"]),
        "created_at": user["created_at"], "updated_at": user["updated_at"], "deleted_at": user["deleted_at"],
    }


def _admin(app) -> tuple[int, dict | None]:
    found = sorted(app.store.with_username(app.credentials.webitel_username))
    if found:
        return found[0], app.store.get(found[0])
    return FALLBACK_ADMIN_ID, None


def admin_ref(app) -> dict:
    """``{id, name}`` of the signed-in admin: who every write through the API is made by."""
    admin_id, _ = _admin(app)
    return {"id": admin_id, "name": app.credentials.webitel_username}


def seed_admin(seed_users: list[dict], username: str) -> dict:
    """``{id, name}`` of the admin among seed users (or the fallback id): who made them."""
    wanted = username.lower()
    found = sorted(int(u["id"]) for u in seed_users if str(u.get("username") or "").lower() == wanted)
    return {"id": found[0] if found else FALLBACK_ADMIN_ID, "name": username}


def current_user(app) -> dict:
    """The signed-in admin as a User object (``GET /user`` without an id)."""
    admin_id, stored = _admin(app)
    if stored is not None:
        return user_wire(stored, app.catalog.licenses)
    username = app.credentials.webitel_username
    return {"id": str(admin_id), "name": username, "username": username}


def userinfo(app, token: str) -> dict:
    """``GET /userinfo`` for the admin session of ``token``.

    ``expires_at`` is in **seconds** (engine ``Session.IsExpired`` multiplies by 1000); it is
    omitted for the static personal token, which never expires.
    """
    admin_id, stored = _admin(app)
    username = app.credentials.webitel_username
    expiry_ms = app.sessions.expires_at(token)
    return omit_empty({
        "dc": "1", "domain": app.domain, "user_id": str(admin_id),
        "name": (stored or {}).get("name") or username, "username": username,
        "preferred_username": f"{username}@{app.domain}",
        "extension": (stored or {}).get("extension", ""),
        "scope": [{"class": name, "obac": True, "rbac": True} for name in ADMIN_SCOPE],
        "roles": [{"id": "1", "name": "admin"}],
        "license": user_wire(stored, app.catalog.licenses, ("license",)).get("license", []) if stored else [],
        "permissions": [{"id": pid, "name": name} for pid, name in ADMIN_PERMISSIONS],
        "expires_at": ms(expiry_ms // 1000),
    })


def generate_password(username: str = "") -> str:
    """A random password meeting ``PASSWORD_SETTINGS``: 12 characters from all four categories."""
    rng = secrets.SystemRandom()
    while True:
        chars = [rng.choice(group) for group in _CATEGORIES]
        chars += [rng.choice("".join(_CATEGORIES)) for _ in range(8)]
        rng.shuffle(chars)
        password = "".join(chars)
        # password_contains_login is false: the password must not contain the login.
        if not username or username.lower() not in password.lower():
            return password
