"""The Creatio side of the sandbox data: accounts, contacts, system users, extensions.

The rows are planted so that every matching rule of the sync is exercised and nothing matches by
accident: contacts meant to match a Webitel user carry that user's username or display name, and
every other contact is named so that its normalised key equals no Webitel username or display
name. See ``sandbox.seed.generate`` for the shares.

Every name written comes from the sandbox's own schema (``sandbox.creatio.schema``); the object
holding one record per Webitel user depends on the model (``WebitelUser`` or ``WSysAccount``).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter

from sandbox.creatio.schema import (EMPTY_GUID, EXTENSION_COMMUNICATION_TYPE, SYS_ADMIN_UNIT_USER,
                                    WSYSACCOUNT_ROLE_USER, Model)
from sandbox.seed.names import (COMPANY_SUFFIXES, COMPANY_WORDS, JOB_TITLES, UniqueLogins, ascii_login,
                                name_key, person)

SYSTEM_USER_SHARE = 0.10   # users matched through a Creatio system user (rule 2)
EXTENSION_ROW_SHARE = 0.3  # matched contacts that also list the extension as a communication
COMMON_NAME_SHARE = 0.08   # unrelated contacts drawn from a short list, so some share a name
# Well-known role ids (reference creatio-api.md section 3.5): (id, name, SysAdminUnitTypeValue).
ROLES = (("a29a3ba5-4b0d-de11-9a51-005056c00008", "All employees", 0),
         ("83a43ebc-f36b-1410-298d-001e8c82bcad", "System administrators", 1))


class CreatioBuilder:
    """Builds ``SeedData.creatio`` for a list of Webitel users.

    Args:
        rng: The generator's random source.
        users: Webitel user dicts (already final).
        people: ``(first, last)`` of each user, in the same order.
        model: The sandbox Creatio model whose names are written.
        account_name: Name of the account created contacts belong to.
        with_account: Whether that account already exists.
    """

    def __init__(self, rng: random.Random, users: list[dict], people: list[tuple[str, str]], *,
                 model: Model, account_name: str, with_account: bool) -> None:
        self.rng, self.users, self.people, self.model = rng, users, people, model
        # Every table of the model except the lookups every site ships with (WSysAccountRole).
        self.rows: dict[str, list[dict]] = {name: [] for name, entity in model.entities.items()
                                            if not entity.rows}
        # Keys no contact may have unless it is planted to match that user.
        self.forbidden = {name_key(u["username"]) for u in users} | {name_key(u["name"]) for u in users}
        self.display_counts = Counter(name_key(u["name"]) for u in users)
        self.extensions = {u["extension"] for u in users if u["extension"]}
        self.account_id = self.add_account(account_name) if with_account else None
        self.other_accounts = self._other_accounts(account_name, 3 + len(users) // 500)
        self.notes: dict = {"ambiguous_usernames": [], "clashing_extensions": [],
                            "system_user_usernames": [], "linked_contacts": {}}

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_account(self, name: str) -> str:
        row = {"Id": self.uid(), "Name": name, "Code": ""}
        self.rows["Account"].append(row)
        return row["Id"]

    def _other_accounts(self, main: str, count: int) -> list[str]:
        names: list[str] = []
        while len(names) < min(count, 60):
            name = f"{self.rng.choice(COMPANY_WORDS)} {self.rng.choice(COMPANY_WORDS)} " \
                   f"{self.rng.choice(COMPANY_SUFFIXES)}"
            if name not in names and name_key(name) != name_key(main):
                names.append(name)
        return [self.add_account(name) for name in names]

    def pick_account(self, main_share: float) -> str:
        """The main account, another one or none (the all-zero GUID)."""
        roll = self.rng.random()
        if roll < main_share and self.account_id:
            return self.account_id
        if roll < 0.85:
            return self.rng.choice(self.other_accounts)
        return EMPTY_GUID

    def add_contact(self, name: str, email: str = "", account: str | None = None) -> str:
        row = {"Id": self.uid(), "Name": name, "Email": email,
               "AccountId": account if account is not None else self.pick_account(0.5),
               "JobTitle": self.rng.choice(JOB_TITLES)}
        self.rows["Contact"].append(row)
        return row["Id"]

    def add_extension_row(self, contact_id: str, number: str) -> None:
        self.rows["ContactCommunication"].append({
            "Id": self.uid(), "ContactId": contact_id, "CommunicationTypeId": EXTENSION_COMMUNICATION_TYPE,
            "Number": number, "Primary": True})

    def add_system_user(self, login: str, contact_id: str, email: str = "", *,
                        kind: int = SYS_ADMIN_UNIT_USER,
                        account: str = EMPTY_GUID, fixed_id: str | None = None) -> str:
        row = {"Id": fixed_id or self.uid(), "Name": login, "ContactId": contact_id, "AccountId": account,
               "SysAdminUnitTypeValue": kind, "Active": True, "Email": email}
        self.rows["SysAdminUnit"].append(row)
        return row["Id"]

    def free_name(self, first: str, last: str) -> str:
        """A realistic name for ``first last`` whose key matches no Webitel user."""
        middle = self.rng.choice("ABCDEGHIJKLMNOPRSTVW")
        for name in (f"{first} {last}", f"{last} {first}", f"{first} {middle}. {last}"):
            if name_key(name) not in self.forbidden:
                return name
        return f"{last}, {first}"  # no Webitel display name or username contains a comma

    # -- the planted cases -------------------------------------------------------------------

    def build(self, match_share: float, unrelated: int) -> tuple[dict[str, list[dict]], dict]:
        """Plant every case and return the rows and the notes."""
        order = list(range(len(self.users)))
        self.rng.shuffle(order)
        n_sys = round(len(order) * SYSTEM_USER_SHARE)
        n_amb = 0 if len(order) < 10 else max(1, min(25, len(order) // 100))
        sys_users, ambiguous, rest = order[:n_sys], order[n_sys:n_sys + n_amb], order[n_sys + n_amb:]
        for i in sys_users:
            self._system_user_match(i)
        for i in ambiguous:
            self._ambiguous(i)
        for i in rest[:round(match_share * len(rest))]:
            self._contact_match(i)
        n_clash = 0 if len(order) < 10 else max(1, min(10, len(order) // 150))
        clash_from = [i for i in rest + sys_users if self.users[i]["extension"]]
        self._admins_and_clashes(sorted(clash_from[:n_clash]))
        self._unrelated(unrelated)
        self.notes["system_user_usernames"].sort()
        self.notes["ambiguous_usernames"].sort()
        return self.rows, self.notes

    def _system_user_match(self, i: int) -> None:
        user, (first, last) = self.users[i], self.people[i]
        contact = self.add_contact(self.free_name(first, last), user["email"])
        self.add_system_user(user["username"], contact, user["email"], account=self.pick_account(0.7))
        self._maybe_extension(contact, user)
        self.notes["system_user_usernames"].append(user["username"])
        self.notes["linked_contacts"][user["username"]] = contact

    def _matching_name(self, i: int) -> str:
        """A contact name that matches user ``i`` by username or, if unique, by display name."""
        user = self.users[i]
        clean = " ".join(user["name"].split())
        roll = self.rng.random()
        if roll < 0.45 and self.display_counts[name_key(clean)] == 1:
            return clean  # differs from the Webitel name only where that one has stray spaces
        login = user["username"]
        if roll < 0.70:
            return self.rng.choice([login.upper(), ".".join(p.capitalize() for p in login.split(".")),
                                    f"  {login} ", f"{login} "])
        return login

    def _contact_match(self, i: int) -> None:
        user = self.users[i]
        email = user["email"] if self.rng.random() < 0.8 else ""
        contact = self.add_contact(self._matching_name(i), email, self.pick_account(0.7))
        self._maybe_extension(contact, user)
        self.notes["linked_contacts"][user["username"]] = contact

    def _ambiguous(self, i: int) -> None:
        user = self.users[i]
        first = self._matching_name(i)
        # The twin has the same key but may be written differently (case, spaces).
        twin = first if self.rng.random() < 0.5 else f" {first.upper()}"
        self.add_contact(first, user["email"])
        self.add_contact(twin, "")
        self.notes["ambiguous_usernames"].append(user["username"])

    def _maybe_extension(self, contact: str, user: dict) -> None:
        if user["extension"] and self.rng.random() < EXTENSION_ROW_SHARE:
            self.add_extension_row(contact, user["extension"])

    def _admins_and_clashes(self, clash_users: list[int]) -> None:
        """Roles, the Supervisor, and Creatio-only people; some hold a clashing extension."""
        for role_id, name, kind in ROLES:
            self.add_system_user(name, EMPTY_GUID, kind=kind, fixed_id=role_id)
        self.add_system_user("Contact center supervisors", EMPTY_GUID, kind=2)
        supervisor = self.add_contact("Supervisor", "supervisor@creatio.local", self.account_id or EMPTY_GUID)
        self.add_system_user("Supervisor", supervisor, "supervisor@creatio.local")
        logins = UniqueLogins({u["username"] for u in self.users} | {"supervisor"})
        for n in range(max(2, len(clash_users))):
            _lang, first, last = person(self.rng)
            name = self.free_name(first, last)
            login = logins.claim(f"{ascii_login(first)[:1] or 'u'}.{ascii_login(last) or 'user'}")
            email = f"{login}@creatio.local"
            contact = self.add_contact(name, email)
            sys_id = self.add_system_user(login, contact, email, account=self.pick_account(0.7))
            if n >= len(clash_users):
                continue  # a Creatio-only user with no telephony at all
            extension = self.users[clash_users[n]]["extension"]
            self.add_extension_row(contact, extension)
            row = _TELEPHONY_ROWS[self.model.name](self.uid(), name, login, extension, contact, sys_id)
            self.rows[self.model.user_entity].append(row)
            self.notes["clashing_extensions"].append(extension)

    def _unrelated(self, count: int) -> None:
        """Contacts with nothing to do with telephony; a short common list makes namesakes."""
        common = [n for n in ("John Smith", "Maria Garcia", "Anna Kowalska", "Олена Коваленко",
                              "David Brown", "Ivan Petrov", "Sarah Miller", "José Martínez")
                  if name_key(n) not in self.forbidden]
        for _ in range(count):
            if common and self.rng.random() < COMMON_NAME_SHARE:
                name = self.rng.choice(common)
                first, last = name.split(" ", 1)
            else:
                _lang, first, last = person(self.rng)
                name = self.free_name(first, last)
            email = ""
            if self.rng.random() < 0.7:
                company = self.rng.choice(COMPANY_WORDS).lower()
                email = f"{ascii_login(first)}.{ascii_login(last)}@{company}.com"
            contact = self.add_contact(name, email)
            if self.rng.random() < 0.01:
                # A Creatio-only extension: three digits, shorter than any Webitel one.
                self.add_extension_row(contact, str(self.rng.randint(100, 999)))


def _webitel_user_row(row_id: str, name: str, login: str, extension: str, contact: str, sys_id: str) -> dict:
    """A ``WebitelUser`` record (model ``default``); the Webitel id is not known yet."""
    return {"Id": row_id, "Name": name, "Username": login, "WebitelId": "", "Extension": extension,
            "ContactId": contact, "SysAdminUnitId": sys_id, "Active": True}


def _wsysaccount_row(row_id: str, name: str, login: str, extension: str, contact: str, sys_id: str) -> dict:
    """A ``WSysAccount`` record (model ``wsysaccount``): ``Login`` is the extension, role "User"."""
    return {"Id": row_id, "Name": name, "Login": extension, "ContactId": contact,
            "RoleId": WSYSACCOUNT_ROLE_USER}


# Model name -> the record of a Creatio user who holds an extension in the Webitel user object.
_TELEPHONY_ROWS = {"default": _webitel_user_row, "wsysaccount": _wsysaccount_row}
