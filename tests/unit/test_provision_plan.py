"""Creatio -> Webitel planning, tested directly."""

import pytest

from jobs.plan import UserPlanOptions, plan_users
from jobs.read.snapshots import UsersSnapshot
from jobs.plan.provision import ProvisionOptions, merge_field
from planfakes import C, Rec, U


@pytest.mark.parametrize("webitel, creatio, base, owner, value, to_webitel, to_creatio, lost", [
    ("a", "a", "x", "webitel", "a", False, False, None),       # agree
    ("b", "a", "a", "webitel", "b", False, True, None),        # Webitel changed
    ("a", "b", "a", "webitel", "b", True, False, None),        # Creatio changed
    ("b", "c", "a", "webitel", "b", False, True, "c"),         # both: owner Webitel
    ("b", "c", "a", "creatio", "c", True, False, "b"),         # both: owner Creatio
    ("b", "c", None, "webitel", "b", False, True, None),       # no baseline: the owner's value
    ("b", "c", None, "creatio", "c", True, False, None),
])
def test_merge_field(webitel, creatio, base, owner, value, to_webitel, to_creatio, lost):
    merged = merge_field(webitel, creatio, base, owner)
    assert (merged.value, merged.to_webitel, merged.to_creatio, merged.lost) == (
        value,
        to_webitel,
        to_creatio,
        lost,
    )


ON = UserPlanOptions(account_name="acc", provisioning=ProvisionOptions(enabled=True))


def test_unlinked_record_is_provisioned_with_contact_name_and_email():
    record = Rec("r1", name="", username="new.one", extension="900", contact_id="c1")
    snap = UsersSnapshot(
        domain="d", records=(record,), record_contacts={"c1": C("c1", " New  One ", "n@x.io")}
    )
    plan = plan_users(snap, ON)
    (create,) = [a for a in plan.actions if a.kind == "create_webitel_user"]
    assert create.new == {"username": "new.one", "name": "New One", "email": "n@x.io", "extension": "900"}


def test_username_from_the_creatio_user_login_and_refusals():
    records = (
        Rec("r1", sys_admin_unit_id="s1", extension="901"),
        Rec("r2", username="x", extension=""),
        Rec("r3", username="y", extension="100"),
        Rec("r4"),
    )
    snap = UsersSnapshot(
        domain="d",
        users=(U(1, "taken", extension="100"),),
        records=records,
        sys_logins={"s1": "Login.From.Creatio"},
    )
    plan = plan_users(snap, ON)
    assert [a.new["username"] for a in plan.actions if a.kind == "create_webitel_user"] == [
        "Login.From.Creatio"
    ]
    kinds = sorted(c.kind for c in plan.conflicts)
    assert kinds == ["duplicate_extension", "duplicate_extension", "missing_extension", "missing_username"]


def test_record_deleted_in_creatio_deletes_the_webitel_user_not_reimports():
    snap = UsersSnapshot(
        domain="d",
        users=(U(1, "a", extension="1"), U(2, "b", extension="2")),
        records=(Rec("r2", name="b", username="b", webitel_id="2", extension="2", contact_id="c2"),),
        contacts=(C("c2", "b"),),
        links={"1": "r1-gone", "2": "r2"},
        baselines={"2": {"name": "b", "extension": "2"}},
    )
    options = UserPlanOptions(
        account_name="acc",
        max_deactivation_share=1.0,
        provisioning=ProvisionOptions(enabled=True, on_delete="permanent"),
        sync_extension_communication=False,
    )
    plan = plan_users(snap, options)
    assert [(a.kind, a.webitel_id, a.new) for a in plan.actions] == [
        ("delete_webitel_user", 1, {"permanent": True})
    ]
    keep = plan_users(
        snap,
        UserPlanOptions(
            account_name="acc",
            provisioning=ProvisionOptions(enabled=True, on_delete="keep"),
            sync_extension_communication=False,
        ),
    )
    kinds = [a.kind for a in keep.actions]
    assert "create_record" in kinds and "delete_webitel_user" not in kinds  # kept in Webitel: imported again


def test_creatio_edit_goes_to_webitel_and_baseline_waits_for_it():
    record = Rec("r1", name="Ann Lee", username="ann", webitel_id="1", extension="555", contact_id="c1")
    snap = UsersSnapshot(
        domain="d",
        users=(U(1, "ann", "Ann Lee", extension="100"),),
        records=(record,),
        contacts=(C("c1", "x"),),
        links={"1": "r1"},
        baselines={"1": {"name": "Ann Lee", "extension": "100"}},
    )
    plan = plan_users(
        snap,
        UserPlanOptions(
            account_name="acc",
            provisioning=ProvisionOptions(enabled=True),
            sync_extension_communication=False,
        ),
    )
    (action,) = plan.actions
    assert action.kind == "update_webitel_user" and action.new == {"extension": "555"} and action.id == "r1"
    assert action.link_extra == {"name": "Ann Lee", "extension": "555"}


def test_a_creatio_edited_extension_is_checked_for_uniqueness_too():
    records = (
        Rec("r1", name="Ann", username="ann", webitel_id="1", extension="200", contact_id="c1"),
        Rec("r2", name="Bob", username="bob", webitel_id="2", extension="300", contact_id="c2"),
    )
    users = (U(1, "ann", "Ann", extension="100"), U(2, "bob", "Bob", extension="200"))
    snap = UsersSnapshot(
        domain="d",
        users=users,
        records=records,
        contacts=(C("c1", "x"), C("c2", "y")),
        links={"1": "r1", "2": "r2"},
        baselines={"1": {"name": "Ann", "extension": "100"}, "2": {"name": "Bob", "extension": "300"}},
    )
    # ann's record was edited to 200 in Creatio, while bob got 200 in Webitel: both may not have it.
    plan = plan_users(
        snap,
        UserPlanOptions(
            account_name="acc",
            provisioning=ProvisionOptions(enabled=True),
            sync_extension_communication=False,
        ),
    )
    # bob holds it in Webitel, which keeps extensions unique (ann's write would be refused there):
    # bob keeps it, ann's edit is the conflict.
    (conflict,) = [c for c in plan.conflicts if c.kind == "duplicate_extension"]
    assert conflict.webitel_id == 1 and conflict.others == ("bob (id 2)",)
