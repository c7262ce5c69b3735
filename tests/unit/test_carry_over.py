"""Conflicts an incremental plan could not see are carried over from the cycle before: pure."""

from __future__ import annotations

from jobs.plan import Issue, Plan
from jobs.plan.resolutions import carry_over, split_ignored

RECORD = "0c0c0c0c-0000-4000-8000-000000000001"


def plan(*conflicts: Issue) -> Plan:
    return Plan("users", (), tuple(conflicts), (), (), None)


def clash(wid: int, other: str = "bob (id 2)") -> Issue:
    return Issue("duplicate_extension", "extension 100 is held", f"u{wid} (id {wid})", wid, "extension",
                 (other,))


def test_outside_the_scope_is_carried_inside_it_the_new_plan_speaks():
    previous = [clash(1), clash(2),
                Issue("missing_username", "no username", f"Creatio record 'x' ({RECORD})")]
    fresh, carried = carry_over(plan(), previous, scope={"2"})
    assert carried == 2
    assert [c.webitel_id for c in fresh.conflicts] == [1, None]
    # The record is in scope (read again): its old conflict is not carried.
    fresh, carried = carry_over(plan(), previous, scope={f"record:{RECORD}"})
    assert [c.webitel_id for c in fresh.conflicts] == [1, 2] and carried == 2


def test_a_conflict_the_new_plan_found_again_is_not_doubled():
    fresh, carried = carry_over(plan(clash(1)), [clash(1)], scope=set())
    assert fresh.conflicts == (clash(1),) and carried == 0


def test_run_wide_conflicts_wait_for_the_full_read():
    cap = Issue("deactivation_cap", "too many")
    fresh, carried = carry_over(plan(), [cap], scope=set())
    assert fresh.conflicts == () and carried == 0


def test_an_accepted_conflict_stays_accepted_and_comes_back_when_the_acceptance_goes():
    from jobs.plan.resolutions import signature

    kept, ignored = split_ignored(plan(clash(1)), {"1": {"signature": signature([clash(1)]), "reason": "ok"}})
    assert kept.conflicts == () and "[ignored: ok]" in ignored[0].message
    # Next cycle, user 1 outside the scope: the accepted conflict is carried with its own words...
    fresh, _ = carry_over(plan(), list(ignored), scope=set())
    assert fresh.conflicts == (clash(1),)
    # ...and is accepted again while the resolution stands, open once it is withdrawn.
    again, ignored_again = split_ignored(fresh, {"1": {"signature": signature([clash(1)]), "reason": "ok"}})
    assert again.conflicts == () and len(ignored_again) == 1
    assert split_ignored(fresh, {})[0].conflicts == (clash(1),)
