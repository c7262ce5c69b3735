"""The licence plan and the three-way merge, tested directly, with hypothesis properties."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.creatio.records import GrantRecord, LicenseRecord
from connector.webitel.models import License
from jobs.plan.grants import merge_grants, next_baseline
from jobs.plan.licenses import LicensePlanOptions, plan_licenses
from jobs.read.snapshots import LicenseSnapshot
from mappings import keys

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
DOMAIN = "corp"


# The real record classes of the boundary: a Webitel licence, Creatio's licence record and grant row.
def Lic(serial: str, *, product: str = "CHAT", name: str = "", valid_from=NOW - timedelta(days=100),
        valid_till=NOW + timedelta(days=100), limit: int = 100, remain: int = 100,
        concurrent: bool = False) -> License:
    return License(serial=serial, product=product, name=name, valid_from=valid_from, valid_till=valid_till,
                   limit=limit, remain=remain, concurrent=concurrent)


LicRec = LicenseRecord
Row = GrantRecord


USERS = ["1", "2", "3", "4"]
SERIALS = ["a", "b", "c"]
grant_st = st.tuples(st.sampled_from(USERS), st.sampled_from(SERIALS))
sets = st.frozensets(grant_st, max_size=12)


def test_merge_table():
    w, c, b = (
        {("1", "a"), ("1", "b"), ("2", "a")},
        {("1", "a"), ("3", "c"), ("2", "b")},
        {("1", "b"), ("2", "b"), ("4", "a")},
    )
    m = merge_grants(frozenset(w), frozenset(c), frozenset(b))
    assert m.add_creatio == {("2", "a")}  # added in Webitel
    assert m.revoke_webitel == {("1", "b")}  # removed in Creatio
    assert m.grant_webitel == {("3", "c")}  # added in Creatio
    assert m.remove_creatio == {("2", "b")}  # removed in Webitel
    w_after = (w | {("3", "c")}) - {("1", "b")}
    c_after = (c | {("2", "a")}) - {("2", "b")}
    assert w_after == c_after
    assert next_baseline(frozenset(w_after), frozenset(c_after), frozenset(b)) == {
        ("1", "a"),
        ("2", "a"),
        ("3", "c"),
    }


def test_first_run_winner():
    w, c = frozenset({("1", "a")}), frozenset({("2", "b")})
    webitel_wins = merge_grants(w, c, None)
    assert (
        webitel_wins.add_creatio == w and webitel_wins.remove_creatio == c and not webitel_wins.grant_webitel
    )
    creatio_wins = merge_grants(w, c, None, first_run_winner="creatio")
    assert (
        creatio_wins.grant_webitel == c and creatio_wins.revoke_webitel == w and not creatio_wins.add_creatio
    )


@settings(max_examples=300, deadline=None)
@given(w=sets, c=sets, b=st.one_of(st.none(), sets), winner=st.sampled_from(["webitel", "creatio"]))
def test_property_merge_converges_is_idempotent_and_keeps_one_sided_additions(w, c, b, winner):
    m = merge_grants(w, c, b, first_run_winner=winner)
    w2 = (w | m.grant_webitel) - m.revoke_webitel
    c2 = (c | m.add_creatio) - m.remove_creatio
    assert w2 == c2  # converges
    b2 = next_baseline(w2, c2, b)
    again = merge_grants(w2, c2, b2)
    assert not (
        again.add_creatio | again.remove_creatio | again.grant_webitel | again.revoke_webitel
    )  # idempotent
    if b is not None:
        for g in (w - c - b) | (c - w - b):  # added on one side, untouched on the other
            assert g in w2 and g in c2


def snapshot(w, c, b, licenses):
    records = tuple(LicRec(keys.license_record_id(DOMAIN, l.serial), l.serial) for l in licenses)
    lic_id = {r.serial: r.id for r in records}
    rows = tuple(Row(f"row-{u}-{s}", f"rec-{u}", lic_id[s]) for u, s in sorted(c))
    grants = {u: frozenset(s for uu, s in w if uu == u) for u in USERS}
    return LicenseSnapshot(
        domain=DOMAIN,
        now=NOW,
        licenses=tuple(licenses),
        webitel_grants=grants,
        usernames={u: f"user{u}" for u in USERS},
        license_records=records,
        user_record_ids={u: f"rec-{u}" for u in USERS},
        grant_rows=rows,
        baseline=b,
    )


def apply(snap, plan):
    w = {(u, s) for u, ss in snap.webitel_grants.items() for s in ss}
    rows = {r.id: r for r in snap.grant_rows}
    serial_of = {r.id: r.serial for r in snap.license_records}
    for a in plan.actions:
        if a.kind == "grant_webitel":
            w.add((str(a.webitel_id), a.new["license"]))
        elif a.kind == "revoke_webitel":
            w.discard((str(a.webitel_id), a.old["license"]))
        elif a.kind == "create_grant_row":
            rows[a.id] = Row(a.id, a.new["user_id"], a.new["license_id"])
        elif a.kind == "delete_grant_row":
            rows.pop(a.id)
    c = {(r.user_id.removeprefix("rec-"), serial_of[r.license_id]) for r in rows.values()}
    return frozenset(w), frozenset(c), tuple(rows.values())


OPTS = LicensePlanOptions(max_revocations=1000, max_revocation_share=1.0)
LICS = [Lic("a"), Lic("b", limit=2, remain=1), Lic("c", valid_till=NOW - timedelta(days=1))]


@settings(max_examples=200, deadline=None)
@given(w=sets, c=sets, b=st.one_of(st.none(), sets))
def test_property_plan_converges_minus_refusals_and_second_run_plans_nothing(w, c, b):
    snap = snapshot(w, c, b, LICS)
    plan, grant_sets = plan_licenses(snap, OPTS)
    w2, c2, rows = apply(snap, plan)
    refused_users = {(str(i.webitel_id), i.message) for i in plan.conflicts}
    assert w2 <= c2  # everything Webitel has, Creatio shows
    for u, s in c2 - w2:  # what only Creatio has was refused, and said so
        assert any(u == ru for ru, _ in refused_users) or any(
            i.kind == "license_limit_reached" and f"(id {u})" in " ".join(i.others) for i in plan.conflicts
        )
    b2 = next_baseline(w2, c2, grant_sets.baseline)
    grants = {u: frozenset(s for uu, s in w2 if uu == u) for u in USERS}

    def held(grants_, serial):
        return sum(1 for _, s in grants_ if s == serial)

    # Seats move with the grants made in the run; the rest of the licence's use is outside the test.
    licenses = tuple(l.model_copy(update={"remain": l.remain - (held(w2, l.serial) - held(w, l.serial))})
                     for l in LICS)
    snap2 = replace(snap, webitel_grants=grants, grant_rows=rows, baseline=b2, licenses=licenses)
    plan2, _ = plan_licenses(snap2, OPTS)
    assert [a for a in plan2.actions if a.kind != "update_license"] == []


def test_limit_reached_gives_seats_to_lowest_ids_and_names_the_rest():
    snap = snapshot(
        frozenset(),
        frozenset({("3", "b"), ("1", "b"), ("2", "b")}),
        frozenset(),
        [Lic("b", limit=5, remain=1)],
    )
    plan, _ = plan_licenses(snap, OPTS)
    assert [(a.kind, a.webitel_id) for a in plan.actions if a.kind == "grant_webitel"] == [
        ("grant_webitel", 1)
    ]
    (conflict,) = plan.conflicts
    assert conflict.kind == "license_limit_reached" and conflict.others == ("user2 (id 2)", "user3 (id 3)")


def test_revocations_free_seats_first_and_cap_holds_back_every_revocation():
    snap = snapshot(
        frozenset({("1", "b")}),
        frozenset({("2", "b")}),
        frozenset({("1", "b")}),
        [Lic("b", limit=1, remain=0)],
    )
    plan, _ = plan_licenses(snap, OPTS)
    kinds = [a.kind for a in plan.actions if a.kind.endswith("webitel")]
    assert kinds == ["revoke_webitel", "grant_webitel"] and not plan.conflicts
    capped, _ = plan_licenses(snap, LicensePlanOptions(max_revocations=0))
    assert capped.guard is not None and capped.guard.kind == "revocation_cap"
    assert not [a for a in capped.actions if a.kind in ("revoke_webitel", "delete_grant_row")]


def test_catalog_create_update_and_unchanged():
    lic = Lic("a", name="Chat", limit=10, remain=4)
    plan, _ = plan_licenses(
        snapshot(frozenset(), frozenset(), None, [lic]).__class__(domain=DOMAIN, now=NOW, licenses=(lic,)),
        OPTS,
    )
    (create,) = plan.actions
    assert (
        create.kind == "create_license"
        and create.new["used"] == 6
        and create.id == keys.license_record_id(DOMAIN, "a")
    )
    record = LicRec(create.id, "a", "CHAT", "Chat", lic.valid_from, lic.valid_till, 10, 6, False)
    same, _ = plan_licenses(
        LicenseSnapshot(domain=DOMAIN, now=NOW, licenses=(lic,), license_records=(record,)), OPTS
    )
    assert same.actions == ()
    renewed = lic.model_copy(update={"valid_till": lic.valid_till + timedelta(days=365)})
    upd, _ = plan_licenses(
        LicenseSnapshot(domain=DOMAIN, now=NOW, licenses=(renewed,), license_records=(record,)), OPTS
    )
    (update,) = upd.actions
    assert update.kind == "update_license" and set(update.new) == {"valid_till"}


def test_a_licence_whose_values_cannot_be_true_is_reported_not_mirrored():
    inverted = Lic("inv", valid_from=NOW + timedelta(days=30), valid_till=NOW - timedelta(days=30))
    negative = Lic("neg", limit=-5, remain=-5)
    plan, _ = plan_licenses(
        LicenseSnapshot(domain="d", now=NOW, licenses=(inverted, negative, Lic("ok"))), LicensePlanOptions()
    )
    assert sorted((e.kind, e.field) for e in plan.errors) == [
        ("invalid_license", "limit"),
        ("invalid_license", "valid_from"),
    ]
    assert [a.key for a in plan.actions if a.kind == "create_license"] == ["license:ok"]
