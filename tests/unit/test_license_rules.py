"""The licence refusal rules shared by the plan and ``license assign`` (``mappings.licenses``)."""

from datetime import datetime, timezone

import pytest

from connector.webitel.models import License
from mappings.licenses import catalog_values, grant_refusal



def lic(**kw):
    raw = {"id": "S1", "product": "CHAT", "not_before": "1767225600000", "not_after": "1798761600000",
           "limit": 10, "remain": 4, "competitive": False}
    return License.model_validate({**raw, **kw})


@pytest.mark.parametrize("when, kw, kind", [
    (datetime(2027, 1, 2, tzinfo=timezone.utc), {}, "license_expired"),
    (datetime(2025, 1, 2, tzinfo=timezone.utc), {}, "license_not_yet_valid"),
    (datetime(2025, 12, 31, 23, 59, tzinfo=timezone.utc), {}, "license_not_yet_valid"),
    (datetime(2026, 7, 1, tzinfo=timezone.utc), {"remain": 0}, "license_limit_reached"),
    (datetime(2026, 7, 1, tzinfo=timezone.utc), {"remain": 0, "competitive": True}, None),
    (datetime(2026, 7, 1, tzinfo=timezone.utc), {}, None),
])
def test_grant_refusal(when, kw, kind):
    refusal = grant_refusal(lic(**kw), when)
    assert (refusal.kind if refusal else None) == kind


def test_seats_counted_by_the_caller_win_over_remain():
    when = datetime(2026, 7, 1, tzinfo=timezone.utc)
    assert grant_refusal(lic(remain=0), when, seats_left=1) is None
    assert grant_refusal(lic(remain=3), when, seats_left=0).reason == "all 10 seats are taken"


def test_catalog_values_carry_the_planned_used_count():
    assert catalog_values(lic())["used"] == 6
    assert catalog_values(lic(), used=7) == {**catalog_values(lic()), "used": 7}
    assert catalog_values(lic())["serial"] == "s1"
