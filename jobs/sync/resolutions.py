"""An administrator resolves conflicts: ``link`` a user to a contact, ``ignore`` (or ``unignore``)
a user's accepted conflicts. Used by the command line, the HTTP API and the console alike.

A resolution lives in the state store and is part of the next plan's input (``jobs.plan.match``
for links, ``jobs.plan.resolutions`` for ignores); each one is also recorded in the history as a
run of the ``resolve`` job with one event on the user, saying who did it and when.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from connector.creatio import odata
from connector.errors import Refused
from mappings.users import user_label

from jobs.config import AppConfig
from jobs.plan import Issue
from jobs.plan.resolutions import by_user, conflict_id, resolution_key, signature
from jobs.state import Event
from jobs.sync.recording import utcnow
from jobs.wiring import creatio_client, state_store, webitel_client

_GUID = GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
JOBS = ("users", "licenses")


def open_conflicts(store) -> list[dict[str, Any]]:
    """The conflicts of the latest real (not dry) run of each job, each with a stable ``id``."""
    out = []
    for job in JOBS:
        run = _latest_run(store, job)
        for item in (run.report or {}).get("conflicts", []) if run else []:
            issue = _issue(item)
            out.append({**issue.as_dict(), "id": conflict_id(job, issue), "job": job, "run_id": run.run_id,
                        "others": list(issue.others)})
    return out


def ignored_conflicts(store) -> list[dict[str, Any]]:
    """The conflicts the latest runs left aside as accepted, with who accepted them, when and why."""
    accepted = store.resolutions("ignore")
    out = []
    for job in JOBS:
        run = _latest_run(store, job)
        for item in (run.report or {}).get("ignored", []) if run else []:
            issue = _issue(item)
            resolution = accepted.get(str(issue.webitel_id), {})
            out.append({**issue.as_dict(), "id": conflict_id(job, issue), "job": job, "run_id": run.run_id,
                        "reason": resolution.get("reason", ""), "who": resolution.get("who", ""),
                        "at": resolution["at"].isoformat() if resolution.get("at") else None})
    return out


def link_user(config: AppConfig, user: str, contact: str, *, who: str, webitel=None, creatio=None,
              now: datetime | None = None) -> dict[str, Any]:
    """The next run links Webitel user ``user`` (a username or an id) to ``contact`` (a Contact Id,
    or a name that exactly one contact has).

    Raises:
        Refused: no such user, no such contact, or a name that several contacts share (named).
    """
    now = now or utcnow()
    webitel = webitel or webitel_client(config)
    creatio = creatio or creatio_client(config)
    webitel_id, username = _webitel_user(webitel, user)
    contact_id, name = _contact(creatio, contact)
    with state_store(config) as store:
        store.put_resolution(str(webitel_id), "link", who=who, now=now, contact_id=contact_id)
        _record(store, "link", webitel_id, username, {"contact_id": contact_id, "contact": name}, who, now)
    return {"webitel_id": webitel_id, "user": user_label(username, webitel_id), "contact_id": contact_id,
            "contact": name, "who": who}


def ignore_user(config: AppConfig, user: str, *, reason: str, who: str,
                now: datetime | None = None) -> dict[str, Any]:
    """Accept ``user``'s conflicts of the latest runs, as they are now, with ``reason``.

    Raises:
        Refused: no reason given, or the user has no open conflict to accept.
    """
    if not reason.strip():
        raise Refused("give a reason (--reason TEXT): it is shown with every later report")
    now = now or utcnow()
    with state_store(config) as store:
        conflicts = [c for c in open_conflicts(store) if _is(c, user)]
        if not conflicts:
            raise Refused(f"{user!r} has no open conflict in the latest runs: nothing to ignore")
        key = resolution_key(_issue(conflicts[0]))
        issues = by_user(_issue(c) for c in conflicts)[key]
        store.put_resolution(
            key, "ignore", who=who, now=now, reason=reason.strip(), signature=signature(issues)
        )
        label = conflicts[0].get("user", "")
        _record(
            store,
            "ignore",
            key,
            label,
            {"reason": reason.strip(), "conflicts": [i.kind for i in issues]},
            who,
            now,
        )
    return {
        "key": key,
        "webitel_id": conflicts[0].get("webitel_id"),
        "user": label,
        "reason": reason.strip(),
        "conflicts": [i.kind for i in issues],
        "who": who,
    }


def unignore_user(config: AppConfig, user: str, *, who: str, now: datetime | None = None) -> dict[str, Any]:
    """Forget an ``ignore`` (or a ``link``) of ``user``; its conflicts count again from the next run.

    Raises:
        Refused: the user has no resolution.
    """
    now = now or utcnow()
    with state_store(config) as store:
        text = user.strip()
        keys = [text] if text.isdigit() else [f"record:{text.lower()}"] if _GUID.fullmatch(text) else []
        keys += [k for k in (store.webitel_id_of(text),) if k]
        keys += [
            resolution_key(_issue(c))
            for c in open_conflicts(store) + ignored_conflicts(store)
            if _is(c, text)
        ]
        key = next((k for k in keys if k and store.delete_resolution(k)), None)
        if key is None:
            raise Refused(f"{user!r} has no link or ignore to take back")
        _record(store, "unignore", key, "" if text.isdigit() else text, None, who, now)
    return {"key": key, "who": who}


def _cycle_runs(store, job: str):
    """The real runs of ``job`` that looked at everyone (or carried what they did not look at):
    not dry, not ``license assign|revoke`` (one grant, recorded as a licences run), newest first."""
    return (r for r in store.recent_runs(20, job=job)
            if not r.dry_run and not (r.report or {}).get("command"))


def _latest_run(store, job: str):
    return next((r for r in _cycle_runs(store, job) if r.outcome != "running"), None)


def earlier_conflicts(store, job: str) -> list[Issue]:
    """The conflicts (accepted ones too) of the latest real run of ``job`` that got as far as a plan."""
    run = next((r for r in _cycle_runs(store, job) if r.outcome not in ("running", "failed")), None)
    report = (run.report or {}) if run else {}
    return [_issue(item) for item in report.get("conflicts", []) + report.get("ignored", [])]


def _issue(item: dict) -> Issue:
    return Issue(
        item.get("kind", ""),
        item.get("message", ""),
        item.get("user", ""),
        item.get("webitel_id"),
        item.get("field", ""),
        tuple(item.get("others", ())),
    )


def _is(conflict: dict, user: str) -> bool:
    """Whether ``user`` (a Webitel username or id, or a Creatio record's Id or username) names the
    party of ``conflict``."""
    wanted = user.strip().casefold()
    if conflict.get("webitel_id") is not None:
        return wanted in (str(conflict["webitel_id"]), str(conflict.get("username", "")).casefold())
    label = str(conflict.get("user", "")).casefold()
    return bool(wanted) and (f"'{wanted}'" in label or f"({wanted})" in label)


def _webitel_user(webitel, user: str) -> tuple[int, str]:
    text = user.strip()
    if text.isdigit():
        found = [
            u
            for u in webitel.iter_users(id=[int(text)], fields=("id", "username"))
            if getattr(u, "id", None) == int(text)
        ]
    else:
        found = [u] if (u := webitel.find_user(text)) is not None else []
    if not found:
        raise Refused(f"no Webitel user {user!r}")
    return found[0].id, found[0].username


def _contact(creatio, contact: str) -> tuple[str, str]:
    text = contact.strip()
    if GUID.fullmatch(text):
        row = creatio.get("Contact", text, select=["Id", "Name"])
        if row is None:
            raise Refused(f"no Contact with Id {text}")
        return str(row["Id"]).lower(), str(row.get("Name", ""))
    rows = creatio.list_rows("Contact", select=["Id", "Name"], filter=odata.eq("Name", text))
    if not rows:
        raise Refused(f"no Contact named {text!r} (give its Id, or its exact name)")
    if len(rows) > 1:
        raise Refused(
            f"{len(rows)} contacts are named {text!r}: give one's Id ("
            + ", ".join(str(r["Id"]) for r in rows[:10])
            + ")"
        )
    return str(rows[0]["Id"]).lower(), str(rows[0].get("Name", ""))


def _record(
    store,
    action: str,
    webitel_id: int | str,
    username: str,
    new: dict | None,
    who: str,
    now: datetime,
) -> None:
    """The resolution in the history: a run of the ``resolve`` job with one event on the user."""
    run_id = store.start_run("resolve", dry_run=False, now=now)
    store.record_events(
        run_id,
        [
            Event(
                action=action,
                object="Resolution",
                key=f"webitel_user:{webitel_id}" if str(webitel_id).isdigit() else str(webitel_id),
                new=new,
                outcome="applied",
                message=f"by {who}",
            )
        ],
        now=now,
    )
    label = user_label(username, webitel_id) if str(webitel_id).isdigit() else username or str(webitel_id)
    store.finish_run(
        run_id,
        outcome="in_sync",
        now=now,
        counts={action: 1},
        conflicts=0,
        errors=0,
        report={"run_id": run_id, "job": "resolve", "outcome": "in_sync", "user": label, "who": who},
    )
