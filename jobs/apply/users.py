"""How the users plan is written: the Creatio writes of each action, the steps, the links."""

from __future__ import annotations

from connector.creatio.batch import BatchOp
from connector.creatio.records import WebitelUserRecord
from connector.creatio.objects import ObjectModel
from connector.creatio.values import EXTENSION_COMMUNICATION_TYPE

from jobs.apply.engine import Outcome, Step, batch_step
from jobs.plan import Action

# Accounts, then contacts, then records, then communication options, then retirements: like
# identity provisioning engines, references are written after the objects they point at.
PHASES = (("create_account",), ("create_contact",), ("create_record", "update_record", "link_record"),
          ("create_extension_comm", "update_extension_comm"), ("deactivate_record", "delete_record"))


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
        return BatchOp(
            "POST",
            "ContactCommunication",
            ref=action.key,
            body={
                "Id": action.id,
                "ContactId": new["contact_id"],
                "CommunicationTypeId": EXTENSION_COMMUNICATION_TYPE,
                "Number": new["number"],
            },
        )
    if action.kind == "update_extension_comm":
        return BatchOp(
            "PATCH",
            "ContactCommunication",
            id=action.id,
            body={"Number": (action.new or {})["number"]},
            ref=action.key,
        )
    return None


def user_steps(webitel, creatio, model: ObjectModel, *, password: str = "generate") -> list[Step]:
    """Import writes first, then Creatio -> Webitel, then retirements (capped, destructive last)."""
    from jobs.apply.provision import provision_step, webitel_user_step

    *imports, retire = [batch_step(kinds, creatio, lambda a: to_batch_op(a, model)) for kinds in PHASES]
    return [
        *imports,
        provision_step(webitel, creatio, model, password=password),
        webitel_user_step(webitel),
        retire,
    ]


def user_links(outcomes: list[Outcome]) -> tuple[dict, list[tuple[str, str]]]:
    """Links established (Webitel id -> record, with the agreed name and extension and the
    username; Webitel id -> created contact) and links removed."""
    links: dict[str, list[tuple]] = {"webitel_user": [], "contact": []}
    unlink: list[tuple[str, str]] = []
    for o in outcomes:
        if not o.ok:
            continue
        a = o.action
        if a.kind == "create_webitel_user" and o.detail:
            new = a.new or {}
            links["webitel_user"].append(
                (
                    o.detail["webitel_id"],
                    a.id,
                    {"name": new.get("name", ""), "extension": new.get("extension", ""),
                     "username": new.get("username", "")},
                )
            )
            continue
        if a.webitel_id is None:
            continue
        wid = str(a.webitel_id)
        if a.kind in ("delete_record", "delete_webitel_user"):
            unlink.append(("webitel_user", wid))
        elif a.object == "WebitelUser" or a.kind == "update_webitel_user":
            # The username rides along with the agreed fields, so ``history --object USERNAME``
            # can find the user from the state store alone.
            username = a.user.rsplit(" (id ", 1)[0]
            links["webitel_user"].append(
                (wid, a.id, {**a.link_extra, "username": username})
                if a.link_extra is not None
                else (wid, a.id)
            )
        elif a.kind == "create_contact":
            links["contact"].append((wid, a.id))
    return links, unlink
