"""Applying a plan: steps in dependency order, batched, each outcome recorded as it lands.

A plan is applied as a list of ``Step``s; each takes the actions of some kinds, in chunks, and
returns one ``Outcome`` per action. Creatio writes go through ``batch_step`` (``$batch``, 100 a
request); other writes (Webitel grants) bring their own step. One failing record does not stop
the others; an action whose prerequisite failed is skipped and reported. Creates carry our
deterministic Ids, so a chunk repeated after a timeout or a crash cannot duplicate anything: a
create answered "duplicate key" for our own Id already landed and counts as done. The outcomes of
each chunk are recorded in the state store, with the links they establish, in one transaction.

Steps run one after the other: a step starts once every chunk of the one before has landed and
been recorded (accounts, then contacts, then the records that point at them). Within a step, up to
``Step.parallel`` chunks are in flight at once (``[creatio] max_concurrency`` for ``$batch``).
A chunk whose action depends on one still in flight waits for it to land; one that depends on an
action that failed is skipped, as it always was. Chunks run on pool threads; their outcomes are
recorded here, in the caller's thread, as each lands, and ``stop_requested`` is asked before each
chunk starts (the chunks in flight finish and are recorded).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from connector.creatio.batch import BatchOp
from connector.pool import Pool, max_concurrency

from jobs.plan import Action, Issue, Plan
from jobs.state import Event


@dataclass(slots=True)
class Outcome:
    """What happened to one action (``detail``: what the write returned that later steps need)."""

    action: Action
    ok: bool
    message: str = ""
    already_existed: bool = False
    detail: dict | None = None
    issue: str = "write_failed"  # the kind reported when it failed (e.g. duplicate_username)


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    stopped: bool = False

    def ok_actions(self, *kinds: str) -> list[Action]:
        return [o.action for o in self.outcomes if o.ok and (not kinds or o.action.kind in kinds)]


@dataclass(frozen=True)
class Step:
    """Actions of ``kinds``, run ``chunk`` at a time by ``run(actions) -> outcomes``, up to
    ``parallel`` chunks at once (``run`` is then called from several threads)."""

    kinds: tuple[str, ...]
    run: Callable[[list[Action]], list[Outcome]]
    chunk: int = 100
    parallel: int = 1


def batch_step(kinds: tuple[str, ...], creatio, to_op: Callable[[Action], BatchOp | None]) -> Step:
    """A step that writes through Creatio's ``$batch``; ``to_op`` None means state-only (always ok)."""

    def run(actions: list[Action]) -> list[Outcome]:
        outcomes, ops = [], []
        for action in actions:
            op = to_op(action)
            if op is None:
                outcomes.append(Outcome(action, True))
            else:
                ops.append((action, op))
        if ops:
            for (action, _), res in zip(ops, creatio.batch([op for _, op in ops])):
                outcomes.append(Outcome(action, res.ok, "" if res.ok else str(res.error),
                                        bool(getattr(res, "already_existed", False))))
        return outcomes

    return Step(kinds, run, creatio.settings.batch_size, max_concurrency(creatio))


def apply_plan(plan: Plan, steps: Iterable[Step], *, store, run_id: str, now: Callable[[], datetime],
               links_of: Callable[[list[Outcome]], tuple[dict, list[tuple[str, str]]]] = lambda o: ({}, []),
               progress: Callable[[int, int], None] = lambda done, total: None,
               stop_requested: Callable[[], bool] = lambda: False,
               result: ApplyResult | None = None) -> ApplyResult:
    """Execute ``plan`` step by step and record every outcome in ``store`` chunk by chunk.

    Args:
        plan: the plan to carry out.
        steps: the steps, in dependency order.
        store: the state store; only this thread records in it.
        run_id: the run the events belong to.
        now: the clock.
        links_of: outcomes -> (links to put by kind, (kind, key) links to delete).
        progress: called with (actions done, actions in all).
        stop_requested: checked before each chunk starts; True ends the run once the chunks in
            flight have landed and been recorded.
        result: filled as chunks land (default: a new one), so a caller interrupted mid-way
            still holds the outcomes of every chunk that landed.

    Raises:
        Whatever a step raised (not a failed write, which is an outcome), once the chunks in
        flight with it have landed and been recorded.
    """
    result = result if result is not None else ApplyResult()
    run = _Run(plan, store, run_id, now, links_of, progress, result)
    for step in steps:
        actions = [a for a in plan.actions if a.kind in step.kinds]
        chunks = [actions[start:start + step.chunk] for start in range(0, len(actions), step.chunk)]
        if not run.step(step, chunks, stop_requested):
            result.stopped = True
            return result
    return result


class _Run:
    """One ``apply_plan``: what failed so far, what is in flight, and the recording of outcomes."""

    def __init__(self, plan: Plan, store, run_id: str, now, links_of, progress, result: ApplyResult) -> None:
        self.store, self.run_id, self.now, self.links_of = store, run_id, now, links_of
        self.progress, self.result = progress, result
        self.failed_ids: set[str] = set()
        self.in_flight: dict[Future, tuple[int, list[Action]]] = {}  # in the order the chunks started
        self.landed: list[tuple[int, list[Outcome]]] = []  # the step's chunks, as they landed
        self.flying: set[str] = set()  # the ids of the actions in flight
        self.total, self.done = len(plan.actions), 0

    def step(self, step: Step, chunks: list[list[Action]], stop_requested: Callable[[], bool]) -> bool:
        """Run the chunks of one step, ``step.parallel`` at a time; False when a stop was asked.

        When chunks land, the next ones start before the landed ones are recorded: recording
        takes a few milliseconds of this thread, which would otherwise leave a slot idle. A chunk
        that depends on a landed one still waits for its recording (its ids stay in ``flying``
        until then), so a failure is known before anything that needs it starts.
        """
        marks = len(self.result.outcomes), len(self.result.errors)
        self.landed = []
        error: BaseException | None = None
        stopped = False
        queue = enumerate(chunks)
        index, chunk = next(queue, (0, None))

        def fill() -> None:
            nonlocal index, chunk, stopped
            while chunk is not None and error is None and not stopped and len(self.in_flight) < step.parallel:
                if any(d in self.flying for a in chunk for d in a.depends_on):
                    return  # a prerequisite is in flight: it lands first
                if stop_requested():
                    stopped = True
                    return
                self.start(pool, step, index, chunk)
                index, chunk = next(queue, (0, None))

        with Pool(step.parallel, name="wcsync-apply") as pool:
            fill()
            while self.in_flight:
                done = wait(self.in_flight, return_when=FIRST_COMPLETED).done
                landed = [(future, self.in_flight.pop(future)) for future in list(self.in_flight)
                          if future in done]
                # A chunk that raised stops the step: nothing more starts, the rest land.
                error = error or next((f.exception() for f, _ in landed if f.exception()), None)
                fill()
                error = self.land(landed) or error
                fill()
        self.in_chunk_order(*marks)
        if error is not None:
            raise error
        return not stopped

    def start(self, pool: Pool, step: Step, index: int, chunk: list[Action]) -> None:
        runnable, skipped = [], []
        for a in chunk:
            failed = next((d for d in a.depends_on if d in self.failed_ids), None)
            if failed is None:
                runnable.append(a)
            else:
                skipped.append(Outcome(a, False, f"skipped: a prerequisite was not written ({failed})"))
        self.in_flight[pool.submit(_run_chunk, step, runnable, skipped)] = index, chunk
        self.flying.update(a.id for a in chunk)

    def land(self, landed: list[tuple[Future, tuple[int, list[Action]]]]) -> BaseException | None:
        """Record the chunks that landed, in the order they started; the first error one raised."""
        error = None
        for future, (index, chunk) in landed:
            try:
                outcomes = future.result()
            except BaseException as exc:  # raised once the others in flight are recorded
                error = error or exc
                self.flying.difference_update(a.id for a in chunk)
                continue
            _record(self.store, self.run_id, outcomes, self.now(), self.links_of)
            self.flying.difference_update(a.id for a in chunk)
            self.landed.append((index, outcomes))
            for outcome in outcomes:
                self.result.outcomes.append(outcome)
                if not outcome.ok:
                    self.failed_ids.add(outcome.action.id)
                    self.result.errors.append(_issue(outcome))
            self.done += len(chunk)
            self.progress(self.done, self.total)
        return error

    def in_chunk_order(self, outcomes_mark: int, errors_mark: int) -> None:
        """The step's outcomes (and the errors among them) in the order of its chunks, as a run
        one chunk at a time lists them: a report does not depend on which chunk landed first."""
        if all(a[0] < b[0] for a, b in zip(self.landed, self.landed[1:])):
            return
        in_order = [o for _, outcomes in sorted(self.landed, key=lambda landed: landed[0]) for o in outcomes]
        self.result.outcomes[outcomes_mark:] = in_order
        self.result.errors[errors_mark:] = [_issue(o) for o in in_order if not o.ok]


def _issue(outcome: Outcome) -> Issue:
    return Issue(
        outcome.issue,
        outcome.message,
        user=outcome.action.user,
        webitel_id=outcome.action.webitel_id,
        field=outcome.action.object,
    )


def _run_chunk(step: Step, runnable: list[Action], skipped: list[Outcome]) -> list[Outcome]:
    return skipped + (step.run(runnable) if runnable else [])


def _record(store, run_id: str, outcomes: list[Outcome], when: datetime, links_of) -> None:
    events = [
        Event(
            action=o.action.kind,
            object=o.action.object,
            key=o.action.key,
            old=o.action.old,
            new=o.action.new,
            outcome=("already_existed" if o.already_existed else "applied") if o.ok else "failed",
            message=o.message,
        )
        for o in outcomes
    ]
    links, unlink = links_of(outcomes)
    unlinks: dict[str, list[str]] = {}
    for kind, key in unlink:
        unlinks.setdefault(kind, []).append(key)
    store.record_applied(
        run_id, events, links={k: v for k, v in links.items() if v}, unlinks=unlinks or None, now=when
    )
