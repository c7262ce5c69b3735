"""The product's Creatio column list against the sandbox's own schema.

The sandbox builds its tables from ``sandbox.creatio.schema`` (written from the reference), not
from the product. This test is the one place that compares the two: every entity and column the
product reads or writes for a built-in profile must exist in the sandbox model of the same name,
with the same type. A misspelt or mistyped column in the product fails here, and against the
sandbox server as it would against a real site.
"""

from __future__ import annotations

import pytest

import mappings.profiles as profiles
from sandbox.creatio.schema import MODEL_NAMES, model_columns


def product_columns(name: str) -> dict[str, dict[str, str]]:
    """``entity_columns(PROFILES[name])`` of the product."""
    entity_columns = getattr(profiles, "entity_columns", None)
    if entity_columns is None:
        # The product's restructuring moves the function beside ObjectModel; PROFILES stays put.
        from connector.creatio.objects import entity_columns
    return entity_columns(profiles.PROFILES[name])


def schema_mismatches(name: str) -> list[str]:
    """What the product's profile ``name`` uses that the sandbox model ``name`` lacks or types
    differently, one line each (empty when the sandbox covers the product)."""
    if name not in MODEL_NAMES:
        return [f"no sandbox model {name!r}"]
    sandbox = model_columns(name)
    problems = []
    for entity, columns in product_columns(name).items():
        if entity not in sandbox:
            problems.append(f"{name}: entity {entity} is not in the sandbox schema")
            continue
        for column, kind in columns.items():
            if column not in sandbox[entity]:
                problems.append(f"{name}: column {entity}.{column} is not in the sandbox schema")
            elif sandbox[entity][column] != kind:
                problems.append(f"{name}: column {entity}.{column} is {kind} in the product, "
                                f"{sandbox[entity][column]} in the sandbox")
    return problems


def test_both_built_in_profiles_are_compared():
    assert {"default", "wsysaccount"} <= set(profiles.PROFILES)


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_product_columns_exist_in_the_sandbox_schema(name: str) -> None:
    assert schema_mismatches(name) == []


def test_the_check_reports_a_misspelt_column_a_wrong_type_and_a_missing_entity(monkeypatch) -> None:
    real = product_columns

    def wrong(name: str) -> dict[str, dict[str, str]]:
        columns = real(name)
        user = columns["WebitelUser"]
        user["UserName"] = user.pop("Username")  # misspelt
        user["Active"] = "text"  # mistyped
        columns["WebitelUsers"] = {"Id": "guid"}  # no such entity
        return columns

    monkeypatch.setitem(globals(), "product_columns", wrong)  # schema_mismatches looks it up per call
    assert sorted(schema_mismatches("default")) == [
        "default: column WebitelUser.Active is text in the product, bool in the sandbox",
        "default: column WebitelUser.UserName is not in the sandbox schema",
        "default: entity WebitelUsers is not in the sandbox schema",
    ]


def test_the_check_reports_a_profile_without_a_sandbox_model() -> None:
    assert schema_mismatches("callmanager") == ["no sandbox model 'callmanager'"]
