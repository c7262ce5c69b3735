"""Absence from a read alone deletes nothing: every candidate is confirmed by Id first, on both sides.

The clients here are the real ones over loopback HTTP, wrapped so that their *full* reads lose a
few rows (as a read that ends early, or read rights that hide rows, would); asked by Id, the rows
are there. Nothing may be deactivated, deleted or created again because of the lost rows.
"""

from __future__ import annotations

import pytest

from connector.creatio.batch import BatchOp
from e2ekit import run_job
from jobs.wiring import creatio_client, webitel_client

pytestmark = pytest.mark.e2e

DESTRUCTIVE = {"delete_webitel_user", "deactivate_record", "delete_record", "create_record", "create_contact"}


class LossyWebitel:
    """The real Webitel client, whose unfiltered user read drops some users."""

    def __init__(self, client, hidden: set[int]) -> None:
        self._client, self.hidden = client, hidden

    def iter_users(self, **kw):
        for user in self._client.iter_users(**kw):
            if "id" in kw or getattr(user, "id", None) not in self.hidden:
                yield user

    def __getattr__(self, name):
        return getattr(self._client, name)


class LossyCreatio:
    """The real Creatio client, whose unfiltered read of one entity drops some rows."""

    def __init__(self, client, entity: str, hidden: set[str]) -> None:
        self._client, self.entity, self.hidden = client, entity, hidden

    def iter_rows(self, entity, **kw):
        for row in self._client.iter_rows(entity, **kw):
            if entity != self.entity or kw.get("filter") or row["Id"] not in self.hidden:
                yield row

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def imported(make_sandbox, make_config):
    box = make_sandbox(60, seed=21)
    config = make_config(box, provisioning={"enabled": True, "on_delete": "permanent"},
                         sync={"max_deactivation_share": 1.0, "max_deactivations": 1000})
    assert not run_job(config).failure
    return box, config


def test_users_missing_from_the_webitel_read_are_confirmed_and_kept(imported):
    box, config = imported
    records = box.creatio_app.rows("WebitelUser")
    hidden = {int(r["WebitelId"]) for r in records if r["WebitelId"]}
    hidden = set(sorted(hidden)[:7])
    webitel = LossyWebitel(webitel_client(config), hidden)
    report = run_job(config, webitel=webitel, full=True)
    kinds = [a.kind for a in report.plan.actions]
    assert not DESTRUCTIVE & set(kinds), kinds
    assert report.details["read"]["confirm vanished users"] == "7 of 7 found by id"
    kept = [
        r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"] and int(r["WebitelId"]) in hidden
    ]
    assert len(kept) == 7 and all(r["Active"] for r in kept)


def test_records_missing_from_the_creatio_read_are_confirmed_and_kept(imported):
    box, config = imported
    users_before = len(box.webitel_app.all_users())
    hidden = {r["Id"] for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"]}
    hidden = set(sorted(hidden)[:5])  # records of imported users (a Creatio-only one is no candidate)
    creatio = LossyCreatio(creatio_client(config), "WebitelUser", hidden)
    report = run_job(config, creatio=creatio, full=True)
    kinds = [a.kind for a in report.plan.actions]
    assert not DESTRUCTIVE & set(kinds), kinds
    assert report.details["read"]["confirm deleted records"] == "5 of 5 found by Id"
    assert len(box.webitel_app.all_users()) == users_before


def test_a_record_really_deleted_is_still_carried(imported):
    box, config = imported
    record = next(r for r in box.creatio_app.rows("WebitelUser") if r["WebitelId"])
    creatio_client(config).batch([BatchOp("DELETE", "WebitelUser", id=record["Id"])])
    report = run_job(config, full=True)
    assert [a.kind for a in report.plan.actions if a.kind == "delete_webitel_user"] == ["delete_webitel_user"]
    assert report.details["read"]["confirm deleted records"] == "0 of 1 found by Id"
