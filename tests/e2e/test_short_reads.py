"""A Creatio that answers fewer rows than asked, without a nextLink, must not look like deletions.

A site whose row limit is below ``page_size`` (or a user whose read rights hide rows) answers a
full ``$top`` request with a short page. Before the fix the read ended there, the rows not read
were taken for deleted records, and provisioning deleted their Webitel users.
"""

from __future__ import annotations

import pytest

from e2ekit import run_job

pytestmark = pytest.mark.e2e

DELETING = {"delete_webitel_user", "deactivate_webitel_user", "deactivate_record", "delete_record"}


def users_run(config):
    return run_job(config, "users")


def test_a_site_capped_below_the_page_size_deletes_nothing_and_duplicates_nothing(make_sandbox, make_config):
    box = make_sandbox(1050, seed=5, creatio_options={"max_page_rows": 1000})
    config = make_config(box, provisioning={"enabled": True}, sync={"max_deactivation_share": 1.0,
                                                                   "max_deactivations": 5000})
    first = users_run(config)
    assert not first.failure
    records = box.creatio_app.rows("WebitelUser")
    assert len(records) > 1000  # the table is larger than one capped page
    contacts = len(box.creatio_app.rows("Contact"))
    communications = len(box.creatio_app.rows("ContactCommunication"))
    webitel_users = len(box.webitel_app.all_users())
    for full in (False, True):  # run, and run --full
        again = run_job(config, "users", full=full)
        assert not again.failure
        kinds = [a.kind for a in again.plan.actions]
        assert not DELETING & set(kinds), kinds
        assert not [k for k in kinds if k.startswith("create")], kinds
    assert len(box.webitel_app.all_users()) == webitel_users
    assert len(box.creatio_app.rows("WebitelUser")) == len(records)
    assert len(box.creatio_app.rows("Contact")) == contacts
    assert len(box.creatio_app.rows("ContactCommunication")) == communications
