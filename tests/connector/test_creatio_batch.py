"""$batch: request shape, chunking, continue-on-error, per-operation outcomes."""

import json

import pytest
import responses
from responses import matchers

from connector import errors
from connector.creatio.batch import BatchOp
from connector.creatio.client import CreatioClient
from connector.creatio.batch import build_request
from connector.retry import RetryPolicy
from connector.settings import CreatioSettings

SITE = "https://creatio.test"
BATCH = f"{SITE}/0/odata/$batch"
LOGIN = f"{SITE}/ServiceModel/AuthService.svc/Login"
PG_DUPLICATE = 'duplicate key value violates unique constraint "PK_Contact"'


def guid(n):
    return f"00000000-0000-0000-0000-{n:012d}"


@pytest.fixture(autouse=True)
def mocked_http():
    responses.start()
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", "BPMCSRF=csrf-1; path=/")])
    yield
    responses.stop()
    responses.reset()


def make_client(batch_size=100, sleep=lambda s: None):
    settings = CreatioSettings(url=SITE, username="svc", password="pw-SECRET-1", batch_size=batch_size,
                               odata_path="/0/odata")
    return CreatioClient(settings, retry=RetryPolicy(max_attempts=3), sleep=sleep)


def batch_calls():
    return [c for c in responses.calls if c.request.url == BATCH]


def echo_all(status_of=lambda sub: 201 if sub["method"] == "POST" else 204):
    """A server that answers every sub-request, with the status ``status_of`` picks."""
    def callback(request):
        subs = json.loads(request.body)["requests"]
        answers = [{"id": s["id"], "status": status_of(s), "headers": {"content-type": "application/json"},
                    **({"body": s["body"]} if s["method"] == "POST" else {})} for s in subs]
        return 200, {}, json.dumps({"responses": answers})
    responses.add_callback(responses.POST, BATCH, callback=callback)


def odata_error(message):
    return {"error": {"code": "", "message": "An error has occurred.",
                      "innererror": {"message": message, "internalexception": {"message": message}}}}


def test_request_shape():
    ops = [BatchOp("POST", "Contact", body={"Id": guid(1), "Name": "Ann"}, ref="ann"),
           BatchOp("PATCH", "Contact", id=guid(2).upper(), body={"Name": "Bob"}),
           BatchOp("DELETE", "WebitelUser", id=guid(3))]
    expected = {"requests": [
        {"method": "POST", "url": "Contact", "id": "1", "body": {"Id": guid(1), "Name": "Ann"},
         "headers": {"Content-Type": "application/json"}},
        {"method": "PATCH", "url": f"Contact({guid(2)})", "id": "2", "body": {"Name": "Bob"},
         "headers": {"Content-Type": "application/json"}},
        {"method": "DELETE", "url": f"WebitelUser({guid(3)})", "id": "3",
         "headers": {"Content-Type": "application/json"}},
    ]}
    responses.post(BATCH, json={"responses": [{"id": "1", "status": 201}, {"id": "2", "status": 204},
                                              {"id": "3", "status": 204}]},
                   match=[matchers.json_params_matcher(expected),
                          matchers.header_matcher({"Prefer": "continue-on-error", "BPMCSRF": "csrf-1",
                                                   "ForceUseSession": "true", "Accept": "application/json",
                                                   "Content-Type": "application/json"})])
    results = make_client().batch(ops)
    assert [(r.op.ref, r.status, r.ok, r.error) for r in results] == [
        ("ann", 201, True, None), ("", 204, True, None), ("", 204, True, None)]
    assert len(batch_calls()) == 1


def test_invalid_ops_are_refused():
    with pytest.raises(ValueError):
        BatchOp("PATCH", "Contact", body={})
    with pytest.raises(ValueError):
        BatchOp("MERGE", "Contact", id=guid(1))
    with pytest.raises(ValueError):
        BatchOp("POST", "Contact(1)", body={})
    with pytest.raises(ValueError):
        build_request([BatchOp("DELETE", "Contact", id="not-a-guid")])


def test_chunks_of_batch_size_and_no_prefer_when_stopping_on_error():
    echo_all()
    ops = [BatchOp("POST", "Contact", body={"Id": guid(i)}) for i in range(250)]
    results = make_client().batch(ops)
    bodies = [json.loads(c.request.body)["requests"] for c in batch_calls()]
    assert [len(b) for b in bodies] == [100, 100, 50]
    assert [s["body"]["Id"] for b in bodies for s in b] == [guid(i) for i in range(250)]
    assert len({s["id"] for b in bodies for s in b}) == 250
    assert all(r.ok and r.status == 201 for r in results) and [r.op for r in results] == ops
    assert all(c.request.headers["Prefer"] == "continue-on-error" for c in batch_calls())

    responses.calls.reset()
    make_client(batch_size=10).batch(ops[:15], continue_on_error=False)
    assert [len(json.loads(c.request.body)["requests"]) for c in batch_calls()] == [10, 5]
    assert all("Prefer" not in c.request.headers for c in batch_calls())


def test_per_op_outcomes():
    ops = [BatchOp("POST", "Contact", body={"Id": guid(1)}),           # created
           BatchOp("POST", "Contact", body={"Id": guid(2)}),           # duplicate Id: ours already
           BatchOp("POST", "Contact", body={"Login": "1001"}),         # unique index clash: a real conflict
           BatchOp("DELETE", "Contact", id=guid(4)),                   # already gone
           BatchOp("PATCH", "Contact", id=guid(5), body={"X": 1}),     # bad request
           BatchOp("PATCH", "Contact", id=guid(6), body={"Name": ""}),  # not found
           BatchOp("PATCH", "Contact", id=guid(7), body={"Name": ""}),  # throttled
           BatchOp("GET", "Contact", id=guid(8))]                      # missing from the answer
    responses.post(BATCH, json={"responses": [
        {"id": "1", "status": 201, "body": {"Id": guid(1)}},
        {"id": "2", "status": 500, "body": odata_error(PG_DUPLICATE)},
        {"id": "3", "status": 500,
         "body": odata_error('duplicate key value violates unique constraint "IX_Login"')},
        {"id": "4", "status": 404, "body": odata_error("not found")},
        {"id": "5", "status": 400, "body": odata_error("Property X does not exist")},
        {"id": "6", "status": 404, "body": odata_error("not found")},
        {"id": "7", "status": 429, "headers": {"Retry-After": "5"}},
    ]})
    r = make_client().batch(ops)
    assert (r[0].ok, r[0].body, r[0].already_existed) == (True, {"Id": guid(1)}, False)
    assert (r[1].ok, r[1].already_existed, r[1].error) == (True, True, None)
    assert not r[2].ok and type(r[2].error) is errors.Conflict and r[2].error.field == ""
    assert (r[3].ok, r[3].status, r[3].error) == (True, 404, None)
    assert type(r[4].error) is errors.BadRequest and "Property X does not exist" in str(r[4].error)
    assert r[4].error.path == f"/0/odata/Contact({guid(5)})" and r[4].error.method == "PATCH"
    assert type(r[5].error) is errors.NotFound and not r[5].ok
    assert type(r[6].error) is errors.RateLimited and r[6].error.retry_after == 5.0
    assert (r[7].ok, r[7].status, type(r[7].error)) == (False, None, errors.BadResponse)
    assert "not executed" in str(r[7].error)
    assert len(batch_calls()) == 1  # sub-request failures are outcomes, never retried as a whole


def test_duplicate_id_on_post_without_our_id_is_not_success():
    responses.post(BATCH, json={"responses": [{"id": "1", "status": 500, "body": odata_error(PG_DUPLICATE)}]})
    (result,) = make_client().batch([BatchOp("POST", "Contact", body={"Name": "x"})])
    assert not result.ok and isinstance(result.error, errors.Conflict)


def test_stop_on_error_marks_later_chunks_not_sent():
    responses.post(BATCH, json={"responses": [{"id": "1", "status": 204},
                                              {"id": "2", "status": 400, "body": odata_error("bad")}]})
    ops = [BatchOp("PATCH", "Contact", id=guid(i), body={"Name": "x"}) for i in range(5)]
    results = make_client(batch_size=3).batch(ops, continue_on_error=False)
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert "not executed" in str(results[2].error) and "not sent" in str(results[3].error)
    assert len(batch_calls()) == 1


def test_outer_retry_only_when_every_op_is_idempotent():
    sleeps = []
    responses.post(BATCH, status=503)
    echo_all()
    idempotent = [BatchOp("POST", "Contact", body={"Id": guid(1)}), BatchOp("DELETE", "Contact", id=guid(2))]
    assert all(r.ok for r in make_client(sleep=sleeps.append).batch(idempotent))
    assert len(batch_calls()) == 2 and len(sleeps) == 1

    responses.reset()
    responses.post(LOGIN, json={"Code": 0}, headers=[("Set-Cookie", "BPMCSRF=csrf-1; path=/")])
    responses.post(BATCH, status=500, json=odata_error("timeout"))
    responses.calls.reset()
    results = make_client().batch([BatchOp("POST", "Contact", body={"Name": "no id"})] + idempotent)
    assert len(batch_calls()) == 1
    assert all(not r.ok and type(r.error) is errors.TransientError and r.status == 500 for r in results)


def test_answer_without_responses_fails_every_op_of_the_chunk():
    responses.post(BATCH, json={"value": []})
    results = make_client().batch([BatchOp("DELETE", "Contact", id=guid(1))])
    assert not results[0].ok and "no responses list" in str(results[0].error)


def test_empty_batch_sends_nothing():
    assert make_client().batch([]) == []
    assert batch_calls() == []
