"""The users plan, tested directly: no servers, no I/O."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.plan import UserPlanOptions, plan_users
from jobs.read.snapshots import UsersSnapshot
from mappings import keys
from planfakes import A, C, Comm, Rec, S, U, apply_in_memory

DOMAIN = "corp.example"
OPTS = UserPlanOptions(account_name="Contact center")


def kinds(plan):
    return sorted(a.kind for a in plan.actions)


def snap(**kw):
    return UsersSnapshot(domain=DOMAIN, **kw)


def test_fresh_import_matches_in_design_order_and_creates_the_rest():
    users = (U(1, "ann", "Ann Lee", extension="1001"), U(2, "bob", "Robert Brown", extension="1002"),
             U(3, "cy", "Cy Twombly", extension="1003"), U(4, "dee", "Dee O'Neil", "dee@x.io", "1004"))
    contacts = (C("c-ann", "ANN"), C("c-rob", "Robert  Brown "), C("c-cy", "Someone Else"))
    sys_users = (S("s-cy", "Cy", contact_id="c-cy"),)
    plan = plan_users(snap(users=users, contacts=contacts, sys_users=sys_users), OPTS)
    assert not plan.conflicts and not plan.errors
    records = {a.webitel_id: a for a in plan.actions if a.kind == "create_record"}
    assert records[1].new["contact_id"] == "c-ann"            # contact named like the username
    assert records[2].new["contact_id"] == "c-rob"            # then like the display name
    assert records[3].new["contact_id"] == "c-cy"             # system user login first
    assert records[3].new["sys_admin_unit_id"] == "s-cy"
    dee_contact = keys.contact_id(DOMAIN, 4)
    assert records[4].new == {"name": "Dee O'Neil", "username": "dee", "webitel_id": "4", "extension": "1004",
                              "contact_id": dee_contact, "sys_admin_unit_id": None, "active": True}
    (create_contact,) = [a for a in plan.actions if a.kind == "create_contact"]
    account = keys.account_id("Contact center")
    assert create_contact.new == {
        "Id": dee_contact,
        "Name": "Dee O'Neil",
        "Email": "dee@x.io",
        "AccountId": account,
    }
    assert plan.actions[0].kind == "create_account" and plan.actions[0].id == account
    assert records[1].id == keys.user_record_id(DOMAIN, 1)
    assert kinds(plan).count("create_extension_comm") == 4


def test_existing_account_is_reused_by_normalised_name():
    plan = plan_users(snap(users=(U(1, "ann"),), accounts=(A("acc-1", " contact   CENTER"),)), OPTS)
    (contact,) = [a for a in plan.actions if a.kind == "create_contact"]
    assert contact.new["AccountId"] == "acc-1" and "create_account" not in kinds(plan)


def test_ambiguous_contacts_are_a_conflict_and_nothing_is_written():
    plan = plan_users(
        snap(users=(U(1, "ann", extension="1"),), contacts=(C("a", "Ann"), C("b", "ann "))), OPTS
    )
    assert plan.actions == ()
    (conflict,) = plan.conflicts
    assert conflict.kind == "ambiguous_match" and conflict.webitel_id == 1 and len(conflict.others) == 2
    assert conflict.as_dict()["username"] == "ann"


def test_ambiguous_at_username_step_is_not_resolved_by_display_name():
    contacts = (C("a", "ann"), C("b", "ANN"), C("c", "Ann Lee"))
    plan = plan_users(snap(users=(U(1, "ann", "Ann Lee"),), contacts=contacts), OPTS)
    assert [c.kind for c in plan.conflicts] == ["ambiguous_match"] and plan.actions == ()


def test_unicode_and_whitespace_normalisation():
    contacts = (C("c1", "Łukasz  Żółć"), C("c2", "ＤＡＲＣＹ"))  # full-width letters fold under NFKC
    users = (U(1, "lz", " łukasz żółć "), U(2, "darcy"))
    plan = plan_users(snap(users=users, contacts=contacts), OPTS)
    got = {a.webitel_id: a.new["contact_id"] for a in plan.actions if a.kind == "create_record"}
    assert got == {1: "c1", 2: "c2"}


def test_duplicate_extension_with_a_creatio_only_record():
    records = (Rec("r-x", name="Creatio person", username="cp", extension="1001", contact_id="c-x"),)
    plan = plan_users(
        snap(users=(U(1, "ann", extension="1001"), U(2, "bob", extension="1002")), records=records), OPTS
    )
    (conflict,) = plan.conflicts
    assert conflict.kind == "duplicate_extension" and conflict.user == "ann (id 1)"
    assert conflict.others == ("Creatio record 'cp' (r-x)",)
    assert {a.webitel_id for a in plan.actions if a.kind == "create_record"} == {2}


def test_first_holder_keeps_extension_then_lowest_webitel_id():
    records = (Rec("r2", username="b", webitel_id="2", extension="500", contact_id="c2"),)
    users = (
        U(1, "a", extension="500"),
        U(2, "b", extension="500"),
        U(3, "c", extension="600"),
        U(4, "d", extension="600"),
    )
    plan = plan_users(snap(users=users, records=records, contacts=(C("c2", "b"),)), OPTS)
    losers = sorted((c.webitel_id, c.others) for c in plan.conflicts)
    assert losers == [(1, ("b (id 2)",)), (4, ("c (id 3)",))]


def test_extension_swap_between_two_linked_users_is_allowed():
    records = (
        Rec("r1", name="a", username="a", webitel_id="1", extension="100", contact_id="c1"),
        Rec("r2", name="b", username="b", webitel_id="2", extension="101", contact_id="c2"),
    )
    users = (U(1, "a", extension="101"), U(2, "b", extension="100"))
    plan = plan_users(
        snap(users=users, records=records, contacts=(C("c1", "a"), C("c2", "b"))),
        replace(OPTS, sync_extension_communication=False),
    )
    assert not plan.conflicts
    assert sorted((a.id, a.new["extension"]) for a in plan.actions) == [("r1", "101"), ("r2", "100")]


def test_loser_keeps_its_old_extension_which_cascades():
    records = (
        Rec("r1", username="a", webitel_id="1", extension="100", contact_id="c1"),
        Rec("rx", username="x", extension="101", contact_id="cx"),
    )  # Creatio-only holder of 101
    users = (U(1, "a", extension="101"), U(2, "b", extension="100"))
    plan = plan_users(snap(users=users, records=records, contacts=(C("c1", "a"),)), OPTS)
    # a loses 101 to the Creatio record, keeps 100, so b cannot have 100 either.
    assert sorted((c.webitel_id, c.kind) for c in plan.conflicts) == [
        (1, "duplicate_extension"),
        (2, "duplicate_extension"),
    ]


def test_user_without_extension_is_imported_with_a_warning():
    plan = plan_users(snap(users=(U(1, "ann"),)), OPTS)
    assert [w.kind for w in plan.warnings] == ["no_extension"]
    (record,) = [a for a in plan.actions if a.kind == "create_record"]
    assert record.new["extension"] == ""
    assert "create_extension_comm" not in kinds(plan)


def test_blank_username_is_an_error_naming_the_user_and_others_go_on():
    plan = plan_users(snap(users=(U(1, "  "), U(2, "bob"))), OPTS)
    (error,) = plan.errors
    assert error.kind == "invalid_user" and error.webitel_id == 1 and error.field == "username"
    assert [a.webitel_id for a in plan.actions if a.kind == "create_record"] == [2]


def test_linked_record_is_updated_field_by_field():
    records = (Rec("r1", name="Old Name", username="ann", webitel_id="1", extension="1", contact_id="c1"),)
    comms = (Comm("m1", "c1", "1"),)
    plan = plan_users(
        snap(
            users=(U(1, "ann", "New Name", extension="2"),),
            records=records,
            contacts=(C("c1", "whatever"),),
            communications=comms,
        ),
        OPTS,
    )
    update = [a for a in plan.actions if a.kind == "update_record"][0]
    assert update.old == {"name": "Old Name", "extension": "1"} and update.new == {
        "name": "New Name",
        "extension": "2",
    }
    comm = [a for a in plan.actions if a.kind == "update_extension_comm"][0]
    assert comm.id == "m1" and comm.old == {"number": "1"} and comm.new == {"number": "2"}


def test_unlinked_creatio_record_with_same_username_is_adopted_not_duplicated():
    records = (Rec("r-admin", name="Ann", username="ANN", extension="1001", contact_id="c1"),)
    plan = plan_users(
        snap(users=(U(1, "ann", "Ann", extension="1001"),), records=records, contacts=(C("c1", "Ann"),)), OPTS
    )
    assert [(a.kind, a.id) for a in plan.actions if a.object == "WebitelUser"] == [
        ("update_record", "r-admin")
    ]
    assert not plan.conflicts


def test_our_own_contact_is_found_after_a_crash_even_if_names_collide():
    own = keys.contact_id(DOMAIN, 2)
    contacts = (C(own, "John Smith"),)
    users = (U(1, "js1", "John Smith"), U(2, "js2", "John Smith"))
    plan = plan_users(snap(users=users, contacts=contacts), OPTS)
    records = {a.webitel_id: a.new["contact_id"] for a in plan.actions if a.kind == "create_record"}
    assert records == {1: keys.contact_id(DOMAIN, 1), 2: own}
    assert not plan.conflicts


def test_vanished_users_are_deactivated_under_the_cap():
    records = tuple(
        Rec(f"r{i}", username=f"u{i}", webitel_id=str(i), contact_id=f"c{i}") for i in range(1, 21)
    )
    users = tuple(U(i, f"u{i}") for i in range(1, 20))  # u20 vanished
    snapshot = snap(users=users, records=records, contacts=tuple(C(f"c{i}", f"u{i}") for i in range(1, 21)))
    plan = plan_users(snapshot, replace(OPTS, sync_extension_communication=False))
    assert [(a.kind, a.id, a.new) for a in plan.actions if a.kind == "deactivate_record"] == [
        ("deactivate_record", "r20", {"active": False})
    ]
    assert plan.guard is None


def test_deactivation_cap_deactivates_nothing_and_reports():
    records = tuple(Rec(f"r{i}", username=f"u{i}", webitel_id=str(i)) for i in range(1, 11))
    plan = plan_users(snap(users=(U(1, "u1"),), records=records), OPTS)  # 9 of 10 vanished
    assert plan.guard is not None and plan.guard.kind == "deactivation_cap"
    assert "deactivate_record" not in kinds(plan)
    assert any(c.kind == "deactivation_cap" for c in plan.conflicts)


def test_on_missing_delete_and_keep():
    records = (Rec("r1", username="a", webitel_id="1"), Rec("r2", username="b", webitel_id="2"))
    base = replace(OPTS, max_deactivation_share=1.0)
    assert "delete_record" in kinds(
        plan_users(snap(users=(U(1, "a"),), records=records), replace(base, on_missing="delete"))
    )
    kept = plan_users(snap(users=(U(1, "a"),), records=records), replace(base, on_missing="keep"))
    assert not {"delete_record", "deactivate_record"} & set(kinds(kept))


def test_replan_after_apply_is_empty():
    users = (U(1, "ann", "Ann", extension="1"), U(2, "bob", "Bob", extension="2"), U(3, "cy", "Cy"))
    first = snap(users=users, contacts=(C("c1", "ann"),), records=(Rec("rx", username="x", extension="2"),))
    plan = plan_users(first, OPTS)
    second = plan_users(apply_in_memory(first, plan), OPTS)
    assert second.actions == ()
    assert [c.kind for c in second.conflicts] == ["duplicate_extension"]


names = st.sampled_from(["ann", "Ann", "bob", "O'Brien", "Łukasz", "  cy ", "dee", "Ēva", "ann lee"])
user_st = st.builds(
    lambda i, n, d, e: U(i, n, d, extension=e),
    st.integers(1, 40),
    names,
    names,
    st.sampled_from(["", "100", "101", "102", "103"]),
)


@settings(max_examples=150, deadline=None)
@given(
    users=st.lists(user_st, max_size=12, unique_by=lambda u: u.id),
    contact_names=st.lists(names, max_size=6),
    creatio_exts=st.lists(st.sampled_from(["100", "101", "104"]), max_size=3, unique=True),
)
def test_property_plan_apply_plan_is_empty_and_extensions_unique(users, contact_names, creatio_exts):
    contacts = tuple(C(f"c{i}", n) for i, n in enumerate(contact_names))
    records = tuple(Rec(f"rx{i}", username=f"creatio{i}", extension=e) for i, e in enumerate(creatio_exts))
    first = snap(users=tuple(users), contacts=contacts, records=records)
    plan = plan_users(first, OPTS)
    after = apply_in_memory(first, plan)
    assert plan_users(after, OPTS).actions == ()
    exts = [r.extension for r in after.records if r.active and r.extension]
    assert len(exts) == len(set(exts))
