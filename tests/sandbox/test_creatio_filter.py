"""``$filter`` grammar, typing and the index plan of the sandbox Creatio app."""

from __future__ import annotations

import pytest

from sandbox.creatio import CreatioApp
from sandbox.creatio.errors import ODataError
from sandbox.creatio.odata_filter import And, Compare, Literal, Member, Not, Or, parse_filter
from sandbox.creatio.testing import DirectClient, body
from sandbox.seed.types import SeedData

ACME = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "aaaaaaaa-0000-4000-8000-000000000002"
IDS = {name: f"c0000000-0000-4000-8000-00000000000{n}" for n, name in enumerate("ABCD", 1)}
CONTACTS = [
    {
        "Id": IDS["A"],
        "Name": "O'Brien",
        "Email": "ob@x.test",
        "AccountId": ACME,
        "ModifiedOn": "2024-01-01T00:00:00Z",
    },
    {"Id": IDS["B"], "Name": "Łukasz Żółć", "Email": "lz@x.test", "ModifiedOn": "2024-03-01T12:00:00.5Z"},
    {
        "Id": IDS["C"],
        "Name": "ann lee",
        "Email": "ann@x.test",
        "AccountId": OTHER,
        "ModifiedOn": "2023-12-31T23:59:59.9999999Z",
    },
    {
        "Id": IDS["D"],
        "Name": "Bob",
        "AccountId": ACME,
        "JobTitle": "CEO",
        "ModifiedOn": "2024-06-01T00:00:00Z",
    },
]
LICENSES = [
    {"Serial": "L1", "Limit": 5, "Concurrent": True, "ValidTill": "2025-01-01T00:00:00Z"},
    {"Serial": "L2", "Limit": 10, "Concurrent": False},
]
USERS = [
    {"Name": "Agent One", "Extension": "101", "Active": True},
    {"Name": "Agent Two", "Extension": "102", "Active": False},
]


@pytest.fixture(scope="module")
def client() -> DirectClient:
    seed = SeedData(
        domain="d", creatio={"Contact": CONTACTS, "WebitelLicense": LICENSES, "WebitelUser": USERS}
    )
    c = DirectClient(CreatioApp(seed))
    c.login()
    return c


def query(client: DirectClient, entity: str, text: str):
    return client.get(f"/0/odata/{entity}", query={"$filter": text})


def ids(response) -> list[str]:
    assert response.status == 200, response.body
    by_id = {v: k for k, v in IDS.items()}
    return [by_id[row["Id"]] for row in body(response)["value"]]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Name eq 'O''Brien'", ["A"]),
        ("Name eq 'o''BRIEN'", ["A"]),  # Inferred: case-insensitive collation
        ("Name eq 'ŁUKASZ ŻÓŁĆ'", ["B"]),
        ("contains(Name,'żół')", ["B"]),
        ("startswith(Name, 'ANN')", ["C"]),
        ("endswith(Email,'@X.TEST')", ["A", "B", "C"]),
        ("not contains(Name,'o')", ["B", "C"]),
        ("tolower(Name) eq 'bob' and toupper(Name) eq 'BOB'", ["D"]),
        ("Name gt 'b'", ["A", "B", "D"]),
        ("Name eq Name", ["A", "B", "C", "D"]),
        ("Email eq ''", ["D"]),
        ("JobTitle eq 'ceo' and Email eq ''", ["D"]),
        (f"AccountId eq {ACME}", ["A", "D"]),
        (f"AccountId eq {ACME.upper()}", ["A", "D"]),
        (f"Account/Id eq {ACME}", ["A", "D"]),
        ("AccountId eq null", ["B"]),
        ("null eq AccountId", ["B"]),
        ("AccountId eq 00000000-0000-0000-0000-000000000000", ["B"]),
        ("AccountId ne null", ["A", "C", "D"]),
        (f"Id eq {IDS['B']} or Id eq {IDS['D']}", ["B", "D"]),
        ("ModifiedOn gt 2024-01-01T00:00:00Z", ["B", "D"]),
        ("ModifiedOn ge 2024-01-01T00:00:00Z", ["A", "B", "D"]),
        ("2024-01-01T00:00:00Z lt ModifiedOn", ["B", "D"]),
        ("ModifiedOn lt 2024-01-01T01:00:00+01:00", ["C"]),
        ("ModifiedOn eq 2024-03-01T12:00:00.500Z", ["B"]),
        ("ModifiedOn le 2023-12-31T23:59:59.9999999Z", ["C"]),
        ("ModifiedOn gt 2023-12-31T23:59:59.999Z and ModifiedOn lt 2024-01-01T00:00:00Z", ["C"]),
        (
            "(Name eq 'Bob' or (Name eq 'ann lee' and Email eq 'ann@x.test')) and not (AccountId eq null)",
            ["C", "D"],
        ),
        ("((((Name eq 'Bob'))))", ["D"]),
        ("not (not (Name eq 'Bob'))", ["D"]),
        (f"Name eq 'nobody' or Name eq 'Bob' or AccountId eq {OTHER}", ["C", "D"]),
        ("(Name eq 'Bob' and Email eq 'x') or Name eq 'ann lee'", ["C"]),
        ("Name eq 'Bob' and Name eq 'ann lee'", []),
        ("Name  eq\t'Bob'", ["D"]),
    ],
)
def test_filter_table(client: DirectClient, text: str, expected: list[str]) -> None:
    assert ids(query(client, "Contact", text)) == expected


@pytest.mark.parametrize(
    "entity, text, expected",
    [
        ("WebitelUser", "Active", ["Agent One"]),
        ("WebitelUser", "Active eq true", ["Agent One"]),
        ("WebitelUser", "not Active", ["Agent Two"]),
        ("WebitelUser", "not Active eq true", ["Agent Two"]),  # (not Active) eq true, OData precedence
        ("WebitelUser", "Active eq false and Extension eq '102'", ["Agent Two"]),
        ("WebitelLicense", "Limit gt 5", ["L2"]),
        ("WebitelLicense", "Limit le 5.5", ["L1"]),
        ("WebitelLicense", "Limit eq -1", []),
        ("WebitelLicense", "Concurrent eq true", ["L1"]),
        ("WebitelLicense", "ValidTill lt 2030-01-01T00:00:00Z", ["L1"]),  # empty dates match no comparison
        ("WebitelLicense", "ValidTill eq null", ["L2"]),
        ("WebitelLicense", "ValidTill ne null and Limit ge 5", ["L1"]),
    ],
)
def test_filter_other_types(client: DirectClient, entity: str, text: str, expected: list[str]) -> None:
    rows = body(query(client, entity, text))["value"]
    assert [row.get("Name") or row["Serial"] for row in rows] == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("Name eq", "Syntax error at position 7 in 'Name eq'. Unexpected end of input."),
        ("Name eq 'x", "Syntax error at position 8 in 'Name eq 'x'. Unterminated string literal."),
        ("(Name eq 'x'", "Syntax error at position 12 in '(Name eq 'x''. Expected ')'."),
        ("Name eq 'x')", "Syntax error at position 11 in 'Name eq 'x')'. Unexpected ')'."),
        ("Name EQ 'x'", "Syntax error at position 5 in 'Name EQ 'x''. Unexpected 'EQ'."),
        ("Name eq 'a' # 1", "Syntax error at position 12 in 'Name eq 'a' # 1'. Unexpected character '#'."),
        (
            "ModifiedOn gt 2024-01-01",
            (
                "Syntax error at position 14 in 'ModifiedOn gt 2024-01-01'. '2024-01-01' "
                "needs a time and a UTC offset, e.g. 2024-01-01T00:00:00Z."
            ),
        ),
        (
            "ModifiedOn gt 2024-13-01T00:00:00Z",
            (
                "Syntax error at position 14 in 'ModifiedOn gt 2024-13-01T00:00:00Z'. "
                "'2024-13-01T00:00:00Z' is not a valid Edm.DateTimeOffset."
            ),
        ),
        ("", "Syntax error at position 0 in ''. The filter is empty."),
        (
            "AccountId eq 'acme'",
            (
                "The query specified in the URI is not valid. A binary operator with incompatible "
                "types was detected. Found operand types 'Edm.Guid' and 'Edm.String' "
                "for operator kind 'Equal'."
            ),
        ),
        (
            f"Name eq {ACME}",
            (
                "The query specified in the URI is not valid. A binary operator with incompatible "
                "types was detected. Found operand types 'Edm.String' and 'Edm.Guid' "
                "for operator kind 'Equal'."
            ),
        ),
        (
            "ModifiedOn gt '2024-01-01T00:00:00Z'",
            (
                "The query specified in the URI is not valid. A binary operator "
                "with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and "
                "'Edm.String' for "
                "operator kind 'GreaterThan'."
            ),
        ),
        (
            "Name",
            (
                "The query specified in the URI is not valid. The expression must be of type Edm.Boolean, "
                "not Edm.String."
            ),
        ),
        (
            "not Name eq 'x'",
            (
                "The query specified in the URI is not valid. The expression must be of type "
                "Edm.Boolean, not Edm.String."
            ),
        ),
        (
            "length(Name) eq 3",
            (
                "The query specified in the URI is not valid. An unknown function with name "
                "'length' was found."
            ),
        ),
        (
            "contains(Name)",
            (
                "The query specified in the URI is not valid. The function 'contains' takes 2 "
                "argument(s), got 1."
            ),
        ),
        (
            "contains(AccountId,'a')",
            (
                "The query specified in the URI is not valid. The function 'contains' needs "
                "Edm.String arguments, got Edm.Guid."
            ),
        ),
        (
            "Name gt null",
            ("The query specified in the URI is not valid. null can only be compared with eq or ne, not gt."),
        ),
        (
            "Account/Name eq 'x'",
            (
                "The query specified in the URI is not valid. Could not find a property named "
                "'Account/Name' on type 'Terrasoft.Configuration.Contact'."
            ),
        ),
    ],
)
def test_filter_errors_are_400(client: DirectClient, text: str, message: str) -> None:
    response = query(client, "Contact", text)
    assert response.status == 400
    error = body(response)["error"]
    assert error["message"] == message
    assert error["innererror"]["type"] == "Microsoft.OData.ODataException"


def test_int_column_rejects_string_literal(client: DirectClient) -> None:
    assert query(client, "WebitelLicense", "Limit eq 'five'").status == 400
    assert query(client, "WebitelUser", "Active eq 1").status == 400


def test_parser_builds_n_ary_nodes() -> None:
    tree = parse_filter("A eq 1 or B eq 2 or not C and D eq 'x''y'")
    assert isinstance(tree, Or) and len(tree.items) == 3
    last = tree.items[2]
    assert isinstance(last, And) and isinstance(last.items[0], Not)
    assert last.items[1] == Compare("eq", Member(("D",), 30), Literal("string", "x'y", 35), 32)


def test_long_or_chain_and_deep_nesting() -> None:
    chain = " or ".join(f"Name eq 'n{i}'" for i in range(5000))
    assert len(parse_filter(chain).items) == 5000
    assert isinstance(parse_filter("(" * 100 + "A" + ")" * 100), Member)
    with pytest.raises(ODataError) as info:
        parse_filter("(" * 101 + "A" + ")" * 101)
    assert info.value.status == 400


# --- index plan ------------------------------------------------------------------------------

N = 10_000
CONTACT = "e0000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def big() -> DirectClient:
    users = [
        {
            "Name": f"User {i}",
            "Extension": str(1000 + i),
            "Active": i % 2 == 0,
            "ContactId": CONTACT if i % 1000 == 0 else None,
        }
        for i in range(N)
    ]
    c = DirectClient(CreatioApp(SeedData(domain="d", creatio={"WebitelUser": users})))
    c.login()
    return c


def evaluated(client: DirectClient, text: str) -> tuple[list[str], int]:
    before = client.app.rows_evaluated
    response = query(client, "WebitelUser", text)
    assert response.status == 200, response.body
    return [row["Name"] for row in body(response)["value"]], client.app.rows_evaluated - before


@pytest.mark.parametrize(
    "text, names, count",
    [
        ("Name eq 'user 5' or Name eq 'User 77' or Name eq 'nobody'", ["User 5", "User 77"], 2),
        ("(Name eq 'User 5' or Name eq 'User 6') and Active eq true", ["User 6"], 2),
        ("Active eq true and Extension eq '1005'", [], 1),
        ("(Name eq 'User 5' and Active eq true) or Name eq 'User 6'", ["User 6"], 2),
        (
            f"ContactId eq {CONTACT} and Active",
            [
                "User 0",
                "User 1000",
                "User 2000",
                "User 3000",
                "User 4000",
                "User 5000",
                "User 6000",
                "User 7000",
                "User 8000",
                "User 9000",
            ],
            10,
        ),
        ("Name eq 'User 5' or Active eq true", None, N),  # one unindexable term: full scan
        ("contains(Name,'User 5')", None, N),
    ],
)
def test_index_plan_limits_rows_evaluated(
    big: DirectClient, text: str, names: list[str] | None, count: int
) -> None:
    found, rows = evaluated(big, text)
    if names is not None:
        assert found == names
    assert rows == count


def test_hundreds_of_ored_names_use_the_index(big: DirectClient) -> None:
    wanted = [f"User {i}" for i in range(N - 1, 0, -31)][:300]
    text = " or ".join(f"Name eq '{name.upper()}'" for name in wanted)
    found, rows = evaluated(big, text)
    assert rows == 300
    assert found == sorted(wanted, key=lambda name: int(name.split()[1]))  # insertion order
    first_id = big.app.rows("WebitelUser")[0]["Id"]
    assert evaluated(big, f"Id eq {first_id}") == (["User 0"], 1)
