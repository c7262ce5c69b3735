"""Applying a plan: batched ``$batch`` writes in dependency order, each success recorded as it lands.

Order: accounts, contacts, Webitel-user records, communication options, then deactivations, like
identity provisioning engines apply "references after primary objects". One failing record does
not stop the others; an action whose prerequisite failed is skipped and reported. Creates carry
our deterministic Ids, so a batch repeated after a timeout or a crash cannot duplicate anything:
a create answered "duplicate key" for our own Id already landed and counts as done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from connector.creatio.batch import BatchOp
from connector.creatio.records import WebitelUserRecord
from mappings.profiles import EXTENSION_COMMUNICATION_TYPE, ObjectModel

from .plan import Action, Issue, Plan
from .state import Event

PHASES = (("create_account",), ("create_contact",), ("create_record", "update_record", "link_record"),
          ("create_extension_comm", "update_extension_comm"), ("deactivate_record", "delete_record"))


@dataclass
class Outcome:
    """What happened to one action."""

    action: Action
    ok: bool
    message: str = ""
    already_existed: bool = False


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)

    def applied(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)


def record_fields(model: ObjectModel) -> frozenset[str]:
    """The record fields whose column exists in the profile."""
    return frozenset(name for name, _, _ in WebitelUserRecord.mapped(model))


def to_batch_op(action: Action, model: ObjectModel) -> BatchOp | None:
    """The write that carries out ``action`` (None for state-only actions)."""
    entity = model.webitel_user.entity
    if action.kind in ("create_account", "create_contact"):
        return BatchOp("POST", action.object, body=dict(action.new or {}), ref=action.key)
    if action.kind == "create_record":
        body = WebitelUserRecord.to_row(WebitelUserRecord(id=action.id, **(action.new or {})), model)
        return BatchOp("POST", entity, body=body, ref=action.key)
    if action.kind in ("update_record", "deactivate_record"):
        return BatchOp("PATCH", entity, id=action.id, body=WebitelUserRecord.to_row(action.new or {}, model),
                       ref=action.key)
    if action.kind == "delete_record":
        return BatchOp("DELETE", entity, id=action.id, ref=action.key)
    if action.kind == "create_extension_comm":
        new = action.new or {}
        return BatchOp("POST", "ContactCommunication", ref=action.key, body={
            "Id": action.id, "ContactId": new["contact_id"], "CommunicationTypeId": EXTENSION_COMMUNICATION_TYPE,
            "Number": new["number"]})
    if action.kind == "update_extension_comm":
        return BatchOp("PATCH", "ContactCommunication", id=action.id, body={"Number": (action.new or {})["number"]},
                       ref=action.key)
    return None


def apply_plan(plan: Plan, *, creatio, model: ObjectModel, store, run_id: str, now: Callable[[], datetime],
               progress: Callable[[int, int], None] = lambda done, total: None,
               stop_requested: Callable[[], bool] = lambda: False) -> ApplyResult:
    """Execute ``plan`` and record every outcome in ``store`` batch by batch.

    Args:
        plan: the plan to carry out.
        creatio: the Creatio client.
        model: the object model (names of entities and columns).
        store: the state store.
        run_id: the run the events belong to.
        now: the clock.
        progress: called with (actions done, actions in all).
        stop_requested: checked between batches; True ends the run after the batch in flight.
    """
    result = ApplyResult()
    failed_ids: set[str] = set()
    total, done = len(plan.actions), 0
    for kinds in PHASES:
        phase = [a for a in plan.actions if a.kind in kinds]
        for start in range(0, len(phase), creatio.settings.batch_size):
            if stop_requested():
                return result
            chunk = phase[start:start + creatio.settings.batch_size]
            outcomes = _run_chunk(chunk, creatio, model, failed_ids)
            _record(store, run_id, outcomes, now())
            for outcome in outcomes:
                result.outcomes.append(outcome)
                if not outcome.ok:
                    failed_ids.add(outcome.action.id)
                    result.errors.append(Issue("write_failed", outcome.message, user=outcome.action.user,
                                               webitel_id=outcome.action.webitel_id, field=outcome.action.object))
            done += len(chunk)
            progress(done, total)
    return result


def _run_chunk(chunk: list[Action], creatio, model: ObjectModel, failed_ids: set[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    ops: list[tuple[Action, BatchOp]] = []
    for action in chunk:
        blocked = [d for d in action.depends_on if d in failed_ids]
        if blocked:
            outcomes.append(Outcome(action, False, f"skipped: a prerequisite was not written ({blocked[0]})"))
            continue
        op = to_batch_op(action, model)
        if op is None:
            outcomes.append(Outcome(action, True))
        else:
            ops.append((action, op))
    if ops:
        results = creatio.batch([op for _, op in ops])
        for (action, _), res in zip(ops, results):
            message = "" if res.ok else str(res.error)
            outcomes.append(Outcome(action, res.ok, message, bool(getattr(res, "already_existed", False))))
    return outcomes


def _record(store, run_id: str, outcomes: list[Outcome], when: datetime) -> None:
    events = [Event(action=o.action.kind, object=o.action.object, key=o.action.key, old=o.action.old,
                    new=o.action.new, outcome=("applied" if not o.already_existed else "already_existed")
                    if o.ok else "failed", message=o.message) for o in outcomes]
    links: dict[str, list[tuple[str, str]]] = {"webitel_user": [], "contact": []}
    unlink: list[str] = []
    for o in outcomes:
        if not o.ok or o.action.webitel_id is None:
            continue
        wid = str(o.action.webitel_id)
        if o.action.object == "WebitelUser":
            if o.action.kind == "delete_record":
                unlink.append(wid)
            else:
                links["webitel_user"].append((wid, o.action.id))
        elif o.action.kind == "create_contact":
            links["contact"].append((wid, o.action.id))
    store.record_applied(run_id, events, links={k: v for k, v in links.items() if v}, now=when)
    if unlink:
        store.delete_links("webitel_user", unlink)
