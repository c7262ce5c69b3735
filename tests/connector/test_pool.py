"""Requests in parallel: the AIMD limiter, the task pool, and both through the one request path."""

import contextvars
import threading
import time

import pytest
import requests
import responses

from connector import errors
from connector.http import HttpClient
from connector.pool import Limiter, Pool, Prefetch, ordered
from connector.retry import RetryPolicy

BASE = "https://api.test/"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


# --- the limiter ---------------------------------------------------------------------------------


def test_a_429_halves_the_limit_and_each_other_answer_grows_it_back_one_step():
    limiter = Limiter(8, sleep=lambda s: None)
    epoch = limiter.acquire()
    limiter.release(epoch, 429)
    assert limiter.limit == 4 and limiter.decreases == 1
    limiter.release(limiter.acquire(), 503)
    assert limiter.limit == 2
    for expected in (3, 4, 5):
        limiter.release(limiter.acquire(), 200)
        assert limiter.limit == expected
    limiter.release(limiter.acquire(), 404)  # a definite answer: the server is not overloaded
    assert limiter.limit == 6
    for status in (None, 500, 502, 504):  # no answer, or a fault that says nothing about load
        limiter.release(limiter.acquire(), status)
        assert limiter.limit == 6
    for _ in range(5):
        limiter.release(limiter.acquire(), 200)
    assert limiter.limit == 8  # never past the ceiling


def test_requests_refused_together_halve_the_limit_once_not_once_each():
    limiter = Limiter(8, sleep=lambda s: None)
    epochs = [limiter.acquire() for _ in range(8)]
    for epoch in epochs:
        limiter.release(epoch, 429)
    assert limiter.limit == 4 and limiter.decreases == 1
    limiter.release(limiter.acquire(), 429)  # sent under the new limit: a new signal
    assert limiter.limit == 2


def test_the_limit_never_goes_below_one():
    limiter = Limiter(2, sleep=lambda s: None)
    for _ in range(5):
        limiter.release(limiter.acquire(), 503)
    assert limiter.limit == 1


def test_a_retry_after_holds_the_other_threads_back_but_not_the_one_that_waits_it_out():
    clock, slept = Clock(), []
    limiter = Limiter(4, sleep=slept.append, clock=clock)
    limiter.release(limiter.acquire(), 429, retry_after=2.0)
    limiter.release(limiter.acquire())  # this thread sleeps the Retry-After in its retry loop
    assert slept == []
    other = threading.Thread(target=lambda: limiter.release(limiter.acquire()))
    other.start()
    other.join()
    assert slept == [2.0]
    clock.now += 2.5
    other = threading.Thread(target=lambda: limiter.release(limiter.acquire()))
    other.start()
    other.join()
    assert slept == [2.0]  # the hold is over


def test_a_retry_after_holds_back_at_most_max_pause_s():
    clock, slept = Clock(), []
    limiter = Limiter(4, sleep=slept.append, clock=clock, max_pause_s=5.0)
    limiter.release(limiter.acquire(), 429, retry_after=3600)
    other = threading.Thread(target=lambda: limiter.release(limiter.acquire()))
    other.start()
    other.join()
    assert slept == [5.0]


def test_no_more_requests_in_flight_than_the_limit_from_any_number_of_threads():
    limiter = Limiter(3, sleep=lambda s: None)
    seen, lock = [], threading.Lock()

    def request():
        epoch = limiter.acquire()
        with lock:
            seen.append(limiter.in_flight)
        time.sleep(0.01)
        limiter.release(epoch, 200)

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(seen) == 3 and limiter.peak == 3 and limiter.in_flight == 0


# --- the pool ------------------------------------------------------------------------------------


def test_ordered_keeps_the_tasks_order_whatever_order_they_finish_in():
    def task(n):
        def run():
            time.sleep(0.002 * (5 - n % 5))
            return n

        return run

    assert list(ordered([task(n) for n in range(20)], 4)) == list(range(20))
    assert list(ordered([task(n) for n in range(3)], 1)) == [0, 1, 2]


def test_ordered_runs_at_most_workers_at_once_and_holds_few_results_ahead():
    running, started, peak, lock = [0], [0], [0], threading.Lock()

    def task():
        with lock:
            running[0] += 1
            started[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return started[0]

    results = ordered([task for _ in range(20)], 3)
    next(results)
    time.sleep(0.05)
    assert started[0] == 7  # the one read, and twice the workers ahead
    list(results)
    assert peak[0] == 3 and started[0] == 20


def test_a_task_that_raises_ends_the_iteration_there_after_the_earlier_results():
    def fail():
        raise errors.BadResponse("broken")

    got = []
    with pytest.raises(errors.BadResponse):
        for value in ordered([lambda: 1, lambda: 2, fail, lambda: 4], 2):
            got.append(value)
    assert got == [1, 2]


def test_a_consumer_that_stops_reading_leaves_the_rest_unstarted():
    started = []

    def task(n):
        def run():
            started.append(n)
            time.sleep(0.005)
            return n

        return run

    results = ordered([task(n) for n in range(50)], 2)
    assert next(results) == 0
    results.close()
    assert len(started) <= 5


def test_leaving_on_an_error_waits_for_the_running_tasks_and_drops_the_others():
    ran, release = [], threading.Event()

    def task(n):
        def run():
            release.wait(5)
            ran.append(n)

        return run

    with pytest.raises(errors.BadResponse):
        with Pool(2) as pool:
            futures = [pool.submit(task(n)) for n in range(6)]
            time.sleep(0.05)  # the first two are running
            threading.Timer(0.1, release.set).start()  # once the pool is being left
            raise errors.BadResponse("the caller broke")
    assert sorted(ran) == [0, 1] and all(f.cancelled() for f in futures[2:])


def test_a_second_ctrl_c_leaves_at_once_without_waiting_for_the_requests_in_flight():
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with Pool(2) as pool:
            pool.submit(release.wait, 10)
            raise KeyboardInterrupt
    assert time.monotonic() - started < 1
    release.set()


def test_tasks_run_in_a_copy_of_the_callers_context():
    var = contextvars.ContextVar("run", default="none")
    var.set("run-7")
    with Pool(3) as pool:
        futures = [pool.submit(var.get) for _ in range(5)]
    assert [f.result() for f in futures] == ["run-7"] * 5
    with Pool(1) as pool:  # inline
        assert pool.submit(var.get).result() == "run-7"


# --- through the request path --------------------------------------------------------------------


def client(max_concurrency=4, **kw):
    return HttpClient(system="webitel", base_url=BASE, retry=RetryPolicy(max_attempts=5, base_wait_s=0),
                      sleep=lambda s: None, max_concurrency=max_concurrency, **kw)


@responses.activate
def test_parallel_requests_through_one_client_stay_within_max_concurrency():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def slow(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return 200, {}, "{}"

    responses.add_callback("GET", BASE + "users", callback=slow)
    http = client(max_concurrency=3)
    with Pool(8) as pool:
        futures = [pool.submit(http.request, "GET", "users") for _ in range(24)]
    assert all(f.result().status_code == 200 for f in futures)
    assert state["peak"] == 3 and http.limiter.peak == 3


@responses.activate
def test_a_429_with_retry_after_halves_the_clients_limit_and_successes_restore_it():
    answers = iter([(429, {"Retry-After": "3"}, "{}")] + [(200, {}, "{}")] * 5)
    responses.add_callback("GET", BASE + "users", callback=lambda request: next(answers))
    slept = []
    http = HttpClient(system="webitel", base_url=BASE, retry=RetryPolicy(base_wait_s=0), sleep=slept.append,
                      max_concurrency=4)
    http.request("GET", "users")
    assert http.limiter.decreases == 1 and http.limiter.limit == 3  # halved to 2, one success since
    assert slept == [3.0]  # the Retry-After, waited once: by the retry, not again by the limiter
    for _ in range(3):
        http.request("GET", "users")
    assert http.limiter.limit == 4


@responses.activate
def test_a_slot_is_given_back_whatever_the_attempt_ends_in():
    responses.get(BASE + "gone", status=404, json={})
    responses.get(BASE + "down", body=requests.exceptions.ConnectionError("refused"))
    http = client(max_concurrency=1)
    for path, error in (("gone", errors.NotFound), ("down", errors.TransientError)):
        with pytest.raises(error):
            http.request("GET", path)
    assert http.limiter.in_flight == 0


class SessionAuth:
    """A login that opens session n; a request of an older session is refused with 401."""

    def __init__(self):
        self.session = 0
        self.logins = 0
        self.lock = threading.Lock()

    def apply(self, http, headers):
        if self.session == 0:
            http.login()
        headers["X-Session"] = str(self.session)

    def needs_relogin(self, response):
        return response.status_code == 401

    def login(self, http):
        with self.lock:
            self.logins += 1
            self.session += 1

    def secrets(self):
        return []


@responses.activate
def test_requests_refused_for_one_dead_session_log_in_once_between_them():
    auth, live = SessionAuth(), {"session": "1"}
    barrier = threading.Barrier(4, timeout=5)

    def answer(request):
        sent = request.headers["X-Session"]
        if sent == "1":
            barrier.wait()  # all four are in flight on session 1 when it dies
            live["session"] = "2"
        return (200, {}, "{}") if sent == live["session"] == "2" else (401, {}, "{}")

    responses.add_callback("GET", BASE + "users", callback=answer)
    http = client(max_concurrency=4, auth=auth)
    http.login()
    with Pool(4) as pool:
        futures = [pool.submit(http.request, "GET", "users") for _ in range(4)]
    assert all(f.result().status_code == 200 for f in futures)
    assert auth.logins == 2  # the first, and one re-login for the four refused requests


# --- fetches asked ahead -------------------------------------------------------------------------


def recording(fail_at=None, hold_s=0.002):
    sent, lock = [], threading.Lock()

    def fetch(key):
        with lock:
            sent.append(key)
        time.sleep(hold_s)
        if key == fail_at:
            raise errors.BadResponse(f"page {key} broken")
        return f"answer {key}"

    return sent, fetch


def test_prefetch_hands_answers_out_in_order_and_sends_at_most_workers_minus_one_past_the_last():
    sent, fetch = recording()
    with Prefetch(range(1, 101), fetch, 4) as ahead:
        assert [ahead.take(k) for k in range(1, 11)] == [f"answer {k}" for k in range(1, 11)]
    time.sleep(0.05)
    # 10 read, at most 3 sent past the last one taken (one not started yet is never sent)
    assert sorted(sent) == list(range(1, len(sent) + 1)) and 10 <= len(sent) <= 13


def test_prefetch_off_its_plan_drops_the_rest_and_answers_none():
    sent, fetch = recording()
    ahead = Prefetch([0, 3, 6, 9, 12], fetch, 2)
    assert ahead.take(0) == "answer 0" and ahead.take(3) == "answer 3"
    assert ahead.take(5) is None and not ahead.active  # the caller sends 5 itself
    assert ahead.take(6) is None
    time.sleep(0.05)
    assert set(sent) <= {0, 3, 6} and {0, 3} <= set(sent)


def test_prefetch_raises_a_failed_fetch_at_its_own_turn_only():
    sent, fetch = recording(fail_at=3)
    with Prefetch(range(1, 6), fetch, 4) as ahead:
        assert ahead.take(1) == "answer 1" and ahead.take(2) == "answer 2"  # 3 already failed
        with pytest.raises(errors.BadResponse, match="page 3 broken"):
            ahead.take(3)
    sent, fetch = recording(fail_at=3)
    with Prefetch(range(1, 6), fetch, 4) as ahead:
        assert ahead.take(1) == "answer 1" and ahead.take(2) == "answer 2"
    # the read ended at 2: page 3 was sent (and failed) ahead, and nobody is told


def test_prefetch_leaving_on_an_error_waits_for_the_fetches_running():
    sent, fetch = recording(hold_s=0.05)
    with pytest.raises(RuntimeError), Prefetch(range(1, 10), fetch, 3) as ahead:
        ahead.take(1)
        raise RuntimeError("the read failed")
    assert not [t for t in threading.enumerate() if t.name.startswith("wcsync-pages")]


def test_prefetch_closed_twice_leaves_no_thread_waiting():
    for _ in range(20):  # the race it guards against: a second close draining the end markers
        sent, fetch = recording(hold_s=0.001)
        ahead = Prefetch(range(1, 10), fetch, 4)
        ahead.take(1)
        ahead.close()
        ahead.close(wait=True)
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("wcsync-pages")]
