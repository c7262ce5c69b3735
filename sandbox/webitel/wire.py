"""JSON shaping for the sandbox Webitel API: errors, users, licences, in Webitel's wire vocabulary.

Webitel's gateway emits protobuf JSON: snake_case names, int64 values (ids, times) as strings,
int32 values (limit, remain) as numbers, and zero/empty fields left out (reference §1.5).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from sandbox.base import Response

# Fields a user read can return; ``password`` is never among them.
USER_FIELDS = (
    "id", "name", "username", "email", "extension", "presence", "license", "roles", "profile", "chat_name",
    "contact", "device", "devices", "force_password_change", "created_at", "created_by", "updated_at",
    "updated_by", "deleted_at",
)
# The live list returned only these when no ``fields`` was given (reference §2.1): presence,
# device and contact when set, as the vendor's recorded traffic shows on every item.
DEFAULT_LIST_FIELDS = ("id", "name", "username", "extension", "presence", "device", "contact")
# What a user create answers (reference §2.3: the QA create call's answer).
CREATED_FIELDS = ("id", "name", "username", "email", "extension")
# Inferred from the vendor's recorded traffic: PATCH and PUT answer a partial user, never its
# extension or licences.
UPDATED_FIELDS = ("id", "name", "username", "updated_at", "updated_by")

LICENSE_FIELDS = (
    "id", "product", "name", "not_before", "not_after", "competitive", "limit", "remain", "scope", "users",
)
DEFAULT_LICENSE_FIELDS = LICENSE_FIELDS[:-1]


class ApiError(Exception):
    """An error answer: raised anywhere in a handler, turned into a Webitel error body by the app."""

    def __init__(self, status: int, error_id: str, detail: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(f"{status} {error_id}: {detail}")
        self.status = status
        self.error_id = error_id
        self.detail = detail
        self.headers = headers or []

    def response(self) -> Response:
        """The Webitel error body ``{id, code, status, detail}`` (engine ``pkg/werror/error.go``)."""
        body = {"id": self.error_id, "code": self.status, "status": HTTPStatus(self.status).phrase,
                "detail": self.detail}
        return Response.json(self.status, body, self.headers)


def omit_empty(obj: dict) -> dict:
    """Drop keys whose value is zero, empty or None, as protobuf JSON does."""
    return {k: v for k, v in obj.items() if v not in (None, "", 0, [], {}, False)}


def object_id(ref: dict | None) -> dict | None:
    """An ObjectId ``{id, name}`` with the id as a string, or None when unset."""
    if not ref:
        return None
    return omit_empty({"id": str(ref["id"]) if ref.get("id") else "", "name": ref.get("name", "")}) or None


def ms(value: int) -> str:
    """An int64 time as protobuf JSON writes it ("" for zero, so ``omit_empty`` drops it)."""
    return str(value) if value else ""


def license_user(lic: dict, user: dict | None = None, *, brief: bool = False) -> dict:
    """A LicenseUser entry: the grant of licence ``lic`` (optionally naming the holder).

    ``brief``: as in a user's ``license`` list, which in the vendor's recorded traffic usually
    carries no ``name`` and no ``scope``.
    """
    # Reference §3.4: issued_at/expires_at of a grant are the licence's not_before/not_after.
    return omit_empty({
        "id": lic["id"], "prod": lic["product"], "name": "" if brief else lic.get("name", ""),
        "user": object_id(user) if user else None,
        "issued_at": ms(lic["not_before"]), "expires_at": ms(lic["not_after"]),
        "scope": [] if brief else list(lic["scope"]),
    })


def user_wire(user: dict, licenses: dict[str, dict],
              fields: tuple[str, ...] | list[str] = USER_FIELDS) -> dict:
    """Shape a stored user for the wire, keeping only ``fields`` (known names, in the given order).

    Args:
        user: The stored user (see ``store.new_user``).
        licenses: The licence catalogue by serial, to expand the user's grants to LicenseUser entries.
        fields: The output fields to keep.

    Returns:
        The user object, empty fields omitted.
    """
    out: dict[str, Any] = {}
    for name in fields:
        if name == "id":
            out["id"] = str(user["id"])
        elif name == "license":
            out["license"] = [license_user(licenses[s], brief=True) for s in user["license"] if s in licenses]
        elif name in ("created_at", "updated_at", "deleted_at"):
            out[name] = ms(user[name])
        elif name in ("contact", "device", "created_by", "updated_by"):
            out[name] = object_id(user[name])
        elif name == "presence":
            out[name] = {"status": user[name]} if user[name] else None
        elif name in ("roles", "devices"):
            out[name] = [object_id(ref) for ref in user[name]]
        elif name == "profile":
            out[name] = dict(user[name])
        elif name in USER_FIELDS:
            out[name] = user[name]
    return omit_empty(out)


def license_wire(lic: dict, remain: int, fields: tuple[str, ...] | list[str] = DEFAULT_LICENSE_FIELDS,
                 holders: list[dict] | None = None) -> dict:
    """Shape a licence as LicenseV1, keeping only ``fields``; ``users`` needs ``holders``."""
    full = {
        "id": lic["id"], "product": lic["product"], "name": lic.get("name", ""),
        "not_before": ms(lic["not_before"]), "not_after": ms(lic["not_after"]),
        "competitive": bool(lic.get("competitive")), "limit": lic["limit"], "remain": remain,
        "scope": list(lic["scope"]),
        "users": [license_user(lic, user) for user in holders or []],
    }
    return omit_empty({name: full[name] for name in fields if name in full})


def page_body(page: int, items: list[dict], has_next: bool) -> dict:
    """A list answer ``{page, next, items}``."""
    # Inferred: protobuf JSON omits ``next`` when false and ``items`` when empty (reference §1.5
    # "empty/zero fields are omitted"; paging "stop when next is false/absent").
    return omit_empty({"page": page, "next": has_next, "items": items})


def read_json(request) -> Any:
    """The request body as JSON (None when empty); a malformed body is a 400."""
    try:
        return request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "app.request.bad_json", "request body is not valid JSON") from None
