"""User writes of the sandbox Webitel API: InputUser parsing, uniqueness and licence-grant checks.

Every function takes the ``WebitelApp`` as ``app`` and uses its ``store``, ``catalog``, ``now_ms``,
``stats``, ``require_password`` and ``credentials``.
"""

from __future__ import annotations

from sandbox.webitel.account import admin_ref
from sandbox.webitel.store import new_user
from sandbox.webitel.wire import ApiError

_STRINGS = ("name", "email", "username", "extension", "chat_name")


def _object_id(value: object, name: str) -> dict:
    if not isinstance(value, dict) or "id" not in value:
        raise ApiError(400, "app.user.invalid_input", f"{name}: expected an object with an id")
    try:
        ref_id = int(value["id"])
    except (TypeError, ValueError):
        raise ApiError(400, "app.user.invalid_input", f"{name}: id is not an integer") from None
    label = value.get("name") or ""
    return {"id": ref_id, "name": label if isinstance(label, str) else ""}


def _license_serials(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, "app.user.invalid_input", "license: expected a list")
    serials = []
    for entry in value:
        # Decision: entries must name the licence serial ``id``; granting by ``prod`` alone
        # (reference open question 7) is refused.
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise ApiError(400, "app.user.invalid_input", "license: each entry needs the licence serial id")
        serials.append(entry["id"])
    # A serial can be granted once per user (unique index wbt_license(user_id, serial), reference §5).
    return list(dict.fromkeys(serials))


def parse_input(body: object) -> tuple[dict, str | None]:
    """Read an InputUser body into stored field values.

    Args:
        body: The decoded JSON body.

    Returns:
        ``(changes, password)``: the editable fields present in the body, and the password or None.

    Raises:
        ApiError: 400 when the body is not an object or a field has the wrong type.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "app.user.invalid_input", "body must be a JSON object (InputUser)")
    # Decision: unknown and read-only keys (id, created_at, presence, ...) are ignored.
    changes: dict = {}
    for name in _STRINGS:
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "app.user.invalid_input", f"{name}: expected a string")
            changes[name] = value or ""
    if "license" in body:
        changes["license"] = _license_serials(body["license"] or [])
    for name in ("roles", "devices"):
        if name in body:
            if not isinstance(body[name] or [], list):
                raise ApiError(400, "app.user.invalid_input", f"{name}: expected a list")
            changes[name] = [_object_id(ref, name) for ref in body[name] or []]
    for name in ("contact", "device"):
        if name in body:
            changes[name] = _object_id(body[name], name) if body[name] else None
    if "profile" in body:
        profile = body["profile"] or {}
        if not isinstance(profile, dict) or not all(isinstance(v, str) for v in profile.values()):
            raise ApiError(400, "app.user.invalid_input", "profile: expected an object of strings")
        changes["profile"] = dict(profile)
    if "force_password_change" in body:
        if not isinstance(body["force_password_change"], bool):
            raise ApiError(400, "app.user.invalid_input", "force_password_change: expected a boolean")
        changes["force_password_change"] = body["force_password_change"]
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise ApiError(400, "app.user.invalid_input", "password: expected a string")
    return changes, password or None


def check_unique(app, changes: dict, user_id: int | None) -> None:
    """Refuse a username, extension or email already used by another user (409)."""
    # Inferred: the unique indexes have no deleted_at filter (reference §5), so soft-deleted
    # users still block their values; username and email compare case-insensitively.
    store = app.store

    def taken(ids: set[int]) -> bool:
        return bool(ids - {user_id})

    username = changes.get("username", "")
    holders = store.with_username(username) if username else set()
    # Inferred: the admin is a user of the same domain, so its name is taken even when the seed
    # does not list it as a user.
    is_virtual_admin = not holders and username.lower() == app.credentials.webitel_username.lower()
    if username and (taken(holders) or is_virtual_admin):
        raise ApiError(409, "app.user.conflict.error", f"user: username '{username}' already exists")
    extension = changes.get("extension", "")
    if extension and taken(store.with_extension(extension)):
        raise ApiError(409, "app.user.extension.conflict.error",
                       f"user: extension '{extension}' already exists")
    email = changes.get("email", "")
    if email and taken(store.with_email(email)):
        raise ApiError(409, "app.user.email.conflict.error", f"user: email '{email}' already exists")


def check_grants(app, serials: list[str]) -> None:
    """Refuse granting licences that are unknown, outside their validity window or used up (400).

    Only *newly added* serials are passed here: a grant the user already holds is never re-checked,
    so a user keeps an expired grant until it is removed.
    """
    # Inferred: the refusals below and their ids are reference open question 7; only
    # "app.license.product.expired" (detail "product: <NAME>") and the text "product exhausted"
    # are seen in Webitel sources. The not-yet-valid id is a Decision.
    now = app.now_ms()
    for serial in serials:
        lic = app.catalog.get(serial)
        if lic is None:
            raise ApiError(400, "app.license.not_found", f"license not found: {serial}")
        product = lic["product"]
        if lic["not_before"] and now < lic["not_before"]:
            raise ApiError(400, "app.license.product.not_valid", f"license not valid yet; product: {product}")
        if lic["not_after"] and now >= lic["not_after"]:
            raise ApiError(400, "app.license.product.expired", f"license expired; product: {product}")
        # Concurrent licences limit sessions, not assignments.
        if not lic["competitive"] and app.catalog.remain(lic, app.store.holder_count(serial)) <= 0:
            raise ApiError(400, "app.license.product.exhausted", f"product exhausted: {product}")


def _require_username(changes: dict, *, required: bool) -> None:
    if (required or "username" in changes) and not changes.get("username", "").strip():
        raise ApiError(400, "app.user.username.required", "username is required")


def create(app, body: object, query_password: str | None) -> dict:
    """Create a user from an InputUser body; returns the stored user.

    Raises:
        ApiError: 400 invalid input / missing username or password / refused licence, 409 conflict.
    """
    changes, password = parse_input(body)
    password = password or query_password
    _require_username(changes, required=True)
    if not password and app.require_password:
        # Decision: reference open question 6; the 2020 schema has password NOT NULL.
        raise ApiError(400, "app.user.password.required", "password is required")
    check_unique(app, changes, None)
    check_grants(app, changes.get("license", []))
    user = new_user(app.store.next_id(), app.now_ms())
    user.update(changes, password=password or "")
    user["created_by"] = user["updated_by"] = admin_ref(app)
    app.store.add(user)
    app.stats.record_write()
    return user


def update(app, user_id: int, body: object, *, replace: bool, query_password: str | None = None) -> dict:
    """PATCH or PUT a user: only the keys given change, under either method.

    Args:
        replace: a PUT. Inferred (reference open question 5, settled by the vendor's recorded
            traffic): PUT keeps every field it was not sent, as PATCH does; both map to one
            ``UpdateUser`` call (reference §2.4). A PUT therefore never wipes an extension or
            the licence grants it did not mention.

    Raises:
        ApiError: 404 unknown or soft-deleted user, 400 invalid input / refused licence, 409 conflict.
    """
    # Inferred (the vendor's recorded traffic): PUT keeps what it is not sent, like PATCH.
    del replace
    user = app.store.get(user_id)
    if user is None or user["deleted_at"]:
        # Decision: a soft-deleted user cannot be edited; the error id is the sandbox's own.
        raise ApiError(404, "app.user.update.not_found", f"user {user_id} not found")
    changes, password = parse_input(body)
    _require_username(changes, required=False)
    differing = {k: v for k, v in changes.items() if v != user[k]}
    check_unique(app, differing, user_id)
    check_grants(app, [s for s in changes.get("license", []) if s not in user["license"]])
    password = password or query_password
    if password:
        changes["password"] = password
    changes["updated_at"] = app.now_ms()
    changes["updated_by"] = admin_ref(app)
    app.store.update(user_id, changes)
    app.stats.record_write()
    return user


def delete(app, user_ids: list[int], *, permanent: bool) -> list[dict]:
    """Soft-delete (or with ``permanent`` remove) users; all must exist or nothing happens.

    Returns:
        Copies of the deleted users as they were left (soft: with ``deleted_at`` set).

    Raises:
        ApiError: 404 when an id is unknown, or already soft-deleted and not ``permanent``.
    """
    user_ids = list(dict.fromkeys(user_ids))
    for user_id in user_ids:
        user = app.store.get(user_id)
        if user is None or (user["deleted_at"] and not permanent):
            # Decision: deleting is all-or-nothing; the error id is the sandbox's own.
            raise ApiError(404, "app.user.delete.not_found", f"user {user_id} not found")
    deleted = []
    for user_id in user_ids:
        if permanent:
            deleted.append(app.store.remove(user_id))
        else:
            deleted.append(dict(app.store.soft_delete(user_id, app.now_ms())))
        app.stats.record_write()
    return deleted
