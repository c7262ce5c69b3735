"""CreatioClient against mocked HTTP: exact requests, paging, CRUD, retries, metadata, typed rows."""

import json
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from threadkit import settle
import responses
from responses import matchers

from connector import errors
from connector.creatio.batch import BatchOp
from connector.creatio.client import CreatioClient
from connector.creatio import odata
from connector.creatio.metadata import missing_columns, parse_metadata, read_metadata
from connector.creatio.objects import entity_columns
from connector.creatio.records import Account, Contact, ContactCommunication, Row, SysUser
from connector.creatio.values import EMPTY_GUID, parse_datetime
from connector.creatio.records import GrantRecord, LicenseRecord, WebitelUserRecord
from connector.retry import RetryPolicy
from connector.settings import CreatioSettings
from mappings.profiles import PROFILES, object_model

SITE = "https://creatio.test"
ODATA = f"{SITE}/0/odata"
CONTACTS = f"{ODATA}/Contact"
LOGIN = f"{SITE}/ServiceModel/AuthService.svc/Login"
ID = "5a5e3a2c-0b1d-4c3e-9f10-abcdefabcdef"
SESSION = {"BPMCSRF": "csrf-1", "ForceUseSession": "true"}
PG_DUPLICATE = 'duplicate key value violates unique constraint "PK_Contact"'


def guid(n):
    return f"00000000-0000-0000-0000-{n:012d}"


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture(autouse=True)
def mocked_http():
    """Every test runs against ``responses``; an unregistered URL fails the test."""
    responses.start()
    yield
    responses.stop()
    responses.reset()


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(sleeps):
    # Realistic cookie values: every cookie value is a secret, and a one-letter one would be
    # scrubbed from every message as a word of its own.
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", ".ASPXAUTH=aspx-1; path=/"),
                                                     ("Set-Cookie", "BPMCSRF=csrf-1; path=/")])
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", page_size=3, batch_size=100,
                               odata_path="/0/odata")
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=3), sleep=sleeps)


def query(call):
    return parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)


def data_calls():
    return [c for c in responses.calls if not c.request.url.startswith(LOGIN)]


def skips_asked():
    """The $skip of each data request: the first as sent, the others (asked ahead, several at a
    time, so in no fixed order) sorted."""
    values = [int(query(c).get("$skip", ["0"])[0]) for c in data_calls()]
    return values[:1] + sorted(values[1:])


def odata_error(message):
    return {"error": {"code": "", "message": "An error has occurred.",
                      "innererror": {"message": message, "internalexception": {"message": message}}}}


# --- paging ------------------------------------------------------------------------------------


def serve_rows(rows, calls=None, *, cap=None, counted=True):
    """A callback that pages through ``rows`` by $top/$skip (and counts them), like the server."""
    def callback(request):
        q = parse_qs(urlsplit(request.url).query)
        top, skip = int(q["$top"][0]), int(q.get("$skip", ["0"])[0])
        top = min(top, cap or top)  # a site row limit below $top: short pages, no nextLink
        page = {"@odata.context": "x", "value": rows[skip:skip + top]}
        if q.get("$count") == ["true"] and counted:
            page["@odata.count"] = len(rows)
        return 200, {}, json.dumps(page)
    responses.add_callback(responses.GET, CONTACTS, callback=callback)


def test_iter_rows_exact_first_request(client):
    responses.get(CONTACTS, json={"value": [{"Id": ID, "Name": "O'Brien"}], "@odata.count": 1},
                  match=[matchers.header_matcher({**SESSION, "Accept": "application/json"})])
    rows = list(client.iter_rows("Contact", select=["Name", "Email"], filter=odata.eq("Name", "O'Brien"),
                                 orderby="ModifiedOn desc"))
    assert rows == [{"Id": ID, "Name": "O'Brien"}]
    (call,) = data_calls()
    assert call.request.method == "GET"
    assert call.request.url == (f"{CONTACTS}?%24filter=Name+eq+%27O%27%27Brien%27&%24select=Id%2CName%2CEmail"
                                "&%24orderby=ModifiedOn+desc%2CId&%24top=3&%24count=true")


def test_iter_rows_pages_until_short_page(client):
    rows = [{"Id": guid(i)} for i in range(7)]
    serve_rows(rows)
    iterator = client.iter_rows("Contact", select=["Id"])
    assert next(iterator) == rows[0]
    assert len(data_calls()) == 1  # lazy: one page fetched so far
    assert [r["Id"] for r in iterator] == [r["Id"] for r in rows[1:]]
    assert skips_asked() == [0, 3, 6]
    assert all(query(c)["$top"] == ["3"] and query(c)["$orderby"] == ["Id"] and query(c)["$select"] == ["Id"]
               for c in data_calls())


def test_iter_rows_full_last_page_ends_at_the_count(client):
    serve_rows([{"Id": guid(i)} for i in range(6)])
    assert len(client.list_rows("Contact", select=["Name"])) == 6
    assert [query(c).get("$skip") for c in data_calls()] == [None, ["3"]]
    assert query(data_calls()[0])["$count"] == ["true"] and "$count" not in query(data_calls()[1])


def test_iter_rows_without_a_count_reads_until_an_empty_page(client):
    serve_rows([{"Id": guid(i)} for i in range(6)], counted=False)
    assert len(client.list_rows("Contact", select=["Name"])) == 6
    assert [query(c).get("$skip") for c in data_calls()] == [None, ["3"], ["6"]]


@pytest.mark.parametrize("counted", [True, False])
def test_a_short_page_is_not_the_end_while_rows_remain(client, counted):
    # A site whose row limit (2) is below $top (3) answers short pages without a nextLink.
    rows = [{"Id": guid(i)} for i in range(7)]
    serve_rows(rows, cap=2, counted=counted)
    assert [r["Id"] for r in client.iter_rows("Contact", select=["Id"])] == [r["Id"] for r in rows]
    assert skips_asked() == [0, 2, 4, 6] + ([] if counted else [7])


def test_rows_ending_before_the_count_are_an_incomplete_read(client):
    responses.get(CONTACTS, json={"value": [{"Id": guid(1)}], "@odata.count": 5})
    responses.get(CONTACTS, json={"value": []})
    with pytest.raises(errors.BadResponse, match="1 of 5 rows"):
        client.list_rows("Contact", select=["Id"])


def test_iter_rows_empty_collection(client):
    serve_rows([])
    assert client.list_rows("Contact", select=["Name"], page_size=50) == []
    assert len(data_calls()) == 1 and query(data_calls()[0])["$top"] == ["50"]


def test_repeated_page_is_bad_response(client):
    # A server that ignores $skip; after a few pages it goes empty so a broken check cannot hang.
    for _ in range(4):
        responses.get(CONTACTS, json={"value": [{"Id": guid(1)}, {"Id": guid(2)}, {"Id": guid(3)}]})
    responses.get(CONTACTS, json={"value": []})
    with pytest.raises(errors.BadResponse, match="repeated a page"):
        client.list_rows("Contact", select=["Name"])
    assert len(data_calls()) == 2


def test_next_link_is_followed(client):
    next_url = f"{CONTACTS}?$skiptoken=abc&$select=Id"
    responses.get(CONTACTS, json={"value": [{"Id": guid(1)}], "@odata.nextLink": next_url},
                  match=[matchers.query_param_matcher({"$top": "3"}, strict_match=False)])
    responses.get(CONTACTS, json={"value": [{"Id": guid(2)}]},
                  match=[matchers.query_param_matcher({"$skiptoken": "abc", "$select": "Id"})])
    assert [r["Id"] for r in client.iter_rows("Contact", select=["Id"])] == [guid(1), guid(2)]
    assert len(data_calls()) == 2


def test_next_link_to_another_site_is_refused(client):
    responses.get(CONTACTS, json={"value": [{"Id": guid(1)}], "@odata.nextLink": "https://evil.test/steal"})
    with pytest.raises(errors.BadResponse, match="another site"):
        client.list_rows("Contact", select=["Id"])


def test_collection_without_value_is_bad_response(client):
    responses.get(CONTACTS, body="<html>login</html>", content_type="text/html")
    with pytest.raises(errors.BadResponse):
        client.list_rows("Contact", select=["Id"])


def endless(make_page, *, stop_after=60):
    """A Contact callback answering ``make_page(n, query)`` for the n-th request; after
    ``stop_after`` requests an empty page, so that a client without limits ends (wrongly)."""
    calls = []

    def callback(request):
        calls.append(request.url)
        n = len(calls)
        body = make_page(n, parse_qs(urlsplit(request.url).query)) if n <= stop_after else {"value": []}
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, CONTACTS, callback=callback)
    return calls


def new_rows(n, size=3):
    return [{"Id": guid(n * 100 + i)} for i in range(size)]


def limited(sleeps, **kw):
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", page_size=3,
                               odata_path="/0/odata", **kw)
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=1), sleep=sleeps)


def test_endless_full_pages_without_a_count_stop_at_max_pages(client, sleeps):
    calls = endless(lambda n, q: {"value": new_rows(n)})
    with pytest.raises(errors.BadResponse) as raised:
        limited(sleeps, max_pages=7).list_rows("Contact", select=["Id"])
    assert len(calls) == 7
    assert "creatio GET /0/odata/Contact" in str(raised.value) and SITE in str(raised.value)
    assert "after 7 pages (max_pages is 7)" in str(raised.value)


def test_with_a_count_the_pages_stop_where_the_count_allows(client):
    # Six rows counted at three a page: two pages, two more allowed; the server never stops.
    calls = endless(lambda n, q: {"value": new_rows(n), "@odata.count": 6,
                                  "@odata.nextLink": f"{CONTACTS}?$skiptoken={n}"})
    with pytest.raises(errors.BadResponse, match="the 6 rows counted allow 4"):
        client.list_rows("Contact", select=["Id"])
    assert len(calls) == 4


def test_an_endless_chain_of_new_next_links_stops(client, sleeps):
    calls = endless(lambda n, q: {"value": new_rows(n), "@odata.nextLink": f"{CONTACTS}?$skiptoken={n}"})
    with pytest.raises(errors.BadResponse, match="kept sending pages"):
        limited(sleeps, max_pages=12).list_rows("Contact", select=["Id"])
    assert len(calls) == 12


def test_pages_that_alternate_are_refused(client):
    calls = endless(lambda n, q: {"value": new_rows(n % 2)})
    with pytest.raises(errors.BadResponse, match="repeated a page"):
        client.list_rows("Contact", select=["Id"])
    assert len(calls) == 3


def test_a_row_read_twice_is_passed_on_once_with_a_warning(client, caplog):
    # A row added during the read shifts the next page by one: its first row came before.
    pages = [[guid(1), guid(2), guid(3)], [guid(3).upper(), guid(4), guid(5)], [guid(6)]]
    endless(lambda n, q: {"value": [{"Id": i} for i in pages[n - 1]]} if n <= 3 else {"value": []})
    with caplog.at_level("WARNING"):
        ids = [r["Id"] for r in client.iter_rows("Contact", select=["Id"])]
    assert ids == [guid(1), guid(2), guid(3), guid(4), guid(5), guid(6)]
    assert "1 rows of page 2 came before" in caplog.text


# --- pages asked ahead ---------------------------------------------------------------------------


def paged(sleeps, concurrency):
    """A client reading pages of 3, ``concurrency`` requests at a time, with the login answered."""
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", ".ASPXAUTH=aspx-1; path=/"),
                                                     ("Set-Cookie", "BPMCSRF=csrf-1; path=/")])
    return limited(sleeps, max_concurrency=concurrency)


def serve_odd(rows, *, total=None, short_at=None, fail_at=None):
    """$top/$skip paging of ``rows`` with a count of ``total`` (default: the rows'); the page at
    ``short_at`` comes one row short, the one at ``fail_at`` is refused (403)."""
    def callback(request):
        q = parse_qs(urlsplit(request.url).query)
        top, skip = int(q["$top"][0]), int(q.get("$skip", ["0"])[0])
        if skip == fail_at:
            return 403, {}, json.dumps(odata_error("no read rights on Contact"))
        page = {"value": rows[skip:skip + top - (skip == short_at)]}
        if q.get("$count") == ["true"]:
            page["@odata.count"] = len(rows) if total is None else total
        return 200, {}, json.dumps(page)
    responses.add_callback(responses.GET, CONTACTS, callback=callback)


@pytest.mark.parametrize("concurrency", [2, 4])
def test_the_pages_the_count_needs_are_asked_ahead_each_once_and_read_in_order(sleeps, concurrency):
    rows = [{"Id": guid(i)} for i in range(20)]
    client = paged(sleeps, concurrency)
    serve_odd(rows)
    assert [r["Id"] for r in client.iter_rows("Contact", select=["Id"])] == [r["Id"] for r in rows]
    settle()
    assert skips_asked() == [0, 3, 6, 9, 12, 15, 18]  # none past the count
    assert query(data_calls()[0])["$count"] == ["true"]
    assert all("$count" not in query(c) for c in data_calls()[1:])


def read_each_way(sleeps, make_server):
    """(rows or error, $skips asked) of a read one page at a time, then of one four at a time."""
    outcomes = []
    for concurrency in (1, 4):
        responses.reset()
        client = paged(sleeps, concurrency)
        make_server()
        got = []
        try:
            for row in client.iter_rows("Contact", select=["Id"]):
                got.append(row["Id"])
        except errors.SyncError as exc:
            got.append((type(exc), str(exc)))
        settle()
        outcomes.append((got, skips_asked()))
    return outcomes


def test_a_short_page_mid_way_drops_the_pages_asked_ahead_and_reads_on_as_one_by_one(sleeps):
    rows = [{"Id": guid(i)} for i in range(20)]
    (alone, one_by_one), (ahead, asked) = read_each_way(sleeps, lambda: serve_odd(rows, short_at=9))
    assert ahead == alone == [r["Id"] for r in rows]
    assert one_by_one == [0, 3, 6, 9, 11, 14, 17]  # on from the rows the short page really had
    wasted = sorted(set(asked) - set(one_by_one))
    assert set(one_by_one) <= set(asked) and len(asked) == len(set(asked))
    assert set(wasted) <= {12, 15, 18} and len(wasted) <= 3


def test_a_failing_page_stops_the_read_with_the_error_of_a_read_one_by_one(sleeps):
    rows = [{"Id": guid(i)} for i in range(20)]
    (alone, _), (ahead, asked) = read_each_way(sleeps, lambda: serve_odd(rows, fail_at=9))
    assert ahead == alone
    assert alone[:-1] == [r["Id"] for r in rows[:9]] and alone[-1][0] is errors.PermissionDenied
    assert 9 in asked


def test_rows_that_end_before_the_count_fail_the_read_as_one_by_one(sleeps):
    rows = [{"Id": guid(i)} for i in range(14)]  # the count says 20: six went during the read
    (alone, one_by_one), (ahead, _) = read_each_way(sleeps, lambda: serve_odd(rows, total=20))
    assert ahead == alone and one_by_one == [0, 3, 6, 9, 12, 14]
    assert alone[-1][0] is errors.BadResponse and "after 14 of 20 rows" in alone[-1][1]


def test_a_server_paging_by_next_links_is_read_one_page_at_a_time(sleeps):
    links = iter([f"{CONTACTS}?$skiptoken=a", f"{CONTACTS}?$skiptoken=b", None])
    client = paged(sleeps, 4)
    calls = endless(lambda n, q: {"value": new_rows(n), "@odata.count": 9,
                                  **({"@odata.nextLink": link} if (link := next(links)) else {})})
    assert len(client.list_rows("Contact", select=["Id"])) == 9
    settle()
    assert len(calls) == 3 and all("$skip" not in parse_qs(urlsplit(call).query) for call in calls)


@pytest.mark.parametrize("row", [5, "text", None, [1, 2], True])
def test_a_row_that_is_not_an_object_is_a_record_error(client, row):
    responses.get(
        CONTACTS,
        json={
            "value": [row, {"Id": ID, "Name": "Ann", "Email": "", "AccountId": EMPTY_GUID}],
            "@odata.count": 2,
        },
    )
    odd, good = client.list_rows("Contact", select=Contact.columns())
    for read in (Contact.from_row, lambda r: WebitelUserRecord.from_row(r, PROFILES["default"])):
        with pytest.raises(errors.RecordError, match="not an object") as raised:
            read(odd)
        assert raised.value.system == "creatio"
    assert Contact.from_row(good).name == "Ann"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"select": ["Name;drop"]},
        {"select": ["Id"], "orderby": "Name asc; x"},
        {"select": ["Id"], "orderby": "Id up"},
    ],
)
def test_iter_rows_validates_names(client, kwargs):
    with pytest.raises(ValueError):
        list(client.iter_rows("Contact", **kwargs))
    with pytest.raises(ValueError):
        list(client.iter_rows("Contact(1)", select=["Id"]))


# --- count, get, create, update, delete ----------------------------------------------------------


def test_count(client):
    responses.get(
        CONTACTS,
        json={"@odata.count": 42, "value": []},
        match=[
            matchers.query_param_matcher({"$filter": "Active eq true", "$count": "true", "$top": "0"}),
            matchers.header_matcher(SESSION),
        ],
    )
    assert client.count("Contact", odata.eq("Active", True)) == 42
    assert client.counter.total("GET", "/0/odata/Contact") == 1


def test_count_without_number_is_bad_response(client):
    responses.get(CONTACTS, json={"value": []})
    with pytest.raises(errors.BadResponse):
        client.count("Contact")


def test_get_and_404(client):
    responses.get(
        f"{CONTACTS}({ID})",
        json={"Id": ID, "Name": "Ann"},
        match=[matchers.query_param_matcher({"$select": "Id,Name"}), matchers.header_matcher(SESSION)],
    )
    responses.get(f"{CONTACTS}({guid(9)})", status=404, json=odata_error("not found"))
    assert client.get("Contact", ID.upper(), select=["Id", "Name"]) == {"Id": ID, "Name": "Ann"}
    assert client.get("Contact", guid(9)) is None
    assert client.counter.total("GET", "/0/odata/Contact({id})") == 2


def test_get_on_unknown_entity_raises(client):
    responses.get(
        f"{ODATA}/Nope({ID})",
        status=404,
        json={
            "Message": "No HTTP resource was found that matches the request URI",
            "MessageDetail": "No type",
        },
    )
    with pytest.raises(errors.NotFound):
        client.get("Nope", ID)


def test_get_refuses_non_guid_id(client):
    with pytest.raises(ValueError):
        client.get("Contact", "1) or (1")


def test_update_and_delete_exact_requests(client):
    responses.patch(
        f"{CONTACTS}({ID})",
        status=204,
        match=[matchers.json_params_matcher({"Name": "Bob"}), matchers.header_matcher(SESSION)],
    )
    responses.delete(f"{CONTACTS}({ID})", status=204, match=[matchers.header_matcher(SESSION)])
    responses.delete(f"{CONTACTS}({guid(2)})", status=404, json=odata_error("gone"))
    assert client.update("Contact", ID, {"Name": "Bob"}) is None
    client.update("Contact", ID, {})  # nothing to send
    client.delete("Contact", ID)
    client.delete("Contact", guid(2))  # already gone
    assert [c.request.method for c in data_calls()] == ["PATCH", "DELETE", "DELETE"]
    assert client.counter.total("DELETE", "/0/odata/Contact({id})") == 2


# --- retries -------------------------------------------------------------------------------------


def test_get_retried_on_503(client, sleeps):
    responses.get(CONTACTS, status=503)
    responses.get(CONTACTS, json={"@odata.count": 1})
    assert client.count("Contact") == 1
    assert len(data_calls()) == 2 and len(sleeps) == 1


def test_429_retry_after_seconds_is_honoured(client, sleeps):
    responses.get(CONTACTS, status=429, headers={"Retry-After": "2"})
    responses.get(CONTACTS, json={"@odata.count": 1})
    assert client.count("Contact") == 1
    assert sleeps == [2.0]


def test_429_retry_after_http_date_is_honoured(client, sleeps):
    when = datetime.now(timezone.utc).replace(microsecond=0)
    responses.get(
        CONTACTS,
        status=429,
        headers={"Retry-After": format_datetime(when + timedelta(seconds=10), usegmt=True)},
    )
    responses.get(CONTACTS, json={"@odata.count": 1})
    client.count("Contact")
    assert len(sleeps) == 1 and 7.0 <= sleeps[0] <= 10.0


def test_give_up_after_max_attempts(client, sleeps):
    responses.get(CONTACTS, status=503)
    with pytest.raises(errors.TransientError):
        client.count("Contact")
    assert len(data_calls()) == 3 and len(sleeps) == 2


def test_no_retry_on_400(client, sleeps):
    responses.get(CONTACTS, status=400, json=odata_error("Cannot convert the literal"))
    with pytest.raises(errors.BadRequest, match="Cannot convert the literal"):
        client.count("Contact")
    assert len(data_calls()) == 1 and sleeps == []


# --- iter_by_values --------------------------------------------------------------------------------


def test_iter_by_values_chunks_within_max_url_length(sleeps):
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", "BPMCSRF=c; path=/")])
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", max_url_length=400,
                               odata_path="/0/odata")
    client = CreatioClient(settings, sleep=sleeps)
    names = [f"Łukasz Żółć {i}" for i in range(12)]

    def callback(request):
        found = [
            {"Id": guid(i), "Name": n}
            for i, n in enumerate(names)
            if f"'{n}'" in parse_qs(urlsplit(request.url).query)["$filter"][0]
        ]
        return 200, {}, json.dumps({"value": found, "@odata.count": len(found)})

    responses.add_callback(responses.GET, f"{ODATA}/Contact", callback=callback)
    rows = list(
        client.iter_by_values(
            "Contact", "Name", names, select=["Name"], extra_filter=odata.eq("Active", True)
        )
    )
    assert [r["Name"] for r in rows] == names
    calls = data_calls()
    assert len(calls) > 1
    filters = [query(c)["$filter"][0] for c in calls]
    assert all(len(c.request.url) <= 400 for c in calls)
    assert all(f.startswith("(Active eq true) and (Name eq '") for f in filters)
    assert sum(f.count(" eq 'Łukasz") for f in filters) == len(names)


def test_iter_by_values_reads_max_concurrency_chunks_at_once_and_keeps_their_order(sleeps):
    import time

    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", "BPMCSRF=c; path=/")])
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", max_url_length=400,
                               odata_path="/0/odata", max_concurrency=3)
    client = CreatioClient(settings, sleep=sleeps)
    names = [f"Name {i:02}" for i in range(40)]
    state, lock = {"now": 0, "peak": 0}, threading.Lock()

    def callback(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        wanted = parse_qs(urlsplit(request.url).query)["$filter"][0]
        time.sleep(0.02 if "'Name 00'" in wanted else 0.005)  # the first chunk answers last
        with lock:
            state["now"] -= 1
        found = [{"Id": guid(i), "Name": n} for i, n in enumerate(names) if f"'{n}'" in wanted]
        return 200, {}, json.dumps({"value": found, "@odata.count": len(found)})

    responses.add_callback(responses.GET, f"{ODATA}/Contact", callback=callback)
    rows = list(client.iter_by_values("Contact", "Name", names, select=["Name"]))
    assert [r["Name"] for r in rows] == names
    assert len(data_calls()) > 3 and state["peak"] == 3


def test_iter_by_values_with_no_values_sends_nothing(client):
    assert list(client.iter_by_values("Contact", "Name", [], select=["Name"])) == []


# --- metadata --------------------------------------------------------------------------------------

EDMX = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Terrasoft.Configuration" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="BaseEntity" Abstract="true">
        <Key><PropertyRef Name="Id"/></Key>
        <Property Name="Id" Type="Edm.Guid" Nullable="false"/>
        <Property Name="CreatedOn" Type="Edm.DateTimeOffset"/>
        <Property Name="ModifiedOn" Type="Edm.DateTimeOffset"/>
      </EntityType>
      <EntityType Name="Contact" BaseType="Terrasoft.Configuration.BaseEntity">
        <Property Name="Name" Type="Edm.String"/>
        <Property Name="AccountId" Type="Edm.Guid"/>
        <NavigationProperty Name="Account" Type="Terrasoft.Configuration.Account"/>
      </EntityType>
      <EntityType Name="WebitelUser" BaseType="Terrasoft.Configuration.BaseEntity">
        <Property Name="Name" Type="Edm.String"/>
        <Property Name="Extension" Type="Edm.String"/>
      </EntityType>
      <EntityContainer Name="Default">
        <EntitySet Name="Contact" EntityType="Terrasoft.Configuration.Contact"/>
        <EntitySet Name="WebitelUser" EntityType="Terrasoft.Configuration.WebitelUser"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""


def test_parse_metadata_with_inheritance():
    meta = parse_metadata(EDMX)
    assert meta == {
        "Contact": {"Id", "CreatedOn", "ModifiedOn", "Name", "AccountId"},
        "WebitelUser": {"Id", "CreatedOn", "ModifiedOn", "Name", "Extension"},
    }


@pytest.mark.parametrize("document", ["<html>", "<html><head><title>x</title></head></html>"])
def test_parse_metadata_refuses_non_edmx(document):
    with pytest.raises(errors.BadResponse):
        parse_metadata(document)


def test_missing_columns_names_entities_and_columns():
    meta = {name: set(cols) for name, cols in entity_columns(PROFILES["default"]).items()}
    assert missing_columns(meta, PROFILES["default"]) == []
    del meta["WebitelLicense"]
    meta["WebitelUser"] -= {"Extension", "Active"}
    assert missing_columns(meta, PROFILES["default"]) == [
        "WebitelUser.Extension",
        "WebitelUser.Active",
        "WebitelLicense",
    ]


def test_metadata_request_and_missing_columns(client):
    responses.get(
        f"{ODATA}/$metadata",
        body=EDMX,
        content_type="application/xml",
        match=[matchers.header_matcher({**SESSION, "Accept": "application/xml"})],
    )
    missing = client.missing_columns(object_model("wsysaccount"))
    assert "WSysAccount" in missing and "Contact.Email" in missing and "Contact.Name" not in missing


LOOKUPS_EDMX = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Terrasoft.Configuration" Alias="TC" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="BaseEntity" Abstract="true">
        <Key><PropertyRef Name="Id"/></Key>
        <Property Name="Id" Type="Edm.Guid" Nullable="false"/>
        <Property Name="CreatedById" Type="Edm.Guid"/>
        <NavigationProperty Name="CreatedBy" Type="Terrasoft.Configuration.Contact">
          <ReferentialConstraint Property="CreatedById" ReferencedProperty="Id"/>
        </NavigationProperty>
      </EntityType>
      <EntityType Name="Contact" BaseType="Terrasoft.Configuration.BaseEntity">
        <Property Name="Name" Type="Edm.String"/>
      </EntityType>
      <EntityType Name="VwSysAdminUnit" BaseType="Terrasoft.Configuration.BaseEntity">
        <Property Name="Name" Type="Edm.String"/>
      </EntityType>
      <EntityType Name="WSysAccount" BaseType="TC.BaseEntity">
        <Property Name="Login" Type="Edm.String" Nullable="false"/>
        <Property Name="Owner" Type="Edm.Guid"/>
        <Property Name="ContactId" Type="Edm.Guid" Nullable="false"/>
        <Property Name="RoleId" Type="Edm.Guid"/>
        <Property Name="Active" Type="Edm.Boolean" Nullable="false"/>
        <Property Name="Limit" Type="Edm.Int32"/>
        <Property Name="Photo" Type="Edm.Stream"/>
        <NavigationProperty Name="Contact" Type="TC.Contact">
          <ReferentialConstraint Property="ContactId" ReferencedProperty="Id"/>
        </NavigationProperty>
        <NavigationProperty Name="Role" Type="Terrasoft.Configuration.VwSysAdminUnit"/>
        <NavigationProperty Name="Tags" Type="Collection(Terrasoft.Configuration.Contact)"/>
      </EntityType>
      <EntityContainer Name="Default">
        <EntitySet Name="Contact" EntityType="Terrasoft.Configuration.Contact"/>
        <EntitySet Name="SysAdminUnit" EntityType="Terrasoft.Configuration.VwSysAdminUnit"/>
        <EntitySet Name="WSysAccount" EntityType="Terrasoft.Configuration.WSysAccount"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""


def test_read_metadata_gives_types_lookup_targets_and_required_columns():
    site = read_metadata(LOOKUPS_EDMX)
    account = site["WSysAccount"]
    assert {name: (c.type, c.lookup) for name, c in account.items()} == {
        "Id": ("guid", None), "CreatedById": ("guid", "Contact"),  # inherited, with its lookup
        "Login": ("text", None), "Owner": ("guid", None), "ContactId": ("guid", "Contact"),
        # No constraint: the navigation property Role beside the Guid column RoleId; the target is
        # named by its entity set, not by its type.
        "RoleId": ("guid", "SysAdminUnit"), "Active": ("bool", None), "Limit": ("int", None),
        "Photo": ("binary", None),
    }
    assert account["Login"].required and account["ContactId"].required and not account["RoleId"].required
    assert account["Login"].edm_type == "Edm.String" and "Tags" not in account  # a detail is no column
    assert site.names()["Contact"] == {"Id", "CreatedById", "Name"} == set(site["Contact"])
    assert "WSysAccount" in site and "WebitelUser" not in site


# --- finding the OData root ---------------------------------------------------------------------------


def auto_client(**kw):
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", ".ASPXAUTH=aspx-1; path=/"),
                                                     ("Set-Cookie", "BPMCSRF=csrf-1; path=/")])
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", **kw)
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=1), sleep=lambda s: None)


SERVICE_DOCUMENT = {"@odata.context": "x/$metadata", "value": [{"name": "Contact", "kind": "EntitySet",
                                                                 "url": "Contact"}]}


def test_auto_finds_the_net_framework_root_once_per_client():
    responses.get(f"{SITE}/0/odata/", json=SERVICE_DOCUMENT)
    responses.get(CONTACTS, json={"@odata.count": 4, "value": []})
    client = auto_client()
    assert client.count("Contact") == 4 and client.count("Contact") == 4
    count = f"{CONTACTS}?%24count=true&%24top=0"
    assert [c.request.url for c in data_calls()] == [f"{SITE}/0/odata/", count, count]
    assert client.odata_path == "/0/odata"


def test_auto_finds_the_net8_root_and_uses_it_for_reads_batches_and_metadata():
    responses.get(f"{SITE}/0/odata/", status=404, body="<html>Not Found</html>", content_type="text/html")
    responses.get(f"{SITE}/odata/", json=SERVICE_DOCUMENT)
    responses.get(f"{SITE}/odata/Contact", json={"@odata.count": 1, "value": []})
    responses.get(f"{SITE}/odata/$metadata", body=LOOKUPS_EDMX, content_type="application/xml")
    responses.post(f"{SITE}/odata/$batch", json={"responses": [{"id": "1", "status": 204}]})
    client = auto_client()
    assert client.count("Contact") == 1 and "WSysAccount" in client.site_metadata()
    (result,) = client.batch([BatchOp("DELETE", "Contact", guid(1))])
    assert result.ok and client.odata_path == "/odata"
    probes = [c for c in data_calls() if c.request.url.endswith("/odata/")]
    assert len(probes) == 2  # /0/odata/ then /odata/, once


def test_auto_with_a_login_redirect_on_the_wrong_root_tries_the_next():
    responses.get(f"{SITE}/0/odata/", status=302, headers={"Location": "/Login/NuiLogin.aspx"})
    responses.get(f"{SITE}/odata/", json=SERVICE_DOCUMENT)
    assert auto_client().odata_path == "/odata"


def test_auto_without_any_odata_service_says_what_to_set():
    responses.get(f"{SITE}/0/odata/", status=404, json={"Message": "No HTTP resource"})
    responses.get(f"{SITE}/odata/", status=200, body="<html>a page</html>", content_type="text/html")
    with pytest.raises(errors.BadResponse) as raised:
        auto_client().count("Contact")
    text = str(raised.value)
    assert "no OData 4 service found at https://creatio.test" in text and 'odata_path = "/0/odata"' in text
    assert "/0/odata: 404" in text


def test_auto_does_not_log_in_twice_when_the_credentials_are_wrong():
    responses.post(LOGIN, json={"Code": 1, "Message": "Invalid login"})
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1")
    client = CreatioClient(settings, retry=RetryPolicy(max_attempts=1), sleep=lambda s: None)
    with pytest.raises(errors.AuthError):
        client.count("Contact")
    assert len([c for c in responses.calls if c.request.url == LOGIN]) == 1


def test_an_explicit_odata_path_is_used_without_looking():
    responses.get(f"{SITE}/odata/Contact", json={"@odata.count": 2, "value": []})
    assert auto_client(odata_path="/odata").count("Contact") == 2
    assert len(data_calls()) == 1


# --- typed rows and records ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2020-05-18T17:50:39.2838673Z", datetime(2020, 5, 18, 17, 50, 39, 283867, tzinfo=timezone.utc)),
        ("2011-01-30T15:22:43.771Z", datetime(2011, 1, 30, 15, 22, 43, 771000, tzinfo=timezone.utc)),
        ("2019-08-19T13:46:11Z", datetime(2019, 8, 19, 13, 46, 11, tzinfo=timezone.utc)),
        ("2024-01-01T02:00:00+02:00", datetime(2024, 1, 1, tzinfo=timezone.utc)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_datetime(text, expected):
    assert parse_datetime(text) == expected


def test_standard_models():
    contact = Contact.from_row({"Id": ID.upper(), "Name": "Ann", "Email": "", "AccountId": EMPTY_GUID})
    assert contact == Contact(ID, "Ann", "", None)
    assert Account.from_row({"Id": ID, "Name": ""}) == Account(ID, "")
    user = SysUser.from_row({"Id": ID, "Name": "ann", "ContactId": guid(1), "Active": True})
    assert user == SysUser(ID, "ann", guid(1), True)
    comm = ContactCommunication.from_row(
        {
            "Id": ID,
            "ContactId": guid(1),
            "CommunicationTypeId": "E9D91E45-8D92-4E38-95A0-EF8AA28C9E7A",
            "Number": "1001",
        }
    )
    assert comm.type_id == "e9d91e45-8d92-4e38-95a0-ef8aa28c9e7a"


@pytest.mark.parametrize(
    "row, field",
    [
        ({"Id": ID, "Name": "Ann", "Email": "", "AccountId": "nope"}, "AccountId"),
        ({"Id": ID, "Name": 5, "Email": "", "AccountId": EMPTY_GUID}, "Name"),
        ({"Id": ID, "Name": "Ann", "AccountId": EMPTY_GUID}, "Email"),
        ({"Id": EMPTY_GUID, "Name": "Ann", "Email": "", "AccountId": EMPTY_GUID}, "Id"),
    ],
)
def test_bad_row_is_record_error_naming_the_field(row, field):
    with pytest.raises(errors.RecordError) as caught:
        Contact.from_row(row)
    assert caught.value.field == field and caught.value.object == "Contact"


def test_row_typed_uses_profile_column_types():
    types = entity_columns(PROFILES["default"])["WebitelUser"]
    row = Row(
        {"Id": ID, "Active": True, "ContactId": EMPTY_GUID, "ModifiedOn": "2024-01-01T00:00:00Z", "Other": 1},
        "WebitelUser",
    )
    assert row.typed(types) == {
        "Id": ID,
        "Active": True,
        "ContactId": None,
        "ModifiedOn": datetime(2024, 1, 1, tzinfo=timezone.utc),
    }


def test_webitel_user_record_default_profile():
    model = PROFILES["default"]
    assert WebitelUserRecord.columns(model) == [
        "Id",
        "Name",
        "Username",
        "WebitelId",
        "Extension",
        "ContactId",
        "SysAdminUnitId",
        "Active",
    ]
    row = {
        "Id": ID,
        "Name": "Ann",
        "Username": "ann",
        "WebitelId": "17",
        "Extension": "",
        "ContactId": guid(1),
        "SysAdminUnitId": EMPTY_GUID,
        "Active": True,
    }
    record = WebitelUserRecord.from_row(row, model)
    assert record == WebitelUserRecord(ID, "Ann", "ann", "17", "", guid(1), None, True)
    assert WebitelUserRecord.to_row(record, model) == {**row, "Extension": ""}
    assert WebitelUserRecord.to_row({"contact_id": None, "active": False}, model) == {
        "ContactId": EMPTY_GUID,
        "Active": False,
    }
    with pytest.raises(ValueError):
        WebitelUserRecord.to_row({"nope": 1}, model)


def test_webitel_user_record_wsysaccount_profile_skips_absent_columns():
    model = object_model("wsysaccount")
    assert WebitelUserRecord.columns(model) == ["Id", "Name", "Login", "ContactId"]
    row = {"Id": ID, "Name": "Ann", "Login": "1001", "ContactId": guid(1)}
    record = WebitelUserRecord.from_row(row, model)
    assert record.extension == "1001" and record.username is None and record.active is None
    assert WebitelUserRecord.to_row(record, model) == {
        "Id": ID,
        "Name": "Ann",
        "Login": "1001",
        "ContactId": guid(1),
        "RoleId": "7640dfbd-0cf2-4040-998e-4641042eff46",
    }
    assert WebitelUserRecord.to_row({"username": "ann", "extension": "1002"}, model) == {"Login": "1002"}
    with pytest.raises(errors.ConfigError):
        LicenseRecord.columns(model)


def test_license_and_grant_records():
    model = PROFILES["default"]
    row = {
        "Id": ID,
        "Serial": "S-1",
        "Product": "CALL_CENTER",
        "Name": "Call center",
        "ValidFrom": "2024-01-01T00:00:00Z",
        "ValidTill": "0001-01-01T00:00:00Z",
        "Limit": 10,
        "Used": 3,
        "Concurrent": False,
    }
    lic = LicenseRecord.from_row(row, model)
    assert lic.valid_from == datetime(2024, 1, 1, tzinfo=timezone.utc) and lic.valid_till is None
    assert LicenseRecord.to_row(lic, model) == {**row, "ValidTill": None}
    grant = GrantRecord.from_row({"Id": ID, "UserId": guid(1), "LicenseId": guid(2)}, model)
    assert GrantRecord.to_row(grant, model) == {"Id": ID, "UserId": guid(1), "LicenseId": guid(2)}
    with pytest.raises(ValueError):
        LicenseRecord.to_row({"valid_from": datetime(2024, 1, 1)}, model)
