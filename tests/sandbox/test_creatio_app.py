"""Sandbox Creatio app through ``handle``: auth, metadata, collection queries, CRUD, routing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sandbox.base import Request
from sandbox.creatio import CreatioApp
from sandbox.creatio.schema import EMPTY_GUID, MODEL_NAMES, model_columns
from sandbox.creatio.testing import DirectClient, body, header, set_cookies
from sandbox.seed.types import SeedData

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ACME = "aaaaaaaa-0000-4000-8000-000000000001"
ANN = "c0000000-0000-4000-8000-000000000001"
BOB = "c0000000-0000-4000-8000-000000000002"
CAROL = "c0000000-0000-4000-8000-000000000003"
AUTH_FAILED = {
    "Message": "Authentication failed.",
    "StackTrace": None,
    "ExceptionType": "System.Security.Authentication.AuthenticationException",
}


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_seed() -> SeedData:
    return SeedData(
        domain="demo.local",
        creatio={
            "Account": [{"Id": ACME, "Name": "Acme", "Code": "AC"}],
            "Contact": [
                {
                    "Id": ANN,
                    "Name": "Ann Lee",
                    "Email": "ann@acme.test",
                    "AccountId": ACME,
                    "JobTitle": "CEO",
                    "CreatedOn": "2024-02-07T21:35:26.683Z",
                    "ModifiedOn": "2024-02-07T21:35:26.683Z",
                },
                {"Id": BOB, "Name": "bob Stone", "Email": "bob@acme.test", "AccountId": ACME},
                {"Id": CAROL, "Name": "Carol Diaz", "Phone": "+1 555"},
            ],
        },
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> CreatioApp:
    return CreatioApp(make_seed(), clock=clock)


@pytest.fixture
def client(app: CreatioApp) -> DirectClient:
    c = DirectClient(app)
    assert body(c.login())["Code"] == 0
    return c


# --- forms login -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ServiceModel/AuthService.svc/Login", "/0/ServiceModel/AuthService.svc/Login"]
)
def test_login_success_sets_cookies(app: CreatioApp, path: str) -> None:
    response = DirectClient(app).login(path=path)
    assert response.status == 200
    assert body(response) == {
        "Code": 0,
        "Message": "",
        "Exception": None,
        "PasswordChangeUrl": None,
        "RedirectUrl": None,
    }
    cookies = set_cookies(response)
    assert set(cookies) == {".ASPXAUTH", "BPMCSRF", "BPMLOADER", "UserName"}
    assert cookies[".ASPXAUTH"].endswith("; path=/; HttpOnly")
    assert cookies["BPMCSRF"].endswith("; path=/") and "HttpOnly" not in cookies["BPMCSRF"]
    assert "HttpOnly" in cookies["BPMLOADER"]
    assert cookies["UserName"].startswith("UserName=Supervisor; expires=")
    assert "GMT; path=/; HttpOnly" in cookies["UserName"]


def test_login_bad_password_is_http_200_code_1(app: CreatioApp) -> None:
    response = DirectClient(app).login(password="wrong")
    assert response.status == 200
    assert body(response) == {
        "Code": 1,
        "Message": "Invalid username or password specified.",
        "Exception": None,
        "PasswordChangeUrl": None,
        "RedirectUrl": None,
    }
    assert set_cookies(response) == {}


def test_login_malformed_body_and_wrong_method(app: CreatioApp) -> None:
    path = "/ServiceModel/AuthService.svc/Login"
    assert app.handle(Request("POST", path, body=b"{not json")).status == 400
    assert app.handle(Request("POST", path, body=b'{"UserName": "Supervisor"}')).status == 400
    response = app.handle(Request("GET", path))
    assert response.status == 405
    assert header(response, "Allow") == "POST"


def test_odata_needs_a_session(app: CreatioApp) -> None:
    response = DirectClient(app).get("/0/odata/Contact")
    assert response.status == 401
    assert body(response) == AUTH_FAILED


def test_missing_or_wrong_csrf_is_403(client: DirectClient) -> None:
    assert client.get("/0/odata/Contact", csrf=None).status == 403
    response = client.get("/0/odata/Contact", csrf="not-the-token")
    assert response.status == 403
    assert body(response)["error"]["message"] == (
        "The BPMCSRF header is missing or does not match the session's CSRF token."
    )
    assert client.get("/0/odata/Contact").status == 200


def test_session_idle_timeout_slides(clock: Clock) -> None:
    app = CreatioApp(make_seed(), clock=clock, session_lifetime_s=100)
    client = DirectClient(app)
    client.login()
    clock.now += 90
    assert client.get("/0/odata/Account").status == 200
    clock.now += 90  # 180 s after login but only 90 s after the last use
    assert client.get("/0/odata/Account").status == 200
    clock.now += 100
    response = client.get("/0/odata/Account")
    assert (response.status, body(response)) == (401, AUTH_FAILED)
    clock.now += 1  # the dead session stays dead
    assert client.get("/0/odata/Account").status == 401


def test_expired_session_redirect_variant(clock: Clock) -> None:
    app = CreatioApp(make_seed(), clock=clock, session_lifetime_s=10, expired_session_response="redirect")
    client = DirectClient(app)
    client.login()
    clock.now += 11
    response = client.get("/0/odata/Contact", query={"$top": "1"})
    assert response.status == 302
    # ReturnUrl carries the raw URL (query still percent-encoded), itself percent-encoded.
    assert (
        header(response, "Location") == "/Login/NuiLogin.aspx?ReturnUrl=%2F0%2Fodata%2FContact%3F%2524top%3D1"
    )
    assert b"Object moved" in response.body


def test_fault_expires_sessions_every_k_requests(clock: Clock) -> None:
    app = CreatioApp(make_seed(), clock=clock, expire_sessions_after_requests=3)
    client = DirectClient(app)
    client.login()
    assert [client.get("/0/odata/Account").status for _ in range(4)] == [200, 200, 200, 401]
    client.login()
    assert [client.get("/0/odata/Account").status for _ in range(4)] == [200, 200, 200, 401]


def test_expire_sessions_kills_sessions_and_tokens(app: CreatioApp, client: DirectClient) -> None:
    bearer = DirectClient(app)
    bearer.token()
    app.expire_sessions()
    assert client.get("/0/odata/Account").status == 401
    assert bearer.get("/0/odata/Account").status == 401


# --- OAuth -----------------------------------------------------------------------------------


def test_oauth_token_and_bearer_access(clock: Clock) -> None:
    app = CreatioApp(make_seed(), clock=clock, oauth_token_lifetime_s=600)
    client = DirectClient(app)
    response = client.token()
    assert response.status == 200
    payload = body(response)
    assert set(payload) == {"access_token", "expires_in", "token_type", "scope"}
    assert payload["expires_in"] == 600 and payload["token_type"] == "Bearer"
    assert payload["scope"].startswith("ApplicationAccess_") and len(payload["scope"]) == 18 + 32
    assert client.get("/0/odata/Account").status == 200  # no cookies, no BPMCSRF
    clock.now += 600
    response = client.get("/0/odata/Account")
    assert response.status == 401
    assert header(response, "WWW-Authenticate") == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"client_secret": "nope"}, "invalid_client"),
        ({"client_id": "other"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_oauth_token_errors(app: CreatioApp, kwargs: dict, error: str) -> None:
    response = DirectClient(app).token(**kwargs)
    assert (response.status, body(response)) == (400, {"error": error})


def test_unknown_bearer_token_is_401(app: CreatioApp) -> None:
    client = DirectClient(app)
    client.bearer = "made-up"
    assert client.get("/0/odata/Contact").status == 401


# --- service document and metadata -----------------------------------------------------------


def test_service_document(client: DirectClient) -> None:
    response = client.get("/0/odata/")
    payload = body(response)
    assert payload["@odata.context"] == "http://creatio.test/0/odata/$metadata"
    assert [item["name"] for item in payload["value"]] == list(model_columns("default"))
    assert payload["value"][0] == {"name": "Contact", "kind": "EntitySet", "url": "Contact"}


@pytest.mark.parametrize("profile", MODEL_NAMES)
def test_metadata_names_lookup_targets_and_required_columns(profile: str) -> None:
    """Lookups as OData 4 navigation properties with a referential constraint; required columns
    not nullable (what ``check --discover`` reads)."""
    from sandbox.creatio.schema import get_model

    client = DirectClient(CreatioApp(SeedData(domain="d"), creatio_model=profile))
    client.login()
    root = ET.fromstring(client.get("/0/odata/$metadata").body)
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    model = get_model(profile)
    for entity_type in root.iter(f"{edm}EntityType"):
        entity = model.entities[entity_type.get("Name")]
        navigation = {
            nav.find(f"{edm}ReferentialConstraint").get("Property"): nav.get("Type").rsplit(".", 1)[-1]
            for nav in entity_type.findall(f"{edm}NavigationProperty")
        }
        assert navigation == {c: t for c, t in entity.lookups.items() if t in model.entities}
        required = {p.get("Name") for p in entity_type.findall(f"{edm}Property")
                    if p.get("Nullable") == "false"}
        assert entity.required | {"Id"} <= required
    if profile == "wsysaccount":
        (account,) = [e for e in root.iter(f"{edm}EntityType") if e.get("Name") == "WSysAccount"]
        names = {nav.get("Name"): nav.get("Type") for nav in account.findall(f"{edm}NavigationProperty")}
        assert names == {"Contact": "Terrasoft.Configuration.Contact",
                         "Role": "Terrasoft.Configuration.WSysAccountRole"}


def test_the_service_document_at_either_odata_root() -> None:
    for root in ("/0/odata", "/odata"):
        client = DirectClient(CreatioApp(SeedData(domain="d"), odata_path=root))
        client.login()
        assert body(client.get(f"{root}/"))["value"][0]["name"] == "Contact"
        other = "/odata" if root == "/0/odata" else "/0/odata"
        assert client.get(f"{other}/").status == 404


@pytest.mark.parametrize("profile", MODEL_NAMES)
def test_metadata_lists_profile_entities_and_columns(profile: str) -> None:
    client = DirectClient(CreatioApp(SeedData(domain="d"), creatio_model=profile))
    client.login()
    response = client.get("/0/odata/$metadata")
    assert response.status == 200
    assert header(response, "Content-Type") == "application/xml; charset=utf-8"
    ns = {
        "edmx": "http://docs.oasis-open.org/odata/ns/edmx",
        "edm": "http://docs.oasis-open.org/odata/ns/edm",
    }
    schema = ET.fromstring(response.body).find("edmx:DataServices/edm:Schema", ns)
    assert schema.get("Namespace") == "Terrasoft.Configuration"
    edm = {
        "guid": "Edm.Guid",
        "text": "Edm.String",
        "bool": "Edm.Boolean",
        "int": "Edm.Int32",
        "datetime": "Edm.DateTimeOffset",
    }
    found = {}
    for entity_type in schema.findall("edm:EntityType", ns):
        assert [ref.get("Name") for ref in entity_type.findall("edm:Key/edm:PropertyRef", ns)] == ["Id"]
        found[entity_type.get("Name")] = {
            p.get("Name"): p.get("Type") for p in entity_type.findall("edm:Property", ns)
        }
    expected = {
        name: {col: edm[kind] for col, kind in cols.items()} for name, cols in model_columns(profile).items()
    }
    assert found == expected
    sets = {
        s.get("Name"): s.get("EntityType") for s in schema.findall("edm:EntityContainer/edm:EntitySet", ns)
    }
    assert sets == {name: f"Terrasoft.Configuration.{name}" for name in expected}
    if profile == "wsysaccount":
        assert found["WSysAccount"] == {
            "Id": "Edm.Guid",
            "Name": "Edm.String",
            "Login": "Edm.String",
            "Password": "Edm.String",
            "ContactId": "Edm.Guid",
            "RoleId": "Edm.Guid",
            "CreatedOn": "Edm.DateTimeOffset",
            "ModifiedOn": "Edm.DateTimeOffset",
        }
        assert found["WSysAccountRole"] == {
            "Id": "Edm.Guid",
            "Name": "Edm.String",
            "Description": "Edm.String",
            "CreatedOn": "Edm.DateTimeOffset",
            "ModifiedOn": "Edm.DateTimeOffset",
        }
        assert "WebitelUser" not in found and "WebitelLicense" not in found


# --- collection queries ----------------------------------------------------------------------


def names(response) -> list[str]:
    return [row["Name"] for row in body(response)["value"]]


def test_collection_rows_have_every_column_and_creatio_empties(client: DirectClient) -> None:
    payload = body(client.get("/0/odata/Contact"))
    assert payload["@odata.context"] == "http://creatio.test/0/odata/$metadata#Contact"
    assert payload["value"][0] == {
        "Id": ANN,
        "Name": "Ann Lee",
        "Email": "ann@acme.test",
        "AccountId": ACME,
        "Phone": "",
        "MobilePhone": "",
        "JobTitle": "CEO",
        "CreatedOn": "2024-02-07T21:35:26.683Z",
        "ModifiedOn": "2024-02-07T21:35:26.683Z",
    }
    carol = payload["value"][2]
    assert carol["AccountId"] == EMPTY_GUID and carol["Email"] == "" and carol["JobTitle"] == ""
    assert carol["CreatedOn"] == "2023-11-14T22:13:20Z"  # stamped from the clock at seed time


def test_select_orderby_top_skip_count(client: DirectClient) -> None:
    response = client.get("/0/odata/Contact", query={"$select": "Name,Id", "$orderby": "Name desc"})
    payload = body(response)
    assert payload["@odata.context"] == "http://creatio.test/0/odata/$metadata#Contact(Id,Name)"
    assert payload["value"] == [
        {"Id": CAROL, "Name": "Carol Diaz"},
        {"Id": BOB, "Name": "bob Stone"},
        {"Id": ANN, "Name": "Ann Lee"},
    ]  # case-insensitive order
    response = client.get(
        "/0/odata/Contact",
        query={"$orderby": "AccountId asc, Name desc", "$skip": "1", "$top": "1", "$count": "true"},
    )
    assert body(response)["@odata.count"] == 3
    assert names(response) == ["bob Stone"]
    response = client.get(
        "/0/odata/Contact", query={"$count": "true", "$top": "0", "$filter": "AccountId eq " + ACME}
    )
    assert body(response) == {
        "@odata.context": "http://creatio.test/0/odata/$metadata#Contact",
        "@odata.count": 2,
        "value": [],
    }


def test_top_is_capped_at_20000(app: CreatioApp, client: DirectClient) -> None:
    for i in range(20_001):
        app.insert("Account", {"Name": f"A{i}"})
    response = client.get("/0/odata/Account", query={"$top": "50000", "$count": "true", "$select": "Id"})
    payload = body(response)
    assert payload["@odata.count"] == 20_002
    assert len(payload["value"]) == 20_000
    assert "@odata.nextLink" not in payload
    assert len(body(client.get("/0/odata/Account", query={"$select": "Id"}))["value"]) == 20_000


def test_count_segment_is_plain_text(client: DirectClient) -> None:
    response = client.get("/0/odata/Contact/$count")
    assert (response.status, response.body) == (200, b"3")
    assert header(response, "Content-Type").startswith("text/plain")
    response = client.get("/0/odata/Contact/$count", query={"$filter": "startswith(Name,'B')"})
    assert response.body == b"1"


@pytest.mark.parametrize(
    "query, message",
    [
        (
            {"$select": "Name,Nope"},
            "Could not find a property named 'Nope' on type 'Terrasoft.Configuration.Contact'.",
        ),
        (
            {"$orderby": "Nope desc"},
            "Could not find a property named 'Nope' on type 'Terrasoft.Configuration.Contact'.",
        ),
        (
            {"$filter": "Nope eq 'x'"},
            "Could not find a property named 'Nope' on type 'Terrasoft.Configuration.Contact'.",
        ),
        (
            {"$orderby": "Name sideways"},
            "Syntax error in $orderby 'Name sideways': expected 'Column [asc|desc]'.",
        ),
        (
            {"$top": "-1"},
            (
                "Invalid value '-1' for $top query option found. "
                "The $top query option requires a non-negative integer value."
            ),
        ),
        ({"$count": "yes"}, "'yes' is not a valid count option."),
        ({"$frobnicate": "1"}, "The query parameter '$frobnicate' is not supported."),
    ],
)
def test_bad_query_options_are_400(client: DirectClient, query: dict, message: str) -> None:
    response = client.get("/0/odata/Contact", query=query)
    assert response.status == 400
    assert body(response)["error"]["message"] == f"The query specified in the URI is not valid. {message}"


def test_expand_is_not_implemented(client: DirectClient) -> None:
    assert client.get("/0/odata/Contact", query={"$expand": "Account"}).status == 501


def test_unknown_entity_is_routing_miss(client: DirectClient) -> None:
    response = client.get("/0/odata/Lead")
    assert response.status == 404
    assert body(response) == {
        "Message": "No HTTP resource was found that matches the request URI "
                   "'http://creatio.test/0/odata/Lead'.",
        "MessageDetail": "No type was found that matches the controller named 'Lead'.",
    }


# --- single entities and writes --------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [f"/0/odata/Contact({BOB})", f"/0/odata/Contact/{BOB}", f"/0/odata/Contact({BOB.upper()})"]
)
def test_get_by_key(client: DirectClient, path: str) -> None:
    payload = body(client.get(path))
    assert payload["@odata.context"] == "http://creatio.test/0/odata/$metadata#Contact/$entity"
    assert payload["Id"] == BOB and payload["Name"] == "bob Stone"


def test_get_by_key_missing_or_malformed(client: DirectClient) -> None:
    response = client.get("/0/odata/Contact(11111111-1111-1111-1111-111111111111)")
    assert response.status == 404
    assert body(response)["error"]["message"] == (
        "The entity of type 'Terrasoft.Configuration.Contact' with key "
        "'11111111-1111-1111-1111-111111111111' was not found."
    )
    assert client.get("/0/odata/Contact(42)").status == 400


def test_post_creates_with_location_and_defaults(app: CreatioApp, clock: Clock) -> None:
    clock.now = 1_707_341_726.683  # 2024-02-07T21:35:26.683Z
    client = DirectClient(app)
    client.login()
    response = client.post("/0/odata/Contact", {"Name": "Dan Park", "AccountId": ACME.upper()})
    assert response.status == 201
    created = body(response)
    new_id = created["Id"]
    assert header(response, "Location") == f"http://creatio.test/0/odata/Contact({new_id})"
    assert created == {
        "@odata.context": "http://creatio.test/0/odata/$metadata#Contact/$entity",
        "Id": new_id,
        "Name": "Dan Park",
        "Email": "",
        "AccountId": ACME,
        "Phone": "",
        "MobilePhone": "",
        "JobTitle": "",
        "CreatedOn": "2024-02-07T21:35:26.683Z",
        "ModifiedOn": "2024-02-07T21:35:26.683Z",
    }
    assert app.stats.writes == 1
    assert app.rows("Contact")[-1]["Name"] == "Dan Park"


def test_post_honours_client_id_and_duplicate_fails_like_postgres(
    app: CreatioApp, client: DirectClient
) -> None:
    new_id = "d0000000-0000-4000-8000-000000000004"
    response = client.post("/0/odata/Contact", {"Id": new_id, "Name": "Eve"})
    assert response.status == 201 and body(response)["Id"] == new_id
    response = client.post("/0/odata/Contact", {"Id": new_id, "Name": "Eve again"})
    assert response.status == 500
    message = '23505: duplicate key value violates unique constraint "PKContactId"'
    assert body(response) == {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": message,
                "type": "",
                "stacktrace": "",
                "internalexception": {
                    "message": message,
                    "type": "Npgsql.PostgresException",
                    "stacktrace": "",
                },
            },
        }
    }
    assert app.stats.writes == 1


@pytest.mark.parametrize(
    "payload, message",
    [
        (
            {"Name": "X", "Nickname": "x"},
            (
                "The property 'Nickname' does not exist on type 'Terrasoft.Configuration.Contact'. "
                "Make sure to only use property names that are defined by the type "
                "or mark the type as open type."
            ),
        ),
        (
            {"AccountId": "acme"},
            (
                "Cannot convert the literal 'acme' to the expected type 'Edm.Guid' of property "
                "'AccountId' on type 'Terrasoft.Configuration.Contact'."
            ),
        ),
        (
            {"Name": 5},
            (
                "Cannot convert the literal '5' to the expected type 'Edm.String' of property 'Name' on type "
                "'Terrasoft.Configuration.Contact'."
            ),
        ),
    ],
)
def test_post_rejects_unknown_properties_and_bad_values(
    client: DirectClient, payload: dict, message: str
) -> None:
    response = client.post("/0/odata/Contact", payload)
    assert response.status == 400
    assert body(response)["error"]["message"] == message


@pytest.mark.parametrize(
    "payload",
    [
        {"SysAdminUnitTypeValue": "4"},
        {"Active": "yes"},
        {"Active": 1},
        {"SysAdminUnitTypeValue": True},
        {"SysAdminUnitTypeValue": 2**31},
    ],
)
def test_post_rejects_wrong_int_and_bool_values(client: DirectClient, payload: dict) -> None:
    assert client.post("/0/odata/SysAdminUnit", payload).status == 400


def test_post_malformed_json_or_not_an_object(client: DirectClient) -> None:
    assert client.post("/0/odata/Contact", b"{oops").status == 400
    assert client.post("/0/odata/Contact", [1, 2]).status == 400
    assert client.post("/0/odata/Contact", b"").status == 400


def test_datetime_columns_round_trip_and_default_to_min_value(client: DirectClient) -> None:
    response = client.post(
        "/0/odata/WebitelLicense",
        {"Serial": "S1", "ValidFrom": "2024-01-01T02:00:00+02:00", "Limit": 5, "Concurrent": True},
    )
    created = body(response)
    assert created["ValidFrom"] == "2024-01-01T00:00:00Z"
    assert created["ValidTill"] == "0001-01-01T00:00:00Z"
    assert created["Used"] == 0 and created["Concurrent"] is True
    assert client.post("/0/odata/WebitelLicense", {"ValidFrom": "2024-01-01T00:00:00"}).status == 400


def test_patch_and_delete(app: CreatioApp, client: DirectClient, clock: Clock) -> None:
    clock.now += 60
    response = client.patch(f"/0/odata/Contact({BOB})", {"Name": "Bob Stone", "AccountId": None})
    assert (response.status, response.body) == (204, b"")
    row = body(client.get(f"/0/odata/Contact/{BOB}"))
    assert row["Name"] == "Bob Stone" and row["AccountId"] == EMPTY_GUID
    assert row["ModifiedOn"] == "2023-11-14T22:14:20Z" and row["CreatedOn"] == "2023-11-14T22:13:20Z"
    assert client.patch("/0/odata/Contact(11111111-1111-1111-1111-111111111111)", {"Name": "x"}).status == 404
    assert client.patch(f"/0/odata/Contact({BOB})", {"Nope": 1}).status == 400
    assert client.patch(f"/0/odata/Contact({BOB})", {"Id": ANN}).status == 400
    assert client.delete(f"/0/odata/Contact/{BOB}").status == 204
    assert client.delete(f"/0/odata/Contact({BOB})").status == 404
    assert client.get(f"/0/odata/Contact({BOB})").status == 404
    assert app.stats.writes == 2


def test_writes_keep_indexes_current(client: DirectClient) -> None:
    def find(name: str) -> list[str]:
        return [
            r["Id"]
            for r in body(client.get("/0/odata/Contact", query={"$filter": f"Name eq '{name}'"}))["value"]
        ]

    assert find("bob stone") == [BOB]  # builds the Name index
    client.patch(f"/0/odata/Contact({BOB})", {"Name": "Robert Stone"})
    new_id = body(client.post("/0/odata/Contact", {"Name": "Ann Lee"}))["Id"]
    assert find("bob stone") == []
    assert find("ROBERT STONE") == [BOB]
    assert find("Ann Lee") == [ANN, new_id]
    client.delete(f"/0/odata/Contact({ANN})")
    assert find("Ann Lee") == [new_id]


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("PUT", f"/0/odata/Contact({ANN})", "GET, PATCH, DELETE"),
        ("DELETE", "/0/odata/Contact", "GET, POST"),
        ("POST", "/0/odata/$metadata", "GET"),
        ("GET", "/0/odata/$batch", "POST"),
    ],
)
def test_wrong_methods_are_405(client: DirectClient, method: str, path: str, allow: str) -> None:
    response = client.request(method, path, body={})
    assert response.status == 405
    assert header(response, "Allow") == allow


# --- routes, helpers, seed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, route",
    [
        ("/0/odata/Contact", "/0/odata/Contact"),
        (f"/0/odata/Contact({ANN})", "/0/odata/Contact({id})"),
        (f"/0/odata/Contact/{ANN}", "/0/odata/Contact({id})"),
        ("/0/odata/Contact/$count", "/0/odata/Contact/$count"),
        ("/0/odata/$batch", "/0/odata/$batch"),
        ("/0/odata/$metadata", "/0/odata/$metadata"),
        ("/0/odata", "/0/odata/"),
        ("/ServiceModel/AuthService.svc/Login", "/ServiceModel/AuthService.svc/Login"),
        ("/connect/token", "/connect/token"),
    ],
)
def test_route_names(app: CreatioApp, path: str, route: str) -> None:
    assert app.route(Request("GET", path)) == route


def test_custom_odata_path() -> None:
    app = CreatioApp(make_seed(), odata_path="/odata")
    client = DirectClient(app)
    client.login()
    assert len(body(client.get("/odata/Contact"))["value"]) == 3
    assert app.route(Request("GET", f"/odata/Contact({ANN})")) == "/odata/Contact({id})"
    assert client.get("/0/odata/Contact").status == 404


def test_insert_and_seed_validation(app: CreatioApp) -> None:
    row = app.insert("Contact", {"Name": "Łukasz Żółć", "ModifiedOn": "2020-05-18T17:50:39.2838673Z"})
    assert row["ModifiedOn"] == "2020-05-18T17:50:39.2838673Z"
    assert app.stats.writes == 0
    with pytest.raises(ValueError):
        app.insert("Contact", {"Nickname": "x"})
    with pytest.raises(ValueError):
        app.insert("Contact", {"Id": ANN})
    with pytest.raises(ValueError):
        CreatioApp(SeedData(domain="d", creatio={"Contact": [{"AccountId": "not-a-guid"}]}))


def test_wsysaccount_profile_table(clock: Clock) -> None:
    role = "7640dfbd-0cf2-4040-998e-4641042eff46"
    seed = SeedData(
        domain="d",
        creatio={
            "WSysAccount": [{"Login": "100", "ContactId": ANN, "RoleId": role}],
            "WebitelUser": [{"Name": "ignored in this profile"}],
        },
    )
    app = CreatioApp(seed, creatio_model="wsysaccount", clock=clock)
    client = DirectClient(app)
    client.login()
    rows = body(client.get("/0/odata/WSysAccount", query={"$filter": "Login eq '100'"}))["value"]
    assert [(r["ContactId"], r["RoleId"], r["Name"], r["Password"]) for r in rows] == [(ANN, role, "", "")]
    assert client.get("/0/odata/WebitelUser").status == 404
