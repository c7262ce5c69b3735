"""The service document (``GET <odata>/``) and the EDMX ``$metadata`` document.

Lookups are written the OData 4 way: a navigation property named like the column without ``Id``
(``Contact`` for ``ContactId``) whose ``ReferentialConstraint`` names the column, as Creatio's
``$metadata`` exposes its lookups (reference creatio-api.md section 3: a lookup ``X`` is the column
``XId`` plus the navigation ``X`` for ``$expand``). Required columns are ``Nullable="false"``
(Inferred: how Creatio marks a required column; value types are never null either).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from sandbox.creatio.schema import ColumnType
from sandbox.creatio.values import EDM_TYPES

NAMESPACE = "Terrasoft.Configuration"
_EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
_EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"


def service_document(entities: dict[str, dict[str, ColumnType]], context: str) -> dict[str, Any]:
    """The OData service document listing every entity set.

    Args:
        entities: Entity -> columns.
        context: Absolute URL of ``$metadata``.
    """
    return {"@odata.context": context,
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in entities]}


def edmx(entities: dict[str, dict[str, ColumnType]], lookups: Mapping[str, Mapping[str, str]] | None = None,
         required: Mapping[str, frozenset[str]] | None = None) -> str:
    """The CSDL XML: one ``EntityType`` per entity (key ``Id``) and an ``EntityContainer``.

    Args:
        entities: Entity -> columns and their types.
        lookups: Entity -> lookup column -> the entity it points to.
        required: Entity -> its required columns.

    Returns:
        The document as a string with an XML declaration.
    """
    root = ET.Element("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": _EDMX_NS})
    services = ET.SubElement(root, "edmx:DataServices")
    schema = ET.SubElement(services, "Schema", {"Namespace": NAMESPACE, "xmlns": _EDM_NS})
    for name, columns in entities.items():
        entity_type = ET.SubElement(schema, "EntityType", {"Name": name})
        key = ET.SubElement(entity_type, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": "Id"})
        needed = (required or {}).get(name, frozenset())
        for column, kind in columns.items():
            attrs = {"Name": column, "Type": EDM_TYPES[kind]}
            # Inferred: Creatio writes a required column as not nullable (module docstring).
            if column == "Id" or kind in ("bool", "int") or column in needed:
                attrs["Nullable"] = "false"
            ET.SubElement(entity_type, "Property", attrs)
        for column, target in (lookups or {}).get(name, {}).items():
            if column in columns and column.endswith("Id") and target in entities:
                nav = ET.SubElement(entity_type, "NavigationProperty",
                                    {"Name": column[:-2], "Type": f"{NAMESPACE}.{target}"})
                ET.SubElement(nav, "ReferentialConstraint", {"Property": column, "ReferencedProperty": "Id"})
    container = ET.SubElement(schema, "EntityContainer", {"Name": "Default"})
    for name in entities:
        ET.SubElement(container, "EntitySet", {"Name": name, "EntityType": f"{NAMESPACE}.{name}"})
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
