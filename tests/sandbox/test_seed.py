"""The seeded data generator: determinism, uniqueness, planted cases, licence invariants."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from sandbox.creatio.schema import (
    EMPTY_GUID,
    EXTENSION_COMMUNICATION_TYPE,
    MODEL_NAMES,
    SYS_ADMIN_UNIT_USER,
    WSYSACCOUNT_ROLE_USER,
    get_model,
)
from sandbox.seed import generate
from sandbox.seed.names import name_key
from sandbox.seed.types import Credentials

NOW = 1_750_000_000_000
DAY = 86_400_000
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return generate(1000, seed=11, now_ms=NOW)


def candidates(data):
    """Reference matcher for rules 2 and 3 of the design: username -> (rule, contact ids)."""
    by_key = defaultdict(list)
    for contact in data.creatio["Contact"]:
        by_key[name_key(contact["Name"])].append(contact["Id"])
    logins = {row["Name"]: row["ContactId"] for row in data.creatio["SysAdminUnit"]
              if row["SysAdminUnitTypeValue"] == SYS_ADMIN_UNIT_USER}
    out = {}
    for user in data.webitel_users:
        if user["username"] in logins:
            out[user["username"]] = ("system_user", [logins[user["username"]]])
        elif by_key.get(name_key(user["username"])):
            out[user["username"]] = ("username", by_key[name_key(user["username"])])
        elif by_key.get(name_key(user["name"])):
            out[user["username"]] = ("display_name", by_key[name_key(user["name"])])
        else:
            out[user["username"]] = ("none", [])
    return out


def digest(data) -> str:
    payload = json.dumps([data.webitel_users, data.licenses, data.creatio, data.notes], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def test_same_arguments_give_equal_data():
    assert generate(200, seed=3, now_ms=NOW) == generate(200, seed=3, now_ms=NOW)


def test_different_seed_gives_different_data():
    assert generate(200, seed=3, now_ms=NOW).webitel_users != generate(200, seed=4, now_ms=NOW).webitel_users


def test_data_does_not_depend_on_hash_randomisation():
    code = ("import hashlib, json; from sandbox.seed import generate; "
            f"d = generate(300, seed=5, now_ms={NOW}); "
            "print(hashlib.sha256(json.dumps([d.webitel_users, d.licenses, d.creatio, d.notes], "
            "sort_keys=True).encode()).hexdigest())")
    digests = {
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(hash_seed)}).stdout.strip()
        for hash_seed in (1, 2)
    }
    assert digests == {digest(generate(300, seed=5, now_ms=NOW))}


def test_webitel_users_are_unique_and_well_formed(data):
    users = data.webitel_users
    assert len(users) == 1000
    ids = [u["id"] for u in users]
    assert ids[0] == 1001 and ids == sorted(set(ids))
    usernames = [u["username"] for u in users]
    assert len({u.casefold() for u in usernames}) == len(usernames)
    assert all(re.fullmatch(r"[a-z0-9.]+", u) for u in usernames)
    extensions = [u["extension"] for u in users if u["extension"]]
    assert len(set(extensions)) == len(extensions)
    assert all(e.isdigit() for e in extensions)
    assert all(u["deleted"] is False and isinstance(u["license"], list) for u in users)
    assert any(u["email"] == "" for u in users) and any("@" in u["email"] for u in users)


def test_display_names_cover_several_scripts_and_stray_spaces(data):
    names = [u["name"] for u in data.webitel_users]
    assert any(re.search("[а-яіїєґ]", n.lower()) for n in names)  # Cyrillic
    assert any("'" in n for n in names)  # O'Brien, D'Arcy
    assert any(c in "".join(names) for c in "łśżą")  # Polish
    assert any(c in "".join(names) for c in "äöüß")  # German
    assert any(c in "".join(names) for c in "éèñá")  # Spanish/French
    assert any(n != n.strip() for n in names)
    assert any("  " in n.strip() for n in names)


def test_users_without_extension_are_noted(data):
    missing = sorted(u["username"] for u in data.webitel_users if not u["extension"])
    assert missing == data.notes["no_extension_usernames"]
    assert 1 <= len(missing) <= 30


def test_every_user_matches_exactly_as_planted(data):
    found = candidates(data)
    notes = data.notes
    for username in notes["system_user_usernames"]:
        assert found[username][0] == "system_user"
    for username in notes["ambiguous_usernames"]:
        rule, ids = found[username]
        assert rule in ("username", "display_name") and len(ids) >= 2
    for username, contact_id in notes["linked_contacts"].items():
        assert found[username][1] == [contact_id]
    planted = set(notes["linked_contacts"]) | set(notes["ambiguous_usernames"])
    accidental = [u for u, (rule, _) in found.items() if rule != "none" and u not in planted]
    assert accidental == []


def test_match_shares_are_roughly_as_asked(data):
    found = candidates(data)
    rules = [rule for rule, _ in found.values()]
    assert 80 <= rules.count("system_user") <= 120
    assert rules.count("username") > 100 and rules.count("display_name") > 20
    assert 380 <= len(data.notes["linked_contacts"]) - rules.count("system_user") <= 520
    # Some matching contacts differ from the Webitel value in case or spacing only.
    users = {u["username"]: u for u in data.webitel_users}
    names = {c["Id"]: c["Name"] for c in data.creatio["Contact"]}
    inexact = [u for u, cid in data.notes["linked_contacts"].items()
               if names[cid] not in (u, users[u]["name"]) and found[u][0] != "system_user"]
    assert inexact


def test_system_user_contacts_are_named_differently(data):
    users = {u["username"]: u for u in data.webitel_users}
    names = {c["Id"]: c["Name"] for c in data.creatio["Contact"]}
    for username in data.notes["system_user_usernames"]:
        contact_name = names[data.notes["linked_contacts"][username]]
        assert name_key(contact_name) not in (name_key(username), name_key(users[username]["name"]))


def test_system_admin_units_include_admins_and_roles(data):
    units = data.creatio["SysAdminUnit"]
    contacts = {c["Id"] for c in data.creatio["Contact"]}
    users = [u for u in units if u["SysAdminUnitTypeValue"] == SYS_ADMIN_UNIT_USER]
    assert all(u["ContactId"] in contacts for u in users)
    assert any(u["Name"] == Credentials().creatio_username for u in users)
    assert {1, 2} <= {u["SysAdminUnitTypeValue"] for u in units}
    webitel = {u["username"] for u in data.webitel_users}
    assert len([u for u in users if u["Name"] not in webitel]) >= 3


def test_extension_clashes_are_pre_existing_creatio_records(data):
    rows = data.creatio["WebitelUser"]
    clashes = data.notes["clashing_extensions"]
    assert len(clashes) >= 1 and sorted(r["Extension"] for r in rows) == sorted(clashes)
    webitel_ext = {u["extension"] for u in data.webitel_users}
    webitel_names = {u["username"] for u in data.webitel_users}
    linked = set(data.notes["linked_contacts"].values())
    contacts = {c["Id"] for c in data.creatio["Contact"]}
    for row in rows:
        assert row["Extension"] in webitel_ext
        assert row["Username"] not in webitel_names and row["WebitelId"] == ""
        assert row["ContactId"] in contacts and row["ContactId"] not in linked
        assert row["Active"] is True and GUID.match(row["Id"])


def test_no_licence_records_exist_in_creatio_yet(data):
    assert data.creatio["WebitelLicense"] == [] and data.creatio["WebitelUserLicense"] == []


def test_extension_communications_reference_contacts(data):
    rows = data.creatio["ContactCommunication"]
    contacts = {c["Id"] for c in data.creatio["Contact"]}
    assert rows and all(r["CommunicationTypeId"] == EXTENSION_COMMUNICATION_TYPE for r in rows)
    assert all(r["ContactId"] in contacts for r in rows)


def test_accounts_and_contact_links(data):
    accounts = {a["Id"]: a["Name"] for a in data.creatio["Account"]}
    assert list(accounts.values()).count(data.domain) == 1
    account_ids = [c["AccountId"] for c in data.creatio["Contact"]]
    assert EMPTY_GUID in account_ids
    assert all(a == EMPTY_GUID or a in accounts for a in account_ids)
    assert any(accounts.get(a) == data.domain for a in account_ids)
    names = [c["Name"] for c in data.creatio["Contact"]]
    assert len(set(names)) < len(names)  # namesakes exist


def test_every_id_is_a_lower_case_guid(data):
    for rows in data.creatio.values():
        for row in rows:
            for column, value in row.items():
                if column == "Id" or column.endswith("Id") and column != "WebitelId":
                    assert GUID.match(value), (column, value)
    assert all(GUID.match(lic["id"]) for lic in data.licenses)


def test_licence_catalog_plants_expired_expiring_and_full(data):
    lics = {lic["id"]: lic for lic in data.licenses}
    grants = defaultdict(int)
    for user in data.webitel_users:
        for serial in user["license"]:
            grants[serial] += 1
    expired = [s for s, lic in lics.items() if lic["not_after"] < NOW]
    expiring = [s for s, lic in lics.items() if NOW <= lic["not_after"] < NOW + 30 * DAY]
    full = [s for s, lic in lics.items() if not lic["competitive"] and grants[s] == lic["limit"]]
    assert expired == [data.notes["expired_license"]]
    assert expiring == [data.notes["expiring_license"]]
    assert full == [data.notes["full_license"]] and grants[full[0]] > 0
    for serial, lic in lics.items():
        assert grants[serial] <= lic["limit"]
        assert lic["not_before"] < lic["not_after"] and lic["scope"]
        assert lic["product"] in {"CALL_CENTER", "CALL_MANAGER", "CHAT", "EMAIL", "WFM", "VOIP_DEVICE"}
    assert {True, False} == {lic["competitive"] for lic in lics.values()}


def test_grants_are_valid_and_cover_most_users(data):
    lics = {lic["id"]: lic for lic in data.licenses}
    granted = [u for u in data.webitel_users if u["license"]]
    assert len(granted) >= 850
    for user in granted:
        assert len(user["license"]) == 1
        for serial in user["license"]:
            assert lics[serial]["not_before"] <= NOW < lics[serial]["not_after"]


def test_several_grants_per_user_are_distinct():
    data = generate(300, seed=2, now_ms=NOW, grants_per_user=2)
    granted = [u["license"] for u in data.webitel_users if u["license"]]
    assert granted and all(len(set(g)) == len(g) == 2 for g in granted)


def test_without_licences():
    data = generate(50, now_ms=NOW, licenses=False)
    assert data.licenses == [] and all(u["license"] == [] for u in data.webitel_users)
    assert data.notes["full_license"] is None


def test_no_users_gives_a_valid_small_data_set():
    data = generate(0, now_ms=NOW)
    assert data.webitel_users == []
    assert data.notes["ambiguous_usernames"] == data.notes["clashing_extensions"] == []
    assert data.notes["no_extension_usernames"] == []
    assert any(c["Name"] == "Supervisor" for c in data.creatio["Contact"])
    assert data.credentials == Credentials()


def test_match_share_extremes():
    none = generate(200, seed=1, now_ms=NOW, match_share=0.0, unrelated_contacts=0)
    assert set(none.notes["linked_contacts"]) == set(none.notes["system_user_usernames"])
    every = generate(200, seed=1, now_ms=NOW, match_share=1.0, unrelated_contacts=0)
    found = candidates(every)
    assert [u for u, (rule, _) in found.items() if rule == "none"] == []


def test_unrelated_contacts_count_is_respected():
    few = generate(100, seed=1, now_ms=NOW, unrelated_contacts=0)
    more = generate(100, seed=1, now_ms=NOW, unrelated_contacts=40)
    assert len(more.creatio["Contact"]) - len(few.creatio["Contact"]) == 40


def test_account_options():
    named = generate(50, now_ms=NOW, account_name="Acme Telecom")
    assert any(a["Name"] == "Acme Telecom" for a in named.creatio["Account"])
    assert named.notes["account_name"] == "Acme Telecom"
    missing = generate(50, now_ms=NOW, with_account=False)
    assert all(a["Name"] != missing.domain for a in missing.creatio["Account"])


def test_other_object_model_names_are_used():
    data = generate(100, seed=1, now_ms=NOW, creatio_model="wsysaccount")
    rows = data.creatio["WSysAccount"]
    assert rows and "WebitelUser" not in data.creatio and "WebitelLicense" not in data.creatio
    assert "WSysAccountRole" not in data.creatio  # the site ships its roles; the seed adds none
    assert sorted(r["Login"] for r in rows) == sorted(data.notes["clashing_extensions"])
    contacts = {c["Id"]: c["Name"] for c in data.creatio["Contact"]}
    for row in rows:
        assert set(row) == {"Id", "Name", "Login", "ContactId", "RoleId"}
        assert row["RoleId"] == WSYSACCOUNT_ROLE_USER
        assert contacts[row["ContactId"]] == row["Name"]


def test_default_model_writes_webitel_user_records():
    data = generate(100, seed=1, now_ms=NOW)
    rows = data.creatio["WebitelUser"]
    assert "WSysAccount" not in data.creatio
    assert sorted(r["Extension"] for r in rows) == sorted(data.notes["clashing_extensions"])
    logins = {u["Id"]: u["Name"] for u in data.creatio["SysAdminUnit"]}
    assert all(logins[r["SysAdminUnitId"]] == r["Username"] and r["WebitelId"] == "" for r in rows)
    assert data.creatio["WebitelLicense"] == [] and data.creatio["WebitelUserLicense"] == []


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_seed_rows_fit_the_sandbox_schema(name):
    """Every seeded row uses the model's columns, fills its required ones and passes its save script."""
    model = get_model(name)
    data = generate(300, seed=2, now_ms=NOW, creatio_model=name)
    assert set(data.creatio) <= set(model.entities)
    for entity_name, rows in data.creatio.items():
        entity = model.entities[entity_name]
        for row in rows:
            assert set(row) <= set(entity.columns)
            assert all(row.get(column) not in (None, "", EMPTY_GUID) for column in entity.required)
        for column in entity.unique_on_save:
            values = [row[column] for row in rows]
            assert len(set(values)) == len(values)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown Creatio model"):
        generate(10, now_ms=NOW, creatio_model="callmanager")


def test_fifty_thousand_users():
    data = generate(50_000, seed=1, now_ms=NOW)
    users = data.webitel_users
    assert len(users) == 50_000
    assert len({u["username"] for u in users}) == 50_000
    extensions = [u["extension"] for u in users if u["extension"]]
    assert len(set(extensions)) == len(extensions) >= 49_000
    assert len(data.creatio["Contact"]) > 100_000
