"""Applying a plan: steps in dependency order, batched, each outcome recorded as it lands.

A plan is applied as a list of ``Step``s; each takes the actions of some kinds, in chunks, and
returns one ``Outcome`` per action. Creatio writes go through ``batch_step`` (``$batch``, 100 a
request); other writes (Webitel grants) bring their own step. One failing record does not stop
the others; an action whose prerequisite failed is skipped and reported. Creates carry our
deterministic Ids, so a chunk repeated after a timeout or a crash cannot duplicate anything: a
create answered "duplicate key" for our own Id already landed and counts as done. The outcomes of
each chunk are recorded in the state store, with the links they establish, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from connector.creatio.batch import BatchOp

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
    """Actions of ``kinds``, run ``chunk`` at a time by ``run(actions) -> outcomes``."""

    kinds: tuple[str, ...]
    run: Callable[[list[Action]], list[Outcome]]
    chunk: int = 100


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

    return Step(kinds, run, creatio.settings.batch_size)


def apply_plan(plan: Plan, steps: Iterable[Step], *, store, run_id: str, now: Callable[[], datetime],
               links_of: Callable[[list[Outcome]], tuple[dict, list[tuple[str, str]]]] = lambda o: ({}, []),
               progress: Callable[[int, int], None] = lambda done, total: None,
               stop_requested: Callable[[], bool] = lambda: False,
               result: ApplyResult | None = None) -> ApplyResult:
    """Execute ``plan`` step by step and record every outcome in ``store`` chunk by chunk.

    Args:
        plan: the plan to carry out.
        steps: the steps, in dependency order.
        store: the state store.
        run_id: the run the events belong to.
        now: the clock.
        links_of: outcomes -> (links to put by kind, (kind, key) links to delete).
        progress: called with (actions done, actions in all).
        stop_requested: checked between chunks; True ends the run after the chunk in flight.
        result: filled as chunks land (default: a new one), so a caller interrupted mid-way
            still holds the outcomes of every chunk that landed.
    """
    result = result if result is not None else ApplyResult()
    failed_ids: set[str] = set()
    total, done = len(plan.actions), 0
    for step in steps:
        actions = [a for a in plan.actions if a.kind in step.kinds]
        for start in range(0, len(actions), step.chunk):
            if stop_requested():
                result.stopped = True
                return result
            chunk = actions[start:start + step.chunk]
            runnable = [a for a in chunk if not any(d in failed_ids for d in a.depends_on)]
            outcomes = [Outcome(a, False, "skipped: a prerequisite was not written "
                                f"({next(d for d in a.depends_on if d in failed_ids)})")
                        for a in chunk if a not in runnable]
            outcomes += step.run(runnable) if runnable else []
            _record(store, run_id, outcomes, now(), links_of)
            for outcome in outcomes:
                result.outcomes.append(outcome)
                if not outcome.ok:
                    failed_ids.add(outcome.action.id)
                    result.errors.append(
                        Issue(
                            outcome.issue,
                            outcome.message,
                            user=outcome.action.user,
                            webitel_id=outcome.action.webitel_id,
                            field=outcome.action.object,
                        )
                    )
            done += len(chunk)
            progress(done, total)
    return result


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
