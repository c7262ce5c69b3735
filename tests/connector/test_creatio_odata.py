"""The pure OData filter builder: literals, operators, column checks, URL-length chunking."""

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.creatio import odata
from connector.creatio.odata import Guid

GUID = "5A5E3A2C-0B1D-4C3E-9F10-ABCDEFABCDEF"


@pytest.mark.parametrize("value, expected", [
    ("Ann", "'Ann'"),
    ("O'Brien", "'O''Brien'"),
    ("''", "''''''"),
    ("Łukasz Żółć", "'Łukasz Żółć'"),
    ("", "''"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (0, "0"),
    (-17, "-17"),
    (1.5, "1.5"),
    (Decimal("2.50"), "2.50"),
    (Guid(GUID), GUID.lower()),
    (uuid.UUID(GUID), GUID.lower()),
    (datetime(2024, 1, 1, tzinfo=timezone.utc), "2024-01-01T00:00:00Z"),
    (datetime(2024, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T00:30:00Z"),
    (datetime(2024, 1, 1, 0, 0, 0, 683000, tzinfo=timezone.utc), "2024-01-01T00:00:00.683Z"),
    (date(2024, 2, 29), "2024-02-29"),
])
def test_literal(value, expected):
    assert odata.literal(value) == expected


def test_plain_string_guid_stays_text():
    # Only Guid/UUID are unquoted; a str that looks like a GUID is still compared as text.
    assert odata.literal(GUID) == f"'{GUID}'"


@pytest.mark.parametrize("value, error", [
    (datetime(2024, 1, 1), ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (b"bytes", TypeError),
    ([1, 2], TypeError),
])
def test_literal_refuses(value, error):
    with pytest.raises(error):
        odata.literal(value)


def test_guid_refuses_non_guid():
    with pytest.raises(ValueError):
        Guid("not-a-guid")
    with pytest.raises(ValueError):
        Guid("' or 1 eq 1 or '")


@pytest.mark.parametrize("built, expected", [
    (odata.eq("Name", "O'Brien"), "Name eq 'O''Brien'"),
    (odata.ne("Active", False), "Active ne false"),
    (odata.gt("ModifiedOn", datetime(2024, 1, 1, tzinfo=timezone.utc)), "ModifiedOn gt 2024-01-01T00:00:00Z"),
    (odata.ge("Count", 3), "Count ge 3"),
    (odata.lt("Count", 3), "Count lt 3"),
    (odata.le("Count", 3), "Count le 3"),
    (odata.eq("CommunicationType/Id", Guid(GUID)), f"CommunicationType/Id eq {GUID.lower()}"),
    (odata.and_(odata.eq("A", 1), odata.eq("B", "x")), "A eq 1 and B eq 'x'"),
    (odata.and_(odata.eq("A", 1)), "A eq 1"),
    (odata.or_(odata.eq("A", 1), odata.eq("A", 2)), "(A eq 1 or A eq 2)"),
    (odata.and_(odata.eq("T", 4), odata.or_(odata.eq("A", 1), odata.eq("A", 2))),
     "T eq 4 and (A eq 1 or A eq 2)"),
    (odata.not_(odata.eq("A", None)), "not (A eq null)"),
    (odata.any_of("Name", ["a", "b'c"]), "(Name eq 'a' or Name eq 'b''c')"),
    (odata.any_of("Id", [Guid(GUID)]), f"(Id eq {GUID.lower()})"),
    (odata.startswith("Name", "Ann"), "startswith(Name,'Ann')"),
    (odata.contains("Number", "10'1"), "contains(Number,'10''1')"),
])
def test_builders(built, expected):
    assert built == expected


@pytest.mark.parametrize("bad", ["", "1Name", "Name eq 1", "Name)", "Na'me", "A//B", "A/", "Name;",
                                 "Name or"])
def test_column_names_are_validated(bad):
    with pytest.raises(ValueError):
        odata.eq(bad, 1)
    with pytest.raises(ValueError):
        odata.chunk_any_of(bad, ["x"], max_chars=1000)


def test_empty_combinations_are_refused():
    for call in (lambda: odata.and_(), lambda: odata.or_(), lambda: odata.any_of("A", [])):
        with pytest.raises(ValueError):
            call()


def test_encoded_length_matches_what_requests_sends():
    text = "(Name eq 'Łukasz Żółć' or Name eq 'O''Brien')"
    url = requests.Request("GET", "https://h.test/x", params={"$filter": text}).prepare().url
    encoded_value = urlsplit(url).query.split("=", 1)[1]
    assert odata.encoded_length(text) == len(encoded_value)
    assert parse_qs(urlsplit(url).query)["$filter"] == [text]


def _values_of(chunks, name="Name"):
    out = []
    for chunk in chunks:
        assert chunk.startswith("(") and chunk.endswith(")")
        for part in chunk[1:-1].split(" or "):
            assert part.startswith(f"{name} eq '")
            out.append(part[len(name) + 5:-1].replace("''", "'"))
    return out


def test_chunking_respects_budget_and_is_greedy():
    values = [f"user{i:03d}" for i in range(50)]
    one = odata.encoded_length(odata.any_of("Name", values[:1]))
    per_extra = odata.encoded_length(" or Name eq 'user000'")
    budget = one + 4 * per_extra  # exactly five values fit
    chunks = odata.chunk_any_of("Name", values, max_chars=budget)
    assert [len(_values_of([c])) for c in chunks] == [5] * 10
    assert all(odata.encoded_length(c) <= budget for c in chunks)
    assert _values_of(chunks) == values
    assert odata.chunk_any_of("Name", values, max_chars=budget - 1)[0] == odata.any_of("Name", values[:4])


def test_chunking_counts_encoded_not_raw_characters():
    values = ["Łukasz Żółć", "O'Brien", "Ann"]
    raw_fit = len(odata.any_of("Name", values))  # fits raw, but not once encoded
    chunks = odata.chunk_any_of("Name", values, max_chars=raw_fit)
    assert len(chunks) > 1
    assert all(odata.encoded_length(c) <= raw_fit for c in chunks)
    assert _values_of(chunks) == values


def test_chunking_edge_cases():
    assert odata.chunk_any_of("Name", [], max_chars=100) == []
    assert odata.chunk_any_of("Name", ["a", "a", "b"], max_chars=1000) == ["(Name eq 'a' or Name eq 'b')"]
    with pytest.raises(ValueError, match="limit is 20"):
        odata.chunk_any_of("Name", ["a-rather-long-value"], max_chars=20)
    guids = [Guid(str(uuid.UUID(int=i))) for i in range(3)]
    assert odata.chunk_any_of("Id", guids, max_chars=10_000) == [odata.any_of("Id", guids)]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(min_size=1, max_size=20).filter(lambda s: " or " not in s), max_size=40),
       budget=st.integers(min_value=200, max_value=800))
def test_chunking_loses_and_duplicates_nothing(values, budget):
    chunks = odata.chunk_any_of("Name", values, max_chars=budget)
    assert all(odata.encoded_length(c) <= budget for c in chunks)
    assert _values_of(chunks) == list(dict.fromkeys(values))
    # Greedy: the first value of each next chunk would not have fitted into the previous one.
    flat = [_values_of([c]) for c in chunks]
    for previous, following in zip(flat, flat[1:]):
        assert odata.encoded_length(odata.any_of("Name", previous + following[:1])) > budget


def test_urlencode_of_filter_key():
    # requests encodes the key too; callers budget for "%24filter=" separately.
    assert urlencode({"$filter": "a"}) == "%24filter=a"
