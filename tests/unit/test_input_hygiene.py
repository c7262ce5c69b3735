"""Hostile values in records: full-width extensions, odd extensions, control characters. Pure."""

import pytest

from jobs.plan import UserPlanOptions, plan_users
from jobs.read.snapshots import UsersSnapshot
from mappings.keys import extension_key, extension_problem, tidy
from planfakes import C, Rec, U

OPTS = UserPlanOptions(account_name="Contact center")


def snap(**kw):
    return UsersSnapshot(domain="corp.example", **kw)


@pytest.mark.parametrize("a, b", [("０１２３", "0123"), (" 12 34 ", "1234"), ("1001", "1001")])
def test_extensions_that_are_the_same(a, b):
    assert extension_key(a) == extension_key(b)


@pytest.mark.parametrize("extension, problem", [
    ("1001", None), ("０１２３", None), ("", None), ("7", "1 digits"), ("1" * 200, "200 digits"),
    ("+1", "other than digits"), ("12a4", "other than digits"), ("١٢٣", "other than digits"),
])
def test_extension_problem(extension, problem):
    found = extension_problem(extension)
    assert (found is None) if problem is None else (problem in found)


def test_control_characters_are_never_written():
    assert tidy("Ann\x00 Lee\x07") == "Ann Lee" and tidy("a\tb\nc") == "a b c"
    plan = plan_users(snap(users=(U(1, "ann\x00", "Ann\x00 Lee", "a@x.io\x00", "10\x0001"),)), OPTS)
    written = [str(v) for a in plan.actions for v in (a.new or {}).values()]
    assert written and not any("\x00" in v for v in written)


def test_a_full_width_extension_clashes_with_its_ascii_twin():
    users = (U(1, "ann", extension="０１２３"),)
    records = (Rec("r-x", name="Creatio-only", extension="0123", contact_id="c-x"),)
    plan = plan_users(snap(users=users, records=records, contacts=(C("c-x", "X"),)), OPTS)
    assert [c.kind for c in plan.conflicts] == ["duplicate_extension"]
    assert not [a for a in plan.actions if a.kind == "create_record"]


def test_odd_extensions_are_imported_with_a_warning():
    plan = plan_users(snap(users=(U(1, "ann", extension="+1"), U(2, "bob", extension="1002"))), OPTS)
    assert [(w.kind, w.webitel_id) for w in plan.warnings if w.kind == "odd_extension"] == [
        ("odd_extension", 1)
    ]
    assert len([a for a in plan.actions if a.kind == "create_record"]) == 2
