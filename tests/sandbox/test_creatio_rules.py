"""Save rules of the sandbox Creatio: required columns and the WSysAccount save script."""

from __future__ import annotations

import pytest

from sandbox.creatio import CreatioApp
from sandbox.creatio.schema import EMPTY_GUID, WSYSACCOUNT_ROLE_ADMINISTRATOR, WSYSACCOUNT_ROLE_USER
from sandbox.creatio.testing import DirectClient, body
from sandbox.seed.types import SeedData

ANN = "c0000000-0000-4000-8000-000000000001"
BOB = "c0000000-0000-4000-8000-000000000002"
CAROL = "c0000000-0000-4000-8000-000000000003"
ACC_ANN = "a0000000-0000-4000-8000-000000000001"
ACC_NEW = "a0000000-0000-4000-8000-0000000000ff"
T0 = 1_700_000_000.0


def make_app(**options) -> CreatioApp:
    seed = SeedData(domain="d", creatio={
        "Contact": [{"Id": ANN, "Name": "Ann"}, {"Id": BOB, "Name": "Bob"}, {"Id": CAROL, "Name": "Carol"}],
        "WSysAccount": [{"Id": ACC_ANN, "Name": "Ann", "Login": "ext100", "ContactId": ANN,
                         "RoleId": WSYSACCOUNT_ROLE_USER}],
    })
    return CreatioApp(seed, creatio_model="wsysaccount", clock=lambda: T0, **options)


@pytest.fixture
def app() -> CreatioApp:
    return make_app()


@pytest.fixture
def client(app: CreatioApp) -> DirectClient:
    c = DirectClient(app)
    c.login()
    return c


def account(**values) -> dict:
    return {"Name": "Bob", "Login": "101", "ContactId": BOB, "RoleId": WSYSACCOUNT_ROLE_USER, **values}


def assert_refused(response, *words: str) -> None:
    """The 500 "An error has occurred." shape, the text in innererror and internalexception."""
    assert response.status == 500
    error = body(response)["error"]
    assert error["code"] == "" and error["message"] == "An error has occurred."
    inner = error["innererror"]["message"]
    assert error["innererror"]["internalexception"]["message"] == inner
    for word in words:
        assert word in inner


# --- required columns -------------------------------------------------------------------------


def test_a_complete_account_is_created(app: CreatioApp, client: DirectClient) -> None:
    response = client.post("/0/odata/WSysAccount", account())
    assert response.status == 201
    assert body(response)["Login"] == "101" and body(response)["Password"] == ""
    assert app.stats.writes == 1


@pytest.mark.parametrize(("values", "column"), [
    ({"Login": None}, "Login"),
    ({"Login": ""}, "Login"),
    ({"ContactId": EMPTY_GUID}, "ContactId"),
    ({"ContactId": None}, "ContactId"),
    ({"RoleId": EMPTY_GUID}, "RoleId"),
])
def test_empty_required_column_refuses_the_create(app: CreatioApp, client: DirectClient, values: dict,
                                                  column: str) -> None:
    assert_refused(client.post("/0/odata/WSysAccount", account(**values)), f'"{column}"', '"WSysAccount"')
    assert len(app.rows("WSysAccount")) == 1 and app.stats.writes == 0


@pytest.mark.parametrize("column", ["Login", "ContactId", "RoleId"])
def test_missing_required_column_refuses_the_create(client: DirectClient, column: str) -> None:
    values = account()
    del values[column]
    assert_refused(client.post("/0/odata/WSysAccount", values), f'"{column}"')


def test_missing_required_columns_are_named_in_schema_order(client: DirectClient) -> None:
    assert_refused(client.post("/0/odata/WSysAccount", {"Name": "x"}), '"Login"')


def test_update_may_not_clear_a_required_column(app: CreatioApp, client: DirectClient) -> None:
    assert_refused(client.patch(f"/0/odata/WSysAccount({ACC_ANN})", {"RoleId": EMPTY_GUID}), '"RoleId"')
    assert_refused(client.patch(f"/0/odata/WSysAccount({ACC_ANN})", {"Login": ""}), '"Login"')
    assert client.patch(f"/0/odata/WSysAccount({ACC_ANN})", {"RoleId": WSYSACCOUNT_ROLE_ADMINISTRATOR,
                                                             "Name": "Ann L"}).status == 204
    assert app.stats.writes == 1


def test_update_of_other_columns_of_a_row_stored_empty(app: CreatioApp, client: DirectClient) -> None:
    row = app.insert("WSysAccount", {"Login": "", "ContactId": CAROL})  # a database write: no checks
    assert client.patch(f"/0/odata/WSysAccount({row['Id']})", {"Name": "Carol"}).status == 204


def test_objects_without_required_columns_take_empty_values(client: DirectClient) -> None:
    assert client.post("/0/odata/Contact", {}).status == 201
    assert client.post("/0/odata/WSysAccountRole", {"Name": "Supervisor"}).status == 201


def test_default_model_has_no_required_columns() -> None:
    client = DirectClient(CreatioApp(SeedData(domain="d")))
    client.login()
    assert client.post("/0/odata/WebitelUser", {}).status == 201


# --- the WSysAccount save script --------------------------------------------------------------


def test_same_login_is_refused(app: CreatioApp, client: DirectClient) -> None:
    # Text compares case-insensitively, like every text comparison of the sandbox.
    assert_refused(client.post("/0/odata/WSysAccount", account(Login="EXT100")), "same Login or ContactId",
                   '"Login"')
    assert [r["Id"] for r in app.rows("WSysAccount")] == [ACC_ANN] and app.stats.writes == 0


def test_same_contact_is_refused(client: DirectClient) -> None:
    assert_refused(client.post("/0/odata/WSysAccount", account(ContactId=ANN)), '"ContactId"')


def test_update_to_a_taken_login_or_contact_is_refused(app: CreatioApp, client: DirectClient) -> None:
    created = body(client.post("/0/odata/WSysAccount", account()))
    url = f"/0/odata/WSysAccount({created['Id']})"
    assert_refused(client.patch(url, {"Login": "ext100"}), '"Login"')
    assert_refused(client.patch(url, {"ContactId": ANN.upper()}), '"ContactId"')
    # The record's own values do not clash with itself.
    assert client.patch(url, {"Login": "101", "ContactId": BOB, "Name": "Bob S"}).status == 204
    assert client.patch(url, {"Login": "102"}).status == 204
    assert app.stats.writes == 3


def test_retried_create_with_the_same_id_meets_the_primary_key(client: DirectClient) -> None:
    response = client.post("/0/odata/WSysAccount", account(Id=ACC_ANN, Login="ext100", ContactId=ANN))
    assert response.status == 500
    assert "duplicate key" in body(response)["error"]["innererror"]["internalexception"]["message"]


def test_save_script_can_be_turned_off() -> None:
    app = make_app(save_scripts=False)
    client = DirectClient(app)
    client.login()
    assert client.post("/0/odata/WSysAccount", account(Login="ext100", ContactId=ANN)).status == 201
    assert len(app.rows("WSysAccount")) == 2
    # Required columns are a schema rule, not a script: still checked.
    assert_refused(client.post("/0/odata/WSysAccount", account(Login="")), '"Login"')


def test_direct_inserts_skip_the_save_script(app: CreatioApp) -> None:
    app.insert("WSysAccount", account(Login="ext100", ContactId=ANN))
    assert len(app.rows("WSysAccount")) == 2


def test_refusals_inside_a_batch(app: CreatioApp, client: DirectClient) -> None:
    response = client.post("/0/odata/$batch", {"requests": [
        {"method": "POST", "url": "WSysAccount", "id": "1", "body": account()},
        {"method": "POST", "url": "WSysAccount", "id": "2", "body": account(Login="103")},
        {"method": "POST", "url": "WSysAccount", "id": "3", "body": account(Login="104", ContactId=CAROL)},
    ]}, headers={"Content-Type": "application/json", "Prefer": "continue-on-error"})
    answers = body(response)["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [("1", 201), ("2", 500), ("3", 201)]
    assert '"ContactId"' in answers[1]["body"]["error"]["innererror"]["message"]
    assert sorted(r["Login"] for r in app.rows("WSysAccount")) == ["101", "104", "ext100"]
    assert app.stats.writes == 2
