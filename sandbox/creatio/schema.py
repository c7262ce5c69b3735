"""The sandbox's own Creatio schema: entities, columns and their types, required columns, constants.

Written from ``reference/creatio-api.md`` (sections 3 to 5), not from the product: the product's
column list is what the sandbox must be able to contradict. A wrong column name in the product
fails against these tables with the 400 a real site answers.

Two models of the Webitel objects, chosen by name (``MODELS``):

- ``"default"``: the newer CallManager connector (section 4.2). Its schema names are not
  public; ``WebitelUser``, ``WebitelLicense`` and ``WebitelUserLicense`` are the names this
  project assumes.
- ``"wsysaccount"``: the public ``WSysAccount`` object of the ``WebitelCollaborations`` package
  (section 4.1) and its ``WSysAccountRole`` lookup. It has no licence objects.

Both carry the standard entities ``Contact``, ``Account``, ``SysAdminUnit`` and
``ContactCommunication`` (section 3), with the columns the sandbox data uses. Every entity has
``Id`` first and the base columns ``CreatedOn``/``ModifiedOn`` last (section 3.1), which is the
order of ``$metadata`` and of every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

ColumnType = Literal["guid", "text", "bool", "int", "datetime"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)

# An empty lookup on the wire (section 2.5).
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
# CommunicationType "Extension" (constant InnerPhone), section 3.4.
EXTENSION_COMMUNICATION_TYPE = "e9d91e45-8d92-4e38-95a0-ef8aa28c9e7a"
# SysAdminUnitTypeValue of a user, section 3.5.
SYS_ADMIN_UNIT_USER = 4
# WSysAccountRole records shipped by WebitelCollaborations (section 4.1).
WSYSACCOUNT_ROLE_ADMINISTRATOR = "85f6f2c0-16c5-40f4-bb75-becad578d495"
WSYSACCOUNT_ROLE_USER = "7640dfbd-0cf2-4040-998e-4641042eff46"

# Every BaseEntity (section 3.1). CreatedById, ModifiedById and ProcessListeners are left out:
# nothing the sandbox serves reads them.
BASE_COLUMNS: Mapping[str, ColumnType] = MappingProxyType({"CreatedOn": "datetime", "ModifiedOn": "datetime"})


@dataclass(frozen=True)
class Entity:
    """One object (OData entity set) of the schema.

    Attributes:
        name: Schema name, e.g. ``Contact``.
        columns: Column -> type, ``Id`` first and base columns last (``$metadata`` order).
        required: Columns a save refuses when missing or empty (empty text, all-zero GUID).
        lookups: Lookup column -> the entity it points to (documentation; not enforced).
        unique_on_save: Columns the object's save script keeps unique: a save is refused when
            another row has the same value in any one of them.
        rows: Records every site of this model ships with (lookup values).
    """

    name: str
    columns: Mapping[str, ColumnType]
    required: frozenset[str] = frozenset()
    lookups: Mapping[str, str] = field(default_factory=dict)
    unique_on_save: tuple[str, ...] = ()
    rows: tuple[Mapping[str, Any], ...] = ()


def _entity(name: str, columns: dict[str, ColumnType], **extra: Any) -> Entity:
    """An entity with ``Id`` put first and the base columns last."""
    full: dict[str, ColumnType] = {"Id": "guid", **columns, **BASE_COLUMNS}
    unknown = (set(extra.get("required", ())) | set(extra.get("lookups", {})) |
               set(extra.get("unique_on_save", ()))) - set(full)
    if unknown:
        raise ValueError(f"{name}: no such columns {sorted(unknown)}")
    if "required" in extra:
        extra["required"] = frozenset(extra["required"])
    return Entity(name, MappingProxyType(full), **extra)


# --- Creatio's own objects (section 3) --------------------------------------------------------

CONTACT = _entity("Contact", {
    "Name": "text", "Email": "text", "AccountId": "guid", "Phone": "text", "MobilePhone": "text",
    "JobTitle": "text",
}, lookups={"AccountId": "Account"})
ACCOUNT = _entity("Account", {"Name": "text", "Code": "text"})
# Users and roles; for a user Name holds the login name (section 3.5).
SYS_ADMIN_UNIT = _entity("SysAdminUnit", {
    "Name": "text", "ContactId": "guid", "AccountId": "guid", "SysAdminUnitTypeValue": "int",
    "Active": "bool", "Email": "text",
}, lookups={"ContactId": "Contact", "AccountId": "Account"})
CONTACT_COMMUNICATION = _entity("ContactCommunication", {
    "ContactId": "guid", "CommunicationTypeId": "guid", "Number": "text", "Primary": "bool",
}, lookups={"ContactId": "Contact"})

STANDARD_ENTITIES: tuple[Entity, ...] = (CONTACT, ACCOUNT, SYS_ADMIN_UNIT, CONTACT_COMMUNICATION)

# --- model "default": the CallManager connector (section 4.2) ---------------------------------
# The vendor does not publish these schema names or columns; they are the names this project
# assumes (the "Webitel Users" section, the licence catalog and the "User Licenses" detail).

WEBITEL_USER = _entity("WebitelUser", {
    "Name": "text", "Username": "text", "WebitelId": "text", "Extension": "text", "ContactId": "guid",
    "SysAdminUnitId": "guid", "Active": "bool",
}, lookups={"ContactId": "Contact", "SysAdminUnitId": "SysAdminUnit"})
WEBITEL_LICENSE = _entity("WebitelLicense", {
    "Serial": "text", "Product": "text", "Name": "text", "ValidFrom": "datetime", "ValidTill": "datetime",
    "Limit": "int", "Used": "int", "Concurrent": "bool",
})
WEBITEL_USER_LICENSE = _entity("WebitelUserLicense", {"UserId": "guid", "LicenseId": "guid"},
                               lookups={"UserId": "WebitelUser", "LicenseId": "WebitelLicense"})

# --- model "wsysaccount": WebitelCollaborations (section 4.1) ---------------------------------

# "Webitel user role" lookup (a BaseLookup: Name, Description) with the two shipped roles.
WSYSACCOUNT_ROLE = _entity("WSysAccountRole", {"Name": "text", "Description": "text"}, rows=(
    {"Id": WSYSACCOUNT_ROLE_ADMINISTRATOR, "Name": "Administrator", "Description": ""},
    {"Id": WSYSACCOUNT_ROLE_USER, "Name": "User", "Description": ""},
))
# "Webitel users": Login (the extension) is the primary display column; Password is hidden from
# the UI. Login, Contact and Role are required (RequirementType ApplicationLevel in the shipped
# schema). The save script checks that no other WSysAccount has the same Login or the same
# Contact (one Webitel account per contact, unique login); see sandbox.creatio.rules.
WSYSACCOUNT = _entity(
    "WSysAccount",
    {"Name": "text", "Login": "text", "Password": "text", "ContactId": "guid", "RoleId": "guid"},
    required={"Login", "ContactId", "RoleId"},
    lookups={"ContactId": "Contact", "RoleId": "WSysAccountRole"},
    unique_on_save=("Login", "ContactId"),
)


@dataclass(frozen=True)
class Model:
    """One Creatio site's set of objects.

    Attributes:
        name: ``"default"`` or ``"wsysaccount"``.
        entities: Entity name -> entity, in service-document order.
        user_entity: The object holding one record per Webitel user.
    """

    name: str
    entities: Mapping[str, Entity]
    user_entity: str

    def columns(self) -> dict[str, dict[str, ColumnType]]:
        """``{entity: {column: type}}``, a fresh copy."""
        return {name: dict(entity.columns) for name, entity in self.entities.items()}


def _model(name: str, user_entity: str, extra: tuple[Entity, ...]) -> Model:
    entities = {entity.name: entity for entity in (*STANDARD_ENTITIES, *extra)}
    return Model(name, MappingProxyType(entities), user_entity)


MODELS: Mapping[str, Model] = MappingProxyType({
    "default": _model("default", "WebitelUser", (WEBITEL_USER, WEBITEL_LICENSE, WEBITEL_USER_LICENSE)),
    "wsysaccount": _model("wsysaccount", "WSysAccount", (WSYSACCOUNT, WSYSACCOUNT_ROLE)),
})
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def get_model(name: str) -> Model:
    """The model called ``name``.

    Raises:
        ValueError: no such model.
    """
    model = MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise ValueError(f"unknown Creatio model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return model


def model_columns(name: str) -> dict[str, dict[str, ColumnType]]:
    """``{entity: {column: type}}`` of the model called ``name`` (a fresh copy).

    Raises:
        ValueError: no such model.
    """
    return get_model(name).columns()
