"""The apply engine's order rules with chunks in parallel, over steps that record what they see.

No sandbox here: the steps are plain functions that sleep a little (so chunks really overlap) and
log when each action started; the store records which thread wrote and when. What must hold with
four chunks in flight is what held with one: steps in order, a prerequisite landed before the
chunk that needs it starts, an action whose prerequisite failed skipped, every chunk that landed
recorded (by the caller's thread), a stop honoured between chunks.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

import pytest

from jobs.apply.engine import Outcome, Step, apply_plan
from jobs.plan import Action, Plan


class Store:
    """Records what ``apply_plan`` records, with the thread that did it."""

    def __init__(self):
        self.chunks: list[list[str]] = []
        self.threads: set[int] = set()
        self.recorded_at: dict[str, float] = {}

    def record_applied(self, run_id, events, *, links, unlinks, now):
        self.threads.add(threading.get_ident())
        self.chunks.append([e.key for e in events])
        for event in events:
            self.recorded_at[event.key] = time.monotonic()


class Probe:
    """A step's run function: sleeps a random few milliseconds, fails the ids it is told to."""

    def __init__(self, fail=(), raise_on=(), seed=1, delays=None):
        self.fail, self.raise_on, self.delays = set(fail), set(raise_on), delays or {}
        self.started: dict[str, float] = {}
        self.running, self.peak = 0, 0
        self.lock = threading.Lock()
        self.rng = random.Random(seed)

    def __call__(self, actions):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            delay = self.delays.get(actions[0].id, self.rng.uniform(0.002, 0.02))
            for a in actions:
                self.started[a.key] = time.monotonic()
        time.sleep(delay)
        with self.lock:
            self.running -= 1
        if self.raise_on & {a.id for a in actions}:
            raise RuntimeError("the step broke")
        return [Outcome(a, a.id not in self.fail, "refused" if a.id in self.fail else "") for a in actions]


def action(kind, id, depends_on=()):
    return Action(kind, "Thing", id, f"{kind}:{id}", depends_on=tuple(depends_on))


def apply(actions, steps, **kw):
    store = Store()
    result = apply_plan(Plan("users", tuple(actions)), steps, store=store, run_id="r",
                        now=lambda: datetime.now(timezone.utc), **kw)
    return result, store


def test_steps_run_in_order_and_chunks_of_a_step_in_parallel():
    parents = [action("parent", f"p{i}") for i in range(16)]
    children = [action("child", f"c{i}", [f"p{i}"]) for i in range(16)]
    first, second = Probe(), Probe(seed=2)
    steps = [Step(("parent",), first, 2, 4), Step(("child",), second, 2, 4)]
    result, store = apply(parents + children, steps)
    assert first.peak == 4 and second.peak == 4
    assert max(store.recorded_at[a.key] for a in parents) < min(second.started.values())
    assert store.threads == {threading.get_ident()}
    assert len(store.chunks) == 16 and all(o.ok for o in result.outcomes)
    # The report lists the outcomes as a run one chunk at a time would, whatever landed first.
    assert [o.action for o in result.outcomes] == parents + children


def test_a_chunk_waits_for_a_prerequisite_in_flight_in_its_own_step():
    actions = [action("make", "a"), action("make", "b", ["a"]),
               action("make", "c"), action("make", "d", ["c"])]
    probe = Probe()
    result, store = apply(actions, [Step(("make",), probe, 1, 4)])
    assert store.recorded_at["make:a"] <= probe.started["make:b"]
    assert store.recorded_at["make:c"] <= probe.started["make:d"]
    assert all(o.ok for o in result.outcomes)


def test_an_action_whose_prerequisite_failed_is_skipped_not_sent():
    parents = [action("parent", f"p{i}") for i in range(8)]
    children = [action("child", f"c{i}", [f"p{i}"]) for i in range(8)]
    second = Probe()
    result, _ = apply(parents + children,
                      [Step(("parent",), Probe(fail={"p3", "p6"}), 2, 4), Step(("child",), second, 2, 4)])
    skipped = {o.action.id: o.message for o in result.outcomes if o.action.kind == "child" and not o.ok}
    assert set(skipped) == {"c3", "c6"} and "p3" in skipped["c3"]
    assert "child:c3" not in second.started and "child:c6" not in second.started
    assert [e.message for e in result.errors] == ["refused", "refused", skipped["c3"], skipped["c6"]]


def test_a_stop_lets_the_chunks_in_flight_land_and_records_them():
    actions = [action("make", f"a{i}") for i in range(40)]
    probe = Probe()
    asked = []

    def stop_requested():
        asked.append(1)
        return len(asked) > 6

    result, store = apply(actions, [Step(("make",), probe, 2, 4)], stop_requested=stop_requested)
    assert result.stopped
    started = set(probe.started)
    assert len(started) == 12  # six chunks started, then the stop
    assert {k for chunk in store.chunks for k in chunk} == started  # every one that ran is recorded
    assert {o.action.key for o in result.outcomes} == started


def test_a_step_that_raises_is_raised_once_the_chunks_in_flight_are_recorded():
    actions = [action("make", f"a{i}") for i in range(8)]
    probe = Probe(raise_on={"a0"}, delays={"a0": 0.001, "a1": 0.05, "a2": 0.05, "a3": 0.05})
    store = Store()
    with pytest.raises(RuntimeError, match="the step broke"):
        apply_plan(Plan("users", tuple(actions)), [Step(("make",), probe, 1, 4)], store=store, run_id="r",
                   now=lambda: datetime.now(timezone.utc))
    # The chunks in flight with the broken one landed and were recorded; none started after it.
    assert set(probe.started) == {"make:a0", "make:a1", "make:a2", "make:a3"}
    assert sorted(store.chunks) == [["make:a1"], ["make:a2"], ["make:a3"]]


def test_one_chunk_at_a_time_runs_in_the_callers_thread():
    seen = []

    def run(actions):
        seen.append(threading.get_ident())
        return [Outcome(a, True) for a in actions]

    apply([action("make", f"a{i}") for i in range(5)], [Step(("make",), run, 2)])
    assert set(seen) == {threading.get_ident()}
