"""The names of the Webitel objects on a Creatio site: configuration data handed to the client.

The vendor's CallManager package does not publish its object and column names
(reference creatio-api.md section 4.2), so every name is configurable; the built-in profiles (the
values) live in ``mappings.profiles``. A column set to ``None`` does not exist on that site and is
neither read nor written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .values import BASE_COLUMNS, STANDARD_ENTITIES, ColumnType


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebitelUserObject(_Table):
    """The "Webitel Users" section: one record per telephony user."""

    entity: str = "WebitelUser"
    name: str | None = "Name"
    username: str | None = "Username"
    webitel_id: str | None = "WebitelId"
    extension: str | None = "Extension"
    contact: str | None = "ContactId"
    sys_admin_unit: str | None = "SysAdminUnitId"
    active: str | None = "Active"
    # Constant values written on create (e.g. a required role lookup).
    defaults: dict[str, str] = {}
    # Logical fields the site refuses a record without (WSysAccount: Login, the extension): a user
    # lacking one is reported and not imported, rather than refused by the site on every run.
    required: tuple[str, ...] = ()


class WebitelLicenseObject(_Table):
    """The licence catalog pushed from Webitel (read-only in Creatio)."""

    entity: str = "WebitelLicense"
    serial: str = "Serial"
    product: str = "Product"
    name: str = "Name"
    valid_from: str = "ValidFrom"
    valid_till: str = "ValidTill"
    limit: str = "Limit"
    used: str = "Used"
    concurrent: str = "Concurrent"


class WebitelUserLicenseObject(_Table):
    """The "User Licenses" detail: one row per grant."""

    entity: str = "WebitelUserLicense"
    user: str = "UserId"
    license: str = "LicenseId"


class ObjectModel(_Table):
    """The names the connector uses on the Creatio side; ``profile`` picks the starting point."""

    profile: Literal["default", "wsysaccount"] = "default"
    webitel_user: WebitelUserObject = WebitelUserObject()
    webitel_license: WebitelLicenseObject | None = WebitelLicenseObject()
    webitel_user_license: WebitelUserLicenseObject | None = WebitelUserLicenseObject()


def entity_columns(model: ObjectModel) -> dict[str, dict[str, ColumnType]]:
    """Every entity the connector touches with its columns and their types (for ``$metadata``)."""
    out: dict[str, dict[str, ColumnType]] = {name: dict(cols) for name, cols in STANDARD_ENTITIES.items()}
    user = model.webitel_user
    user_cols: dict[str, ColumnType] = {"Id": "guid"}
    for column, kind in ((user.name, "text"), (user.username, "text"), (user.webitel_id, "text"),
                         (user.extension, "text"), (user.contact, "guid"),
                         (user.sys_admin_unit, "guid"), (user.active, "bool")):
        if column:
            user_cols[column] = kind  # type: ignore[assignment]
    for column in user.defaults:
        user_cols[column] = "guid"
    out[user.entity] = user_cols
    lic = model.webitel_license
    if lic is not None:
        out[lic.entity] = {"Id": "guid", lic.serial: "text", lic.product: "text", lic.name: "text",
                           lic.valid_from: "datetime", lic.valid_till: "datetime", lic.limit: "int",
                           lic.used: "int", lic.concurrent: "bool"}
    grant = model.webitel_user_license
    if grant is not None:
        out[grant.entity] = {"Id": "guid", grant.user: "guid", grant.license: "guid"}
    for cols in out.values():
        cols.update(BASE_COLUMNS)
    return out
