"""Reading the OData ``$metadata`` document (EDMX XML) into entity → column names.

Used by the ``check`` command to tell an administrator, before any write, which configured
objects or columns the Creatio site lacks (the CallManager package's names are not public,
reference creatio-api.md section 4.2).

Elements are matched by local name, so both the OData 4 (``docs.oasis-open.org``) and older
Microsoft EDM namespaces work. Inherited properties (``BaseType``) are included. The document
comes from the configured Creatio site over an authenticated session; the standard library's
expat parser refuses exponential entity expansion.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .objects import ObjectModel, entity_columns

from ..errors import BadResponse


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_metadata(document: bytes | str) -> dict[str, set[str]]:
    """Entity set name → its property (column) names.

    Entity sets name the URLs (``/0/odata/<set>``); when a document has no entity container, the
    entity type names are used instead.

    Raises:
        BadResponse: the document is not XML.
    """
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise BadResponse(f"$metadata is not XML ({exc})", system="creatio", path="$metadata") from None
    schemas = [e for e in root.iter() if _local(e.tag) == "Schema"]
    if not schemas:
        # Well-formed XML without a schema (e.g. an XHTML page) must not read as "every entity missing".
        raise BadResponse("$metadata has no Schema element", system="creatio", path="$metadata")
    types: dict[str, tuple[set[str], str | None]] = {}  # qualified name → (own properties, base type)
    sets: dict[str, str] = {}  # entity set → qualified type name
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for element in schema:
            kind = _local(element.tag)
            if kind == "EntityType":
                props = {p.get("Name", "") for p in element if _local(p.tag) == "Property"}
                types[f"{namespace}.{element.get('Name')}"] = (props - {""}, element.get("BaseType"))
            elif kind == "EntityContainer":
                for entity_set in element:
                    if _local(entity_set.tag) == "EntitySet" and entity_set.get("Name"):
                        sets[entity_set.get("Name", "")] = entity_set.get("EntityType", "")

    def columns(type_name: str, depth: int = 0) -> set[str]:
        own, base = types.get(type_name, (set(), None))
        # A depth cap guards against a (malformed) BaseType cycle.
        return own | columns(base, depth + 1) if base and depth < 20 else set(own)

    if sets:
        return {name: columns(type_name) for name, type_name in sets.items()}
    return {name.rsplit(".", 1)[-1]: columns(name) for name in types}


def missing_columns(metadata: dict[str, set[str]], model: ObjectModel) -> list[str]:
    """Every entity (``"WebitelUser"``) or column (``"WebitelUser.Extension"``) of the profile that
    the site lacks, in the profile's order; empty when all are there."""
    missing = []
    for entity, columns in entity_columns(model).items():
        if entity not in metadata:
            missing.append(entity)
            continue
        missing.extend(f"{entity}.{column}" for column in columns if column not in metadata[entity])
    return missing
