"""Reading the OData ``$metadata`` document (EDMX XML): entity sets, their columns, column types,
lookup targets and required columns.

Used by the ``check`` command to tell an administrator, before any write, which configured
objects or columns the Creatio site lacks, and by ``check --discover`` to guess which objects of
the site hold the Webitel users and licences (the CallManager package's names are not public,
reference creatio-api.md section 4.2).

Elements are matched by local name, so both the OData 4 (``docs.oasis-open.org``) and older
Microsoft EDM namespaces work. Inherited properties (``BaseType``) are included. A lookup column
``XId`` is known by the navigation property ``X`` whose ``ReferentialConstraint`` names it
(``Property="XId"``); without a constraint, a navigation property ``X`` beside a Guid column
``XId`` is read the same way (how Creatio exposes lookups, reference section 3). The document comes
from the configured Creatio site over an authenticated session; the standard library's expat
parser refuses exponential entity expansion.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Mapping

from .objects import ObjectModel, entity_columns

from ..errors import BadResponse

# EDM primitive types by the column type the connector knows them as (connector.creatio.values).
# Decision: numbers that are no whole numbers are "number", blobs "binary"; the connector maps no
# role to either, discovery only shows them.
EDM_KINDS = {
    "Edm.Guid": "guid", "Edm.String": "text", "Edm.Boolean": "bool", "Edm.Int16": "int",
    "Edm.Int32": "int", "Edm.Int64": "int", "Edm.Byte": "int", "Edm.DateTimeOffset": "datetime",
    "Edm.DateTime": "datetime", "Edm.Date": "datetime", "Edm.Decimal": "number", "Edm.Double": "number",
    "Edm.Single": "number", "Edm.Binary": "binary", "Edm.Stream": "binary",
}


@dataclass(frozen=True)
class Column:
    """One column (EDM property) of an entity set.

    Attributes:
        name: the column name, e.g. ``ContactId``.
        type: ``guid``, ``text``, ``bool``, ``int``, ``datetime``, ``number``, ``binary``, or
            ``other`` for a type the connector does not read.
        edm_type: the EDM type as written, e.g. ``Edm.Guid``.
        lookup: the entity set a lookup column points to (``Contact``), None for other columns.
        required: the property is ``Nullable="false"`` (Inferred: Creatio marks a required
            column so; value types like Boolean are never null either, so this is a hint only).
    """

    name: str
    type: str
    edm_type: str
    lookup: str | None = None
    required: bool = False


@dataclass(frozen=True)
class SiteMetadata:
    """Entity set → its columns by name, as ``$metadata`` describes them."""

    entities: Mapping[str, Mapping[str, Column]] = field(default_factory=dict)

    def names(self) -> dict[str, set[str]]:
        """Entity set → its column names."""
        return {entity: set(columns) for entity, columns in self.entities.items()}

    def __contains__(self, entity: object) -> bool:
        return entity in self.entities

    def __getitem__(self, entity: str) -> Mapping[str, Column]:
        return self.entities[entity]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass
class _Type:
    """An EntityType as declared: its own properties and navigation properties, and its base."""

    properties: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name → (edm type, required)
    navigation: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name → (type, column)
    base: str | None = None


def _target_type(edm_type: str) -> str:
    """``Terrasoft.Configuration.Contact`` of ``Collection(Terrasoft.Configuration.Contact)`` too."""
    text = edm_type.strip()
    if text.startswith("Collection(") and text.endswith(")"):
        return ""  # a one-to-many navigation (a detail) is no lookup column
    return text


def read_metadata(document: bytes | str) -> SiteMetadata:
    """Every entity set with its columns, their types, lookup targets and required flags.

    Entity sets name the URLs (``/0/odata/<set>``); when a document has no entity container, the
    entity type names are used instead.

    Raises:
        BadResponse: the document is not XML, or has no ``Schema`` element.
    """
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise BadResponse(f"$metadata is not XML ({exc})", system="creatio", path="$metadata") from None
    schemas = [e for e in root.iter() if _local(e.tag) == "Schema"]
    if not schemas:
        # Well-formed XML without a schema (e.g. an XHTML page) must not read as "every entity missing".
        raise BadResponse("$metadata has no Schema element", system="creatio", path="$metadata")
    types: dict[str, _Type] = {}  # qualified name → declaration
    sets: dict[str, str] = {}  # entity set → qualified type name
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        alias = schema.get("Alias")
        for element in schema:
            kind = _local(element.tag)
            if kind == "EntityType" and element.get("Name"):
                declared = _read_type(element)
                types[f"{namespace}.{element.get('Name')}"] = declared
                if alias:
                    types.setdefault(f"{alias}.{element.get('Name')}", declared)
            elif kind == "EntityContainer":
                for entity_set in element:
                    if _local(entity_set.tag) == "EntitySet" and entity_set.get("Name"):
                        sets[entity_set.get("Name", "")] = entity_set.get("EntityType", "")
    if not sets:
        sets = {name.rsplit(".", 1)[-1]: name for name in types}
    set_of_type: dict[str, str] = {}
    for name, type_name in sets.items():
        set_of_type.setdefault(type_name, name)

    def chain(type_name: str) -> list[_Type]:
        out, seen = [], set()
        # A depth cap guards against a (malformed) BaseType cycle.
        while type_name and type_name in types and type_name not in seen and len(out) < 20:
            seen.add(type_name)
            out.append(types[type_name])
            type_name = types[type_name].base or ""
        return out

    def lookup_target(type_name: str) -> str:
        # Decision: a lookup to a type without an entity set is named by the type's short name.
        return set_of_type.get(type_name) or type_name.rsplit(".", 1)[-1]

    entities: dict[str, dict[str, Column]] = {}
    for name, type_name in sets.items():
        declared = chain(type_name)
        properties: dict[str, tuple[str, bool]] = {}
        navigation: dict[str, tuple[str, str | None]] = {}
        for level in reversed(declared):  # the base first, so an override wins
            properties.update(level.properties)
            navigation.update(level.navigation)
        lookups: dict[str, str] = {}
        for nav_name, (target, column) in navigation.items():
            if not target:
                continue
            column = column or (f"{nav_name}Id" if properties.get(f"{nav_name}Id", ("",))[0] == "Edm.Guid"
                                else None)
            if column in properties:
                lookups.setdefault(column, lookup_target(target))
        entities[name] = {
            column: Column(column, EDM_KINDS.get(edm, "other"), edm, lookups.get(column), required)
            for column, (edm, required) in properties.items()
        }
    return SiteMetadata(entities)


def _read_type(element: ET.Element) -> _Type:
    declared = _Type(base=element.get("BaseType"))
    for child in element:
        kind = _local(child.tag)
        name = child.get("Name", "")
        if not name:
            continue
        if kind == "Property":
            declared.properties[name] = (child.get("Type", ""), child.get("Nullable", "true") == "false")
        elif kind == "NavigationProperty":
            constraint = next((c for c in child if _local(c.tag) == "ReferentialConstraint"), None)
            column = constraint.get("Property") if constraint is not None else None
            declared.navigation[name] = (_target_type(child.get("Type", "")), column)
    return declared


def parse_metadata(document: bytes | str) -> dict[str, set[str]]:
    """Entity set → its property (column) names (see ``read_metadata``).

    Raises:
        BadResponse: the document is not XML.
    """
    return read_metadata(document).names()


def missing_columns(metadata: Mapping[str, set[str]] | SiteMetadata, model: ObjectModel) -> list[str]:
    """Every entity (``"WebitelUser"``) or column (``"WebitelUser.Extension"``) of the profile that
    the site lacks, in the profile's order; empty when all are there."""
    names = metadata.names() if isinstance(metadata, SiteMetadata) else metadata
    missing = []
    for entity, columns in entity_columns(model).items():
        if entity not in names:
            missing.append(entity)
            continue
        missing.extend(f"{entity}.{column}" for column in columns if column not in names[entity])
    return missing
