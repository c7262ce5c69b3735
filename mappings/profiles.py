"""The Creatio object model the connector writes, as a declarative, overridable table.

The vendor's CallManager package does not publish its object and column names
(``reference/creatio-api.md`` section 4.2), so every name is configurable. Two built-in profiles:

- ``default``: ``WebitelUser``, ``WebitelLicense``, ``WebitelUserLicense`` as described in the
  foundation issue.
- ``wsysaccount``: the older public ``WSysAccount`` object of the ``WebitelCollaborations``
  package (``reference/creatio-api.md`` section 4.1). It has no username, Webitel id, active flag
  or licence detail: links live in the state store only, ``Login`` carries the extension, and the
  required ``RoleId`` is filled with the "User" role.

A column set to ``None`` does not exist in that profile and is neither read nor written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ColumnType = Literal["guid", "text", "bool", "int", "datetime"]

# Creatio's own objects, as far as the connector reads or writes them (reference section 3).
STANDARD_ENTITIES: dict[str, dict[str, ColumnType]] = {
    "Contact": {"Id": "guid", "Name": "text", "Email": "text", "AccountId": "guid", "Phone": "text",
                "MobilePhone": "text", "JobTitle": "text"},
    "Account": {"Id": "guid", "Name": "text", "Code": "text"},
    "SysAdminUnit": {"Id": "guid", "Name": "text", "ContactId": "guid", "AccountId": "guid",
                     "SysAdminUnitTypeValue": "int", "Active": "bool", "Email": "text"},
    "ContactCommunication": {"Id": "guid", "ContactId": "guid", "CommunicationTypeId": "guid",
                             "Number": "text", "Primary": "bool"},
}
# Every BaseEntity also carries these (reference section 3.1).
BASE_COLUMNS: dict[str, ColumnType] = {"CreatedOn": "datetime", "ModifiedOn": "datetime"}

# CommunicationType "Extension" (constant InnerPhone), reference section 3.4.
EXTENSION_COMMUNICATION_TYPE = "e9d91e45-8d92-4e38-95a0-ef8aa28c9e7a"
# SysAdminUnitTypeValue of a user, reference section 3.5.
SYS_ADMIN_UNIT_USER = 4
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


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


WSYSACCOUNT_USER_ROLE = "7640dfbd-0cf2-4040-998e-4641042eff46"

PROFILES: dict[str, ObjectModel] = {
    "default": ObjectModel(),
    "wsysaccount": ObjectModel(
        profile="wsysaccount",
        webitel_user=WebitelUserObject(
            entity="WSysAccount", name="Name", username=None, webitel_id=None, extension="Login",
            contact="ContactId", sys_admin_unit=None, active=None,
            defaults={"RoleId": WSYSACCOUNT_USER_ROLE},
        ),
        webitel_license=None,
        webitel_user_license=None,
    ),
}


def object_model(profile: str = "default", overrides: dict | None = None) -> ObjectModel:
    """The profile's model with ``overrides`` (the ``[creatio.objects]`` table) laid over it."""
    base = PROFILES[profile].model_dump()
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    base["profile"] = profile
    return ObjectModel.model_validate(base)


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
