"""JSON ``$batch`` of the sandbox Creatio app."""

from __future__ import annotations

import pytest

from sandbox.base import Request
from sandbox.creatio import CreatioApp
from sandbox.creatio.testing import DirectClient, body
from sandbox.seed.types import SeedData

ANN = "c0000000-0000-4000-8000-000000000001"
BOB = "c0000000-0000-4000-8000-000000000002"
NEW = "c0000000-0000-4000-8000-0000000000ff"
MISSING = "11111111-1111-1111-1111-111111111111"
T0 = 1_700_000_000.0


@pytest.fixture
def app() -> CreatioApp:
    seed = SeedData(domain="d", creatio={"Contact": [{"Id": ANN, "Name": "Ann"}, {"Id": BOB, "Name": "Bob"}]})
    return CreatioApp(seed, clock=lambda: T0)


@pytest.fixture
def client(app: CreatioApp) -> DirectClient:
    c = DirectClient(app)
    c.login()
    return c


def batch(client: DirectClient, requests: list[dict], prefer: str | None = None):
    headers = {"Content-Type": "application/json"}
    if prefer:
        headers["Prefer"] = prefer
    return client.post("/0/odata/$batch", {"requests": requests}, headers=headers)


def test_mixed_batch_answers_in_order_and_counts_writes(app: CreatioApp, client: DirectClient) -> None:
    response = batch(
        client,
        [
            {
                "method": "POST",
                "url": "Contact",
                "id": "1",
                "body": {"Id": NEW, "Name": "Cid"},
                "headers": {"Content-Type": "application/json;odata=verbose"},
            },
            {
                "method": "PATCH",
                "url": f"Contact({ANN})",
                "id": "2",
                "body": {"Name": "Ann B"},
                "atomicityGroup": "g1",
            },
            {"method": "GET", "url": f"Contact/{ANN}?$select=Name", "id": "3"},
            {"method": "DELETE", "url": f"/0/odata/Contact({BOB})", "id": "4"},
            {
                "method": "GET",
                "url": "http://creatio.test/0/odata/Contact?$filter=Name eq 'cid'&$select=Id",
                "id": "5",
            },
        ],
    )
    assert response.status == 200
    answers = body(response)["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [
        ("1", 201),
        ("2", 204),
        ("3", 200),
        ("4", 204),
        ("5", 200),
    ]
    created = answers[0]
    assert created["headers"]["location"] == f"http://creatio.test/0/odata/Contact({NEW})"
    assert created["headers"]["content-type"].startswith("application/json")
    assert created["body"]["Name"] == "Cid"
    assert answers[1]["atomicityGroup"] == "g1" and "body" not in answers[1]
    assert answers[2]["body"]["Name"] == "Ann B"
    assert answers[4]["body"]["value"] == [{"Id": NEW}]
    assert app.stats.writes == 3
    assert [row["Name"] for row in app.rows("Contact")] == ["Ann B", "Cid"]
    assert app.route(Request("POST", "/0/odata/$batch")) == "/0/odata/$batch"


FAILING = [
    {"method": "POST", "url": "Contact", "id": "a", "body": {"Name": "First"}},
    {"method": "PATCH", "url": f"Contact({MISSING})", "id": "b", "body": {"Name": "x"}},
    {"method": "POST", "url": "Contact", "id": "c", "body": {"Name": "Third"}},
]


def test_stops_at_first_failure_by_default(app: CreatioApp, client: DirectClient) -> None:
    answers = body(batch(client, FAILING))["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [("a", 201), ("b", 404)]
    assert answers[1]["body"]["error"]["message"].endswith(f"with key '{MISSING}' was not found.")
    assert [row["Name"] for row in app.rows("Contact")] == ["Ann", "Bob", "First"]
    assert app.stats.writes == 1


@pytest.mark.parametrize(
    "prefer", ["continue-on-error", "odata.continue-on-error", "return=minimal, continue-on-error"]
)
def test_continue_on_error_runs_everything(app: CreatioApp, client: DirectClient, prefer: str) -> None:
    answers = body(batch(client, FAILING, prefer=prefer))["responses"]
    assert [(a["id"], a["status"]) for a in answers] == [("a", 201), ("b", 404), ("c", 201)]
    assert [row["Name"] for row in app.rows("Contact")] == ["Ann", "Bob", "First", "Third"]
    assert app.stats.writes == 2


def test_sub_request_errors_keep_their_shapes(client: DirectClient) -> None:
    answers = body(
        batch(
            client,
            [
                {"method": "POST", "url": "Contact", "id": "dup", "body": {"Id": ANN, "Name": "Again"}},
                {"method": "POST", "url": "Contact", "id": "bad", "body": {"Nope": 1}},
                {"method": "GET", "url": "Lead", "id": "miss"},
                {"method": "PUT", "url": f"Contact({ANN})", "id": "put", "body": {}},
            ],
            prefer="continue-on-error",
        )
    )["responses"]
    assert [a["status"] for a in answers] == [500, 400, 404, 405]
    assert answers[0]["body"]["error"]["innererror"]["internalexception"]["message"] == (
        '23505: duplicate key value violates unique constraint "PKContactId"'
    )
    assert (
        answers[2]["body"]["MessageDetail"] == "No type was found that matches the controller named 'Lead'."
    )


def test_at_most_100_sub_requests(app: CreatioApp, client: DirectClient) -> None:
    many = [{"method": "POST", "url": "Account", "id": str(i), "body": {"Name": f"A{i}"}} for i in range(101)]
    response = batch(client, many)
    assert response.status == 400
    assert body(response)["error"]["message"] == "The batch contains 101 requests; at most 100 are allowed."
    assert app.stats.writes == 0
    response = batch(client, many[:100])
    assert response.status == 200 and len(body(response)["responses"]) == 100
    assert app.stats.writes == 100


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        {"nope": []},
        {"requests": [{"method": "GET", "id": "1"}]},
        {"requests": [{"method": "GET", "url": "Contact"}]},
        {
            "requests": [
                {"method": "GET", "url": "Contact", "id": "1"},
                {"method": "GET", "url": "Contact", "id": "1"},
            ]
        },
    ],
)
def test_malformed_batches_are_400(client: DirectClient, payload) -> None:
    assert client.post("/0/odata/$batch", payload).status == 400


def test_multipart_batch_is_not_implemented(client: DirectClient) -> None:
    response = client.post(
        "/0/odata/$batch", b"--b\r\n", headers={"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert response.status == 501


def test_batch_needs_auth_like_any_odata_route(app: CreatioApp) -> None:
    response = batch(DirectClient(app), FAILING)
    assert response.status == 401
    assert app.rows("Contact") and app.stats.writes == 0
