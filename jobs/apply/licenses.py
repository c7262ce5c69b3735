"""How the licences plan is written: catalog and grant rows through ``$batch``, Webitel grants by user.

A Webitel grant change PATCHes the user's complete ``license`` list (the API has no grant
endpoint), computed from a fresh read of the user made just before, so a grant an administrator
made meanwhile is kept. Fresh reads are made for a chunk of users at once (``GET /users?id=..``);
the chunk's PATCHes, one per user, then go ``[webitel] max_concurrency`` at a time.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from itertools import chain

from connector.creatio.batch import BatchOp
from connector.creatio.records import GrantRecord, LicenseRecord
from connector.errors import ConnectorError
from connector.webitel.models import WebitelUser
from connector.creatio.objects import ObjectModel
from connector.pool import ordered

from jobs.apply.engine import ApplyResult, Outcome, Step, batch_step, max_concurrency
from jobs.plan import Action
from jobs.plan.grants import Grant

FRESH_READ_CHUNK = 100  # user ids per fresh read: well inside a URL's length


def catalog_op(action: Action, model: ObjectModel) -> BatchOp | None:
    entity = LicenseRecord.entity(model)
    if action.kind == "create_license":
        return BatchOp(
            "POST",
            entity,
            body=LicenseRecord.to_row(LicenseRecord(id=action.id, **(action.new or {})), model),
            ref=action.key,
        )
    if action.kind == "update_license":
        return BatchOp(
            "PATCH", entity, id=action.id, body=LicenseRecord.to_row(action.new or {}, model), ref=action.key
        )
    return None


def grant_row_op(action: Action, model: ObjectModel) -> BatchOp | None:
    entity = GrantRecord.entity(model)
    if action.kind == "create_grant_row":
        new = action.new or {}
        row = GrantRecord(id=action.id, user_id=new["user_id"], license_id=new["license_id"])
        return BatchOp("POST", entity, body=GrantRecord.to_row(row, model), ref=action.key)
    if action.kind == "delete_grant_row":
        return BatchOp("DELETE", entity, id=action.id, ref=action.key)
    return None


def webitel_grant_step(webitel, serial_case: dict[str, str]) -> Step:
    """Grants and revocations in Webitel, one PATCH per user with its complete new list."""
    parallel = max_concurrency(webitel)

    def run(actions: list[Action]) -> list[Outcome]:
        by_user: dict[int, list[Action]] = defaultdict(list)
        for action in actions:
            by_user[int(action.webitel_id)].append(action)
        fresh: dict[int, frozenset[str]] = {}
        for user in webitel.iter_users(id=sorted(by_user), fields=("id", "license")):
            if isinstance(user, WebitelUser):
                fresh[user.id] = frozenset(user.serials)
        outcomes: list[Outcome] = []
        gone = [a for uid, todo in by_user.items() if uid not in fresh for a in todo]
        outcomes += [Outcome(a, False, "the Webitel user no longer exists") for a in gone]
        tasks = [partial(_patch_user, webitel, uid, {s.lower(): s for s in fresh[uid]}, todo, serial_case)
                 for uid, todo in sorted(by_user.items()) if uid in fresh]
        for patched in ordered(tasks, parallel, name="wcsync-grants"):
            outcomes += patched
        return outcomes

    # Decision: the chunks run one at a time and the users of a chunk in parallel, never two
    # chunks at once: a user's grants may straddle two chunks, and each chunk's PATCH carries the
    # user's whole list read before it, so two in flight for one user would lose one's grants.
    return Step(("revoke_webitel", "grant_webitel"), run, FRESH_READ_CHUNK)


def _wanted(current: dict[str, str], actions: list[Action], serial_case: dict[str, str]) -> dict[str, str]:
    wanted = dict(current)
    for action in actions:
        serial = (action.new or action.old or {})["license"]
        if action.kind == "grant_webitel":
            wanted[serial] = serial_case.get(serial, serial)
        else:
            wanted.pop(serial, None)
    return wanted


def _patch_user(webitel, uid: int, current: dict[str, str], todo: list[Action],
                serial_case: dict[str, str]) -> list[Outcome]:
    """One PATCH with the user's complete new list; refused, each change is tried on its own, so
    one refused grant does not fail the user's other, valid ones."""
    wanted = _wanted(current, todo, serial_case)
    if set(wanted) == set(current):
        return [Outcome(a, True, already_existed=True) for a in todo]
    try:
        webitel.set_user_licenses(uid, sorted(wanted.values()))
    except ConnectorError as exc:
        if len(todo) == 1:
            return [Outcome(todo[0], False, str(exc))]
    else:
        return [Outcome(a, True) for a in todo]
    outcomes = []
    for action in todo:
        one = _wanted(current, [action], serial_case)
        try:
            if set(one) != set(current):
                webitel.set_user_licenses(uid, sorted(one.values()))
        except ConnectorError as exc:
            outcomes.append(Outcome(action, False, str(exc)))
        else:
            current = one
            outcomes.append(Outcome(action, True))
    return outcomes


def license_steps(webitel, creatio, model: ObjectModel, serial_case: dict[str, str]) -> list[Step]:
    return [
        batch_step(("create_license", "update_license"), creatio, lambda a: catalog_op(a, model)),
        webitel_grant_step(webitel, serial_case),
        batch_step(("create_grant_row", "delete_grant_row"), creatio, lambda a: grant_row_op(a, model)),
    ]


def sides_after(
    webitel: frozenset[Grant], creatio: frozenset[Grant], result: ApplyResult | None
) -> tuple[frozenset[Grant], frozenset[Grant]]:
    """Both sides' grants after the run, from what actually landed."""
    if result is None:
        return frozenset(webitel), frozenset(creatio)
    failed_rows: set[str] = {
        o.action.key for o in result.outcomes if not o.ok and o.action.kind == "delete_grant_row"
    }
    # A side nothing landed on is returned as it came: no copy of 150,000 grants.
    w, c = _Changed(webitel), _Changed(creatio)
    wids: dict[int | None, str] = {}  # one string per user, not one per grant
    for o in result.outcomes:
        if not o.ok:
            continue
        a = o.action
        wid = wids.get(a.webitel_id)
        if wid is None:
            wid = wids[a.webitel_id] = str(a.webitel_id)
        grant = (wid, (a.new or a.old or {}).get("license", ""))
        if a.kind == "grant_webitel":
            w.add(grant)
        elif a.kind == "revoke_webitel":
            w.discard(grant)
        elif a.kind == "create_grant_row":
            c.add(grant)
        elif a.kind == "delete_grant_row" and a.key not in failed_rows:
            c.discard(grant)
    return w.result(), c.result()


class _Changed:
    """A set of grants and the changes that landed on it, in order; the set after them is built
    once at the end (no working copy besides the result when the changes only add or only remove,
    as nearly every run's do)."""

    def __init__(self, grants: frozenset[Grant]) -> None:
        self.grants = grants
        self.changed: list[Grant] = []
        self.added = bytearray()  # per change: 1 added, 0 removed (a byte, not a pair per grant)

    def add(self, grant: Grant) -> None:
        self.changed.append(grant)
        self.added.append(1)

    def discard(self, grant: Grant) -> None:
        self.changed.append(grant)
        self.added.append(0)

    def result(self) -> frozenset[Grant]:
        if not self.changed:
            return frozenset(self.grants)
        if 0 not in self.added:
            return frozenset(chain(self.grants, self.changed))
        if 1 not in self.added:
            return frozenset(self.grants).difference(self.changed)
        grants = set(self.grants)
        for grant, added in zip(self.changed, self.added):
            if added:
                grants.add(grant)
            else:
                grants.discard(grant)
        return frozenset(grants)
