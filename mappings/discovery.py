"""Which objects of a Creatio site hold the Webitel users and licences: guessed from ``$metadata``.

The vendor's CallManager package does not publish its object and column names (reference
creatio-api.md section 4.2), so a new site's administrator either picks a built-in profile
(``fitting_profiles``: one whose every object and column the site has) or lets ``check
--discover`` guess the names from the site's own ``$metadata`` (``discover``) and prints them as a
``[creatio.objects]`` block (``render_block``) to confirm.

Pure: the site's metadata (entity → column → ``Column``: type, lookup target, required) in, a
``Discovery`` out; nothing is read or written here.

How the guesses are made (all Decisions; none of it is documented by Creatio or the vendor):

- names are compared case-insensitively without Creatio's custom prefix ``Usr``
  (``UsrExtension`` reads as ``extension``);
- Creatio's own objects (``Contact``, ``SysAdminUnit``, views ``Vw*``, system ``Sys*`` objects...)
  are never a role's object, and the base lookups every object has (``CreatedBy``,
  ``ModifiedBy``, ``Owner``) are never a role's column;
- the **Webitel user record** is an object with a lookup to ``Contact`` or ``SysAdminUnit`` and a
  text column named like an extension, a number, a login or a username; a name mentioning Webitel
  (``Webitel``, ``WSys``, ``Wbt``...) weighs most. Its ``Login`` is the extension when no column
  is named like an extension or a number (``WSysAccount``'s Login carries the number, section 4.1),
  else the username;
- the **licence** is an object with text columns named like a serial and a product; the **user
  licence** an object with lookups to both of them.

The alternatives seen for every object and column are kept, for the administrator to choose.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Mapping

from connector.creatio.metadata import Column, missing_columns
from connector.creatio.objects import ObjectModel

# Creatio's own objects: never a role's object, whatever columns they have.
CREATIO_OWN = frozenset({
    "contact", "account", "sysadminunit", "contactcommunication", "accountcommunication", "lead",
    "activity", "opportunity", "case", "employee", "order", "invoice", "document", "project",
})
# Base lookups of every object (reference section 3.1): never a role's column.
BASE_LOOKUPS = frozenset({"createdbyid", "modifiedbyid", "ownerid", "processlisteners"})
# Decision: how much a word in an object's name says it is the vendor's.
NAME_HINTS = (("webitel", 8), ("wsys", 8), ("wbt", 6), ("callmanager", 6), ("telephon", 4), ("cti", 3),
              ("sip", 3))
USER_ENTITIES = ("SysAdminUnit", "VwSysAdminUnit")
WIDTH = 78  # the block fits an 80-column terminal


def _key(name: str) -> str:
    """``UsrWebitelId`` → ``webitelid``: lower case, without the custom prefix and underscores."""
    text = name.lower().replace("_", "")
    return text[3:] if text.startswith("usr") and len(text) > 3 else text


def _lookup_key(name: str) -> str:
    text = _key(name)
    return text[:-2] if text.endswith("id") and len(text) > 2 else text


def _like(name: str, *patterns: str) -> bool:
    return any(re.fullmatch(p, _key(name)) for p in patterns)


# Column roles: (patterns of the name, the column types that fit). Order = preference.
EXTENSION = (r"(sip|inner|internal|phone|webitel)?(extension|ext)(number)?", r"(sip|inner|internal)?number",
             r"innerphone", r"(sip|webitel)?phonenumber")
LOGIN = (r"(webitel|sip|user)?login",)
USERNAME = (r"(webitel)?user(name)?", r"(webitel)?username", r"(webitel)?account(name)?")
WEBITEL_ID = (r"webitel(user)?id", r"wbt(user)?id", r"external(user)?id", r"webiteluserid")
NAME = (r"name", r"(display|full|caller)name")
ACTIVE = (r"(is)?active", r"(is)?enabled")
SERIAL = (r"(license|licence)?serial(number)?", r"(license|licence)(key|id|number)")
PRODUCT = (r"(license|licence)?product(code|name)?", r"prod")
VALID_FROM = (r"validfrom", r"notbefore", r"(start|issue|issued|begin)(date|at|on)?")
VALID_TILL = (r"valid(till|to|until)", r"notafter", r"(due|end|expire|expires|expiry)(date|at|on)?")
LIMIT = (r"limit", r"(seat|license|licence)?(count|quantity)")
USED = (r"used(count)?", r"inuse")
CONCURRENT = (r"concurrent", r"(is)?competitive")


@dataclass(frozen=True)
class ColumnGuess:
    """One column role of an object: the column chosen, its type, and the others that fit."""

    attribute: str  # the ``[creatio.objects.*]`` key, e.g. "extension"
    column: str | None
    described: str = ""  # "text", "lookup to Contact"
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectGuess:
    """One role's object: the entity chosen (None: not found), its columns, and what else fits."""

    role: str  # "webitel_user", "webitel_license", "webitel_user_license"
    title: str  # "Webitel user record", "Licence", "User licence"
    entity: str | None
    columns: tuple[ColumnGuess, ...] = ()
    alternatives: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # Lookup columns that look required and that no role fills: (column, "lookup to X").
    unset_required: tuple[tuple[str, str], ...] = ()

    def column(self, attribute: str) -> str | None:
        return next((c.column for c in self.columns if c.attribute == attribute), None)

    @property
    def complete(self) -> bool:
        """Every column found (a licence object the connector can use needs them all)."""
        return self.entity is not None and all(c.column for c in self.columns)


@dataclass(frozen=True)
class Discovery:
    """What ``discover`` found: the three objects, and the built-in profile the block starts from."""

    profile: str
    user: ObjectGuess
    license: ObjectGuess
    user_license: ObjectGuess
    fitting: tuple[str, ...] = field(default=())


Site = Mapping[str, Mapping[str, Column]]


def fitting_profiles(site: Mapping[str, set[str]], profiles: Mapping[str, ObjectModel]) -> list[str]:
    """The built-in profiles whose every object and column the site has, in ``profiles`` order.

    Args:
        site: entity → its column names (``SiteMetadata.names()``).
        profiles: name → model (``mappings.profiles.PROFILES``).
    """
    return [name for name, model in profiles.items() if not missing_columns(site, model)]


def _own(entity: str) -> bool:
    key = entity.lower()
    return key in CREATIO_OWN or key.startswith(("vw", "sys"))


def _hint(entity: str) -> int:
    key = entity.lower()
    return sum(weight for word, weight in NAME_HINTS if word in key)


def _lookups(columns: Mapping[str, Column], targets: tuple[str, ...]) -> list[str]:
    return [c.name for c in columns.values()
            if c.lookup in targets and _key(c.name) not in BASE_LOOKUPS]


def _texts(columns: Mapping[str, Column], patterns: tuple[str, ...], kinds=("text",)) -> list[str]:
    """Columns of ``kinds`` whose name fits ``patterns``, best pattern first, then by name."""
    found = []
    for rank, pattern in enumerate(patterns):
        for column in sorted(columns.values(), key=lambda c: c.name):
            fits = column.type in kinds and not column.lookup and _like(column.name, pattern)
            if fits and column.name not in [name for _, name in found]:
                found.append((rank, column.name))
    return [name for _, name in sorted(found, key=lambda item: item[0])]


def _prefer(names: list[str], *first: str) -> list[str]:
    """``names`` with the ones named like ``first`` (``ContactId``) moved to the front."""
    keys = [_key(f) for f in first]
    return sorted(names, key=lambda n: (keys.index(_key(n)) if _key(n) in keys else len(keys), n))


def _describe(columns: Mapping[str, Column], name: str | None) -> str:
    if name is None:
        return ""
    column = columns[name]
    return f"lookup to {column.lookup}" if column.lookup else column.type


def _pick(attribute: str, columns: Mapping[str, Column], candidates: list[str]) -> ColumnGuess:
    chosen = candidates[0] if candidates else None
    return ColumnGuess(attribute, chosen, _describe(columns, chosen), tuple(candidates[1:]))


# ---- the Webitel user record ---------------------------------------------------------------------

def _user_score(entity: str, columns: Mapping[str, Column]) -> int:
    if _own(entity):
        return 0
    people = _lookups(columns, ("Contact",)) + _lookups(columns, USER_ENTITIES)
    numbers = _texts(columns, EXTENSION + LOGIN + USERNAME)
    if not people or not numbers:
        return 0
    score = 10 + _hint(entity)
    score += 2 * bool(_lookups(columns, ("Contact",))) + 2 * bool(_lookups(columns, USER_ENTITIES))
    score += 2 * bool(_texts(columns, EXTENSION + LOGIN)) + bool(_texts(columns, USERNAME))
    score += 2 * bool(_texts(columns, WEBITEL_ID, ("text", "int")))
    score += any(word in entity.lower() for word in ("user", "account", "operator", "agent"))
    score -= 6 * ("licen" in entity.lower())
    return score


def _user_object(site: Site) -> ObjectGuess:
    ranked = _ranked(site, _user_score)
    if not ranked:
        return ObjectGuess("webitel_user", "Webitel user record", None, notes=(
            "none found: no object with a lookup to Contact or SysAdminUnit and a text column "
            "named like an extension, a login or a username",))
    entity, columns = ranked[0], site[ranked[0]]
    extensions = _texts(columns, EXTENSION)
    logins = _texts(columns, LOGIN)
    usernames = _texts(columns, USERNAME)
    if extensions:
        usernames = usernames + [n for n in logins if n not in usernames]
    else:
        # Decision: Login is the number when nothing is named like one (WSysAccount, section 4.1).
        extensions, usernames = logins, [n for n in usernames if n not in logins]
    taken = set(extensions[:1] + usernames[:1])
    names = [n for n in _texts(columns, NAME) if n not in taken]
    guesses = (
        _pick("name", columns, names),
        _pick("username", columns, usernames),
        _pick("webitel_id", columns, _texts(columns, WEBITEL_ID, ("text",))),
        _pick("extension", columns, extensions),
        _pick("contact", columns, _prefer(_lookups(columns, ("Contact",)), "ContactId")),
        _pick("sys_admin_unit", columns,
              _prefer(_lookups(columns, USER_ENTITIES), "SysAdminUnitId", "SysUserId", "UserId")),
        _pick("active", columns, _texts(columns, ACTIVE, ("bool",))),
    )
    used = {g.column for g in guesses}
    unset = tuple(
        (c.name, _describe(columns, c.name))
        for c in columns.values()
        if c.required and c.lookup and c.name not in used and _key(c.name) not in BASE_LOOKUPS
    )
    return ObjectGuess("webitel_user", "Webitel user record", entity, guesses, tuple(ranked[1:]),
                       unset_required=unset)


# ---- the licence catalog and the user-licence detail --------------------------------------------

def _license_score(entity: str, columns: Mapping[str, Column]) -> int:
    if _own(entity) or not _texts(columns, SERIAL) or not _texts(columns, PRODUCT):
        return 0
    score = 10 + _hint(entity) + 4 * ("licen" in entity.lower())
    for patterns, kinds in ((VALID_FROM, ("datetime",)), (VALID_TILL, ("datetime",)), (LIMIT, ("int",)),
                            (USED, ("int",)), (CONCURRENT, ("bool",))):
        score += bool(_texts(columns, patterns, kinds))
    return score


def _license_object(site: Site) -> ObjectGuess:
    ranked = _ranked(site, _license_score)
    if not ranked:
        return ObjectGuess("webitel_license", "Licence", None, notes=(
            "none found: no object with text columns named like a serial and a product",))
    entity, columns = ranked[0], site[ranked[0]]
    serials = _texts(columns, SERIAL)
    guesses = (
        _pick("serial", columns, serials),
        _pick("product", columns, _texts(columns, PRODUCT)),
        _pick("name", columns, [n for n in _texts(columns, NAME) if n not in serials[:1]]),
        _pick("valid_from", columns, _texts(columns, VALID_FROM, ("datetime",))),
        _pick("valid_till", columns, _texts(columns, VALID_TILL, ("datetime",))),
        _pick("limit", columns, _texts(columns, LIMIT, ("int",))),
        _pick("used", columns, _texts(columns, USED, ("int",))),
        _pick("concurrent", columns, _texts(columns, CONCURRENT, ("bool",))),
    )
    return ObjectGuess("webitel_license", "Licence", entity, guesses, tuple(ranked[1:]))


def _grant_object(site: Site, user: str | None, license: str | None) -> ObjectGuess:
    if user is None or license is None:
        return ObjectGuess("webitel_user_license", "User licence", None, notes=(
            "none looked for: it links a Webitel user record to a licence, and one of them was "
            "not found",))

    def score(entity: str, columns: Mapping[str, Column]) -> int:
        if _own(entity) or entity in (user, license):
            return 0
        if not _lookups(columns, (user,)) or not _lookups(columns, (license,)):
            return 0
        return 10 + _hint(entity) + 2 * ("licen" in entity.lower()) - len(columns) // 20

    ranked = _ranked(site, score)
    if not ranked:
        return ObjectGuess("webitel_user_license", "User licence", None, notes=(
            f"none found: no object with lookups to both {user} and {license}",))
    entity, columns = ranked[0], site[ranked[0]]
    guesses = (
        _pick("user", columns, _prefer(_lookups(columns, (user,)), "UserId")),
        _pick("license", columns, _prefer(_lookups(columns, (license,)), "LicenseId")),
    )
    return ObjectGuess("webitel_user_license", "User licence", entity, guesses, tuple(ranked[1:]))


def _ranked(site: Site, score) -> list[str]:
    scored = [(score(entity, columns), entity) for entity, columns in site.items()]
    return [entity for points, entity in sorted(scored, key=lambda s: (-s[0], s[1])) if points > 0]


def discover(site: Site, profiles: Mapping[str, ObjectModel]) -> Discovery:
    """Guess the site's Webitel objects and the built-in profile the block starts from.

    The block starts from a profile because a TOML block cannot say "no licence objects": the
    first profile whose licence objects are there exactly when complete ones were found is taken
    (``wsysaccount`` has none), and every name found is written over it.

    Args:
        site: entity → column → ``Column`` (``SiteMetadata.entities``).
        profiles: the built-in profiles (``mappings.profiles.PROFILES``), in preference order.
    """
    user = _user_object(site)
    license = _license_object(site)
    grant = _grant_object(site, user.entity, license.entity)
    with_licenses = license.complete and grant.complete
    base = next((name for name, model in profiles.items()
                 if (model.webitel_license is not None) == with_licenses), next(iter(profiles)))
    fitting = fitting_profiles({e: set(c) for e, c in site.items()}, profiles)
    return Discovery(base, user, license, grant, tuple(fitting))


# ---- the TOML block ------------------------------------------------------------------------------

def _string(text: str) -> str:
    # A JSON string is a TOML basic string (the same escapes; \uXXXX for control characters).
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=f"# {indent}", subsequent_indent=f"# {indent}  ",
                         break_long_words=False, break_on_hyphens=False) or ["#"]


def _assignment(key: str, value: str, comment: str) -> list[str]:
    line = f"{key} = {_string(value)}"
    if not comment:
        return [line]
    if len(line) + 3 + len(comment) <= WIDTH:
        return [f"{line.ljust(min(28, WIDTH - len(comment) - 3))} # {comment}"]
    return [*_comment(comment), line]


def _object_lines(guess: ObjectGuess, profile: ObjectModel, *, usable: bool) -> list[str]:
    lines = [""]
    if guess.entity is None:
        return lines + _comment(f"{guess.title}: {guess.notes[0] if guess.notes else 'none found'}")
    lines += _comment(f"{guess.title}: {guess.entity}")
    if guess.alternatives:
        lines += _comment("other objects that fit: " + ", ".join(guess.alternatives), "  ")
    prefix = "" if usable else "# "
    if not usable:
        missing = [c.attribute for c in guess.columns if not c.column]
        lines += _comment(f"not usable: no column found for {', '.join(missing)}; "
                          "name them and remove the # to use it")
    lines.append(f"{prefix}[creatio.objects.{guess.role}]")
    lines.append(f"{prefix}entity = {_string(guess.entity)}")
    for column in guess.columns:
        if column.column:
            comment = column.described
            if column.alternatives:
                comment += "; also seen: " + ", ".join(column.alternatives)
        else:
            comment = "not found: this site has no such column"
        for line in _assignment(column.attribute, column.column or "", comment):
            lines.append(line if line.startswith("#") else prefix + line)
    defaults: Mapping[str, str] = {}
    if guess.role == "webitel_user":
        defaults = profile.webitel_user.defaults
        if profile.webitel_user.entity != guess.entity:
            if defaults:
                lines.append("defaults = {}")  # the profile's constants belong to its own object
            defaults = {}
        elif defaults:
            shown = ", ".join(f"{k} = {_string(v)}" for k, v in defaults.items())
            lines += _comment(f"written on create, from the {profile.profile!r} profile: {shown}")
    for column, described in guess.unset_required:
        if column not in defaults:
            lines += _comment(f"{column} ({described}) looks required and gets no value: set "
                              f'defaults = {{ {column} = "<Id of a record>" }}')
    for note in guess.notes:
        lines += _comment(note)
    return lines


def render_block(found: Discovery, profiles: Mapping[str, ObjectModel], *, site: str = "") -> str:
    """The ``[creatio.objects]`` block of ``found``, as TOML, every line within 80 columns.

    Objects and columns not found are written as ``""`` (the connector neither reads nor writes
    a column named ``""``); licence objects are written only when all their columns were found,
    else they are left as comments and the block's profile has none.
    """
    base = profiles[found.profile]
    with_licenses = base.webitel_license is not None
    lines = [
        *_comment(f"[creatio.objects] for {site or 'this site'}, guessed from its $metadata by "
                  "check --discover. Confirm every name, then put the block in the config in place "
                  "of any [creatio.objects] tables it has. \"\" = no such column on this site."),
    ]
    if found.fitting:
        lines += _comment("built-in profiles that fit this site as they are: "
                          + ", ".join(repr(p) for p in found.fitting))
    lines += ["[creatio.objects]", f"profile = {_string(found.profile)}"]
    lines += _object_lines(found.user, base, usable=found.user.entity is not None)
    lines += _object_lines(found.license, base, usable=with_licenses)
    lines += _object_lines(found.user_license, base, usable=with_licenses)
    return "\n".join(lines) + "\n"
