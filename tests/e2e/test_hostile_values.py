"""Hostile values in Webitel users: one bad record never stops the others, and is named.

A 5,000-character name (too long for any lookup URL), an extension with letters, a username that
tries OData injection, NUL and newline characters, emoji and right-to-left text, all through the
real Webitel API of the sandbox and a real run over loopback HTTP.
"""

from __future__ import annotations

import pytest

from e2ekit import run_job
from jobs.wiring import webitel_client

pytestmark = pytest.mark.e2e

HOSTILE = [
    {"username": "long.name", "name": "N" * 5000, "extension": "6001"},
    {"username": "letters.ext", "name": "Letters Ext", "extension": "60a2"},
    {"username": "x') or true or ('", "name": "Injection Try", "extension": "6003"},
    {"username": "nul.newline", "name": "Nul\x00 New\nLine", "extension": "6004"},
    {"username": "emoji.rtl", "name": "שלום 🎧 مرحبا", "extension": "6005"},
]


@pytest.fixture
def hostile(make_sandbox, make_config):
    box = make_sandbox(40, seed=31)
    config = make_config(box)
    webitel = webitel_client(config)
    ids = {u["username"]: webitel.create_user(dict(u), password="Pa55word!x").id for u in HOSTILE}
    return box, config, ids


def test_hostile_users_are_isolated_and_the_run_goes_on(hostile):
    box, config, ids = hostile
    report = run_job(config)
    assert not report.failure
    errors = {e.webitel_id: e for e in report.errors}
    assert errors[ids["long.name"]].kind == "unsearchable_user" and errors[ids["long.name"]].field == "name"
    records = {r["WebitelId"]: r for r in box.creatio_app.rows("WebitelUser")}
    assert str(ids["long.name"]) not in records
    for username in ("letters.ext", "x') or true or ('", "nul.newline", "emoji.rtl"):
        assert str(ids[username]) in records, username
    assert records[str(ids["nul.newline"])]["Name"] == "Nul New Line"
    assert records[str(ids["emoji.rtl"])]["Name"] == "שלום 🎧 مرحبا"
    warned = {(w.kind, w.webitel_id) for w in report.plan.warnings}
    assert ("odd_extension", ids["letters.ext"]) in warned
    # Everyone else was imported as usual, and a re-run has nothing left to write.
    assert len(records) >= 40
    again = run_job(config)
    assert [a.kind for a in again.plan.actions] == []
