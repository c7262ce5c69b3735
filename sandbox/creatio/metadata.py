"""The service document (``GET <odata>/``) and the EDMX ``$metadata`` document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
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


def edmx(entities: dict[str, dict[str, ColumnType]]) -> str:
    """The CSDL XML: one ``EntityType`` per entity (key ``Id``) and an ``EntityContainer``.

    Args:
        entities: Entity -> columns and their types.

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
        for column, kind in columns.items():
            attrs = {"Name": column, "Type": EDM_TYPES[kind]}
            if column == "Id" or kind in ("bool", "int"):
                attrs["Nullable"] = "false"
            ET.SubElement(entity_type, "Property", attrs)
    container = ET.SubElement(schema, "EntityContainer", {"Name": "Default"})
    for name in entities:
        ET.SubElement(container, "EntitySet", {"Name": name, "EntityType": f"{NAMESPACE}.{name}"})
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
