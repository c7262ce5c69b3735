"""Reading both sides for the licences job: whole-table reads in the largest pages allowed.

Webitel: the licence registry, and every user's grants (``fields=id,username,license``). Creatio:
the licence records, the Webitel-user records (to map record Ids to Webitel ids), and every "User
Licenses" row. These tables are all about telephony users, so they are read whole.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Callable

from connector.creatio.records import GrantRecord, LicenseRecord, WebitelUserRecord
from connector.errors import RecordError
from connector.webitel import WebitelUser
from mappings.profiles import ObjectModel

from .plan import Issue
from .plan.licenses import LicenseSnapshot

GRANT_FIELDS = ("id", "username", "license")


def read_license_snapshot(webitel, creatio, model: ObjectModel, *, domain: str, links: dict[str, str],
                          baseline, now: datetime,
                          progress: Callable[[str], None] = lambda _: None) -> tuple[LicenseSnapshot, dict[str, int]]:
    """Everything the licences plan needs, and the fewest requests each read could take."""
    progress("reading the Webitel licence registry")
    licenses = tuple(webitel.iter_licenses())
    progress("reading Webitel users' licences")
    grants: dict[str, frozenset[str]] = {}
    usernames: dict[str, str] = {}
    for user in webitel.iter_users(fields=GRANT_FIELDS):
        if isinstance(user, WebitelUser):
            grants[str(user.id)] = frozenset(s.lower() for s in user.serials)
            usernames[str(user.id)] = user.username
    progress("reading Creatio licences and grants")
    invalid: list[Issue] = []
    license_records = tuple(_records(creatio, LicenseRecord, model, invalid))
    user_records = _records(creatio, WebitelUserRecord, model, invalid)
    record_ids = {r.webitel_id: r.id for r in user_records if r.webitel_id}
    known = {r.id for r in user_records}
    for wid, rid in links.items():  # profiles without a WebitelId column rely on the state links
        if rid in known:
            record_ids.setdefault(wid, rid)
    grant_rows = tuple(_records(creatio, GrantRecord, model, invalid))
    page_w, page_c = webitel.settings.page_size, creatio.settings.page_size
    floor = {"webitel licences": max(1, math.ceil(len(licenses) / page_w)),
             "webitel users": max(1, math.ceil(len(grants) / page_w)),
             "creatio licences": max(1, math.ceil(len(license_records) / page_c)),
             "creatio users": max(1, math.ceil(len(user_records) / page_c)),
             "creatio grants": max(1, math.ceil(len(grant_rows) / page_c))}
    snapshot = LicenseSnapshot(domain=domain, now=now, licenses=licenses, webitel_grants=grants, usernames=usernames,
                               license_records=license_records, user_record_ids=record_ids, grant_rows=grant_rows,
                               baseline=baseline, invalid=tuple(invalid))
    return snapshot, floor


def _records(creatio, record_type, model: ObjectModel, invalid: list[Issue]) -> list:
    """Typed records of a whole table; an unreadable row is reported and left alone."""
    out = []
    for row in creatio.iter_rows(record_type.entity(model), select=record_type.columns(model)):
        try:
            out.append(record_type.from_row(row, model))
        except RecordError as exc:
            invalid.append(Issue("invalid_record", str(exc), field=exc.field))
    return out
