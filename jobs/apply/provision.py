"""Writing the Creatio -> Webitel half of the users plan: create, update and delete Webitel users.

A create is not blindly retried (Webitel offers no client-chosen id), so it first looks the
username up: a user left by a run that crashed between the create and the write-back is found and
linked instead of created twice. The new Webitel id is then written back to the record.
"""

from __future__ import annotations

import logging
from functools import partial

from connector.creatio.records import WebitelUserRecord
from connector.errors import Conflict, ConnectorError
from connector.creatio.objects import ObjectModel
from connector.pool import ordered

from jobs.apply.engine import Outcome, Step, max_concurrency

log = logging.getLogger(__name__)


def provision_step(webitel, creatio, model: ObjectModel, *, password: str) -> Step:
    """``create_webitel_user``: find by username, else create; then write the id back to the record."""

    def run(actions) -> list[Outcome]:
        outcomes = []
        for action in actions:
            new = dict(action.new or {})
            try:
                user = webitel.find_user(new["username"])
                found = user is not None
                if user is None:
                    body = {k: new[k] for k in ("username", "name", "email", "extension") if new.get(k)}
                    secret = webitel.generate_password(new["username"]) if password == "generate" else None
                    user = webitel.create_user(body, password=secret)
                changes = {"webitel_id": str(user.id), "username": new["username"], "active": True}
                creatio.update(model.webitel_user.entity, action.id, WebitelUserRecord.to_row(changes, model))
            except Conflict as exc:
                kind = {"username": "duplicate_username", "extension": "duplicate_extension",
                        "email": "duplicate_email"}.get(exc.field, "conflict")
                outcomes.append(Outcome(action, False, f"{kind}: {exc}", issue=kind))
                continue
            except ConnectorError as exc:
                outcomes.append(Outcome(action, False, str(exc)))
                continue
            outcomes.append(
                Outcome(
                    action,
                    True,
                    "an existing Webitel user with this username was linked" if found else "",
                    already_existed=found,
                    detail={"webitel_id": str(user.id)},
                )
            )
        return outcomes

    # Decision: creates go one at a time. They are few (records an administrator added in
    # Creatio), and Webitel judges a clash (two new records with one username or extension) in the
    # order it gets them: one at a time, the record earlier in the plan wins, every run alike.
    return Step(("create_webitel_user",), run, 20)


def webitel_user_step(webitel) -> Step:
    """``update_webitel_user`` (PATCH the changed fields) and ``delete_webitel_user``, one request
    per user, ``[webitel] max_concurrency`` at a time."""

    def run(actions) -> list[Outcome]:
        return list(ordered([partial(_write_user, webitel, a) for a in actions], max_concurrency(webitel),
                            name="wcsync-users"))

    return Step(("update_webitel_user", "delete_webitel_user"), run, 50)


def _write_user(webitel, action) -> Outcome:
    try:
        if action.kind == "update_webitel_user":
            webitel.patch_user(int(action.webitel_id), dict(action.new or {}))
        else:
            webitel.delete_user(int(action.webitel_id), permanent=bool((action.new or {}).get("permanent")))
    except ConnectorError as exc:
        return Outcome(action, False, str(exc))
    return Outcome(action, True)
