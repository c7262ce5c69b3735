"""The sandbox's own Creatio schema: models by name, columns and types, constants."""

from __future__ import annotations

import pytest

from sandbox.creatio import CreatioApp
from sandbox.creatio.schema import (
    COLUMN_TYPES,
    MODEL_NAMES,
    MODELS,
    WSYSACCOUNT_ROLE_ADMINISTRATOR,
    WSYSACCOUNT_ROLE_USER,
    get_model,
    model_columns,
)
from sandbox.seed.types import SeedData

BASE = {"CreatedOn": "datetime", "ModifiedOn": "datetime"}
STANDARD_ORDER = ["Contact", "Account", "SysAdminUnit", "ContactCommunication"]


def test_model_names():
    assert MODEL_NAMES == ("default", "wsysaccount") == tuple(MODELS)
    assert get_model("wsysaccount").user_entity == "WSysAccount"
    assert get_model("default").user_entity == "WebitelUser"


@pytest.mark.parametrize("name", ["", "Default", "WSysAccount", "callmanager", None])
def test_unknown_model_names_raise(name):
    with pytest.raises(ValueError, match="unknown Creatio model"):
        get_model(name)
    with pytest.raises(ValueError):
        model_columns(name)
    with pytest.raises(ValueError):
        CreatioApp(SeedData(domain="d"), creatio_model=name)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_entity_has_id_first_base_columns_last_and_known_types(name):
    for entity, columns in model_columns(name).items():
        names = list(columns)
        assert names[0] == "Id" and columns["Id"] == "guid", entity
        assert names[-2:] == list(BASE) and {k: columns[k] for k in BASE} == BASE, entity
        assert set(columns.values()) <= set(COLUMN_TYPES), entity


def test_default_model_webitel_objects():
    columns = model_columns("default")
    assert list(columns) == [*STANDARD_ORDER, "WebitelUser", "WebitelLicense", "WebitelUserLicense"]
    assert columns["WebitelUser"] == {
        "Id": "guid", "Name": "text", "Username": "text", "WebitelId": "text", "Extension": "text",
        "ContactId": "guid", "SysAdminUnitId": "guid", "Active": "bool", **BASE,
    }
    assert columns["WebitelLicense"] == {
        "Id": "guid", "Serial": "text", "Product": "text", "Name": "text", "ValidFrom": "datetime",
        "ValidTill": "datetime", "Limit": "int", "Used": "int", "Concurrent": "bool", **BASE,
    }
    assert columns["WebitelUserLicense"] == {"Id": "guid", "UserId": "guid", "LicenseId": "guid", **BASE}
    entities = MODELS["default"].entities.values()
    assert all(not entity.required and not entity.unique_on_save for entity in entities)


def test_wsysaccount_model():
    model = get_model("wsysaccount")
    assert list(model.entities) == [*STANDARD_ORDER, "WSysAccount", "WSysAccountRole"]
    account = model.entities["WSysAccount"]
    assert dict(account.columns) == {
        "Id": "guid", "Name": "text", "Login": "text", "Password": "text", "ContactId": "guid",
        "RoleId": "guid", **BASE,
    }
    assert account.required == {"Login", "ContactId", "RoleId"}
    assert account.lookups == {"ContactId": "Contact", "RoleId": "WSysAccountRole"}
    assert account.unique_on_save == ("Login", "ContactId")
    role = model.entities["WSysAccountRole"]
    assert dict(role.columns) == {"Id": "guid", "Name": "text", "Description": "text", **BASE}
    assert {r["Id"]: r["Name"] for r in role.rows} == {WSYSACCOUNT_ROLE_ADMINISTRATOR: "Administrator",
                                                       WSYSACCOUNT_ROLE_USER: "User"}


def test_standard_entities_are_shared_by_both_models():
    default, wsys = model_columns("default"), model_columns("wsysaccount")
    assert {name: default[name] for name in STANDARD_ORDER} == {name: wsys[name] for name in STANDARD_ORDER}
    assert default["ContactCommunication"] == {
        "Id": "guid", "ContactId": "guid", "CommunicationTypeId": "guid", "Number": "text", "Primary": "bool",
        **BASE,
    }


def test_model_columns_is_a_copy():
    columns = model_columns("default")
    columns["Contact"]["Nickname"] = "text"
    del columns["Account"]
    assert "Nickname" not in model_columns("default")["Contact"] and "Account" in model_columns("default")


def test_app_tables_and_shipped_lookup_rows():
    app = CreatioApp(SeedData(domain="d"), creatio_model="wsysaccount")
    assert app.creatio_model == "wsysaccount" and app.entity_columns == model_columns("wsysaccount")
    assert [(r["Id"], r["Name"]) for r in app.rows("WSysAccountRole")] == [
        (WSYSACCOUNT_ROLE_ADMINISTRATOR, "Administrator"), (WSYSACCOUNT_ROLE_USER, "User")]
    assert app.rows("WSysAccount") == []
    assert CreatioApp(SeedData(domain="d")).entity_columns == model_columns("default")
