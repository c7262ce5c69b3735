"""An administrator's resolutions in the plan: pure.

``ignore``: a user's conflicts accepted with a reason leave the report's conflicts for its
``ignored`` list, no longer count for the exit code, and come back as soon as they change (a new
clash is a new conflict): the resolution holds the conflicts' signature as they were accepted.
``link`` (this user is that contact) is applied by the matcher (``jobs.plan.match``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Iterable, Mapping

from jobs.plan.model import Issue, Plan


def conflict_id(job: str, issue: Issue) -> str:
    """A stable id of one conflict: the same conflict in the next run has the same id."""
    text = json.dumps([job, issue.kind, issue.webitel_id, issue.user if issue.webitel_id is None else "",
                       sorted(issue.others)], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def signature(issues: Iterable[Issue]) -> str:
    """What a user's conflicts are, independent of their wording: kinds and the other parties."""
    return json.dumps(sorted([issue.kind, sorted(issue.others)] for issue in issues), ensure_ascii=False)


_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def resolution_key(issue: Issue) -> str | None:
    """Whose conflict it is: a Webitel user's id, or ``record:<Id>`` for a Creatio record that no
    Webitel user has yet (provisioning); None for a run-wide one (a cap), never ignorable."""
    if issue.webitel_id is not None:
        return str(issue.webitel_id)
    found = _GUID.search(issue.user.lower()) if issue.user else None
    return f"record:{found.group(0)}" if found else None


def by_user(issues: Iterable[Issue]) -> dict[str, list[Issue]]:
    out: dict[str, list[Issue]] = {}
    for issue in issues:
        key = resolution_key(issue)
        if key is not None:
            out.setdefault(key, []).append(issue)
    return out


def carry_over(plan: Plan, previous: Iterable[Issue], scope: set[str]) -> tuple[Plan, int]:
    """An incremental plan with the earlier conflicts it could not see (and how many): those of
    users and records outside its ``scope`` (their ``resolution_key``) stay open until a cycle that
    reads them says otherwise. Run-wide conflicts (a cap) are left to the next full read."""
    have = {(c.kind, resolution_key(c), c.others) for c in plan.conflicts}
    carried = []
    for issue in previous:
        key = resolution_key(issue)
        if key is None or key in scope or (issue.kind, key, issue.others) in have:
            continue
        have.add((issue.kind, key, issue.others))
        carried.append(replace(issue, message=issue.message.split(IGNORED_MARK, 1)[0]))
    return replace(plan, conflicts=plan.conflicts + tuple(carried)), len(carried)


IGNORED_MARK = " [ignored: "


def split_ignored(plan: Plan, ignores: Mapping[str, Mapping]) -> tuple[Plan, tuple[Issue, ...]]:
    """The plan without the conflicts an administrator accepted (unchanged since), and those.

    Args:
        plan: the plan as computed.
        ignores: ``resolution_key`` -> its ``ignore`` resolution (``signature``, ``reason``).
    """
    if not ignores:
        return plan, ()
    ignored: list[Issue] = []
    for key, issues in by_user(plan.conflicts).items():
        accepted = ignores.get(key)
        if accepted is not None and accepted.get("signature") == signature(issues):
            reason = accepted.get("reason", "")
            ignored += [replace(i, message=f"{i.message}{IGNORED_MARK}{reason}]") for i in issues]
    if not ignored:
        return plan, ()
    gone = {(i.kind, resolution_key(i)) for i in ignored}
    kept = tuple(c for c in plan.conflicts if (c.kind, resolution_key(c)) not in gone)
    return replace(plan, conflicts=kept), tuple(ignored)
