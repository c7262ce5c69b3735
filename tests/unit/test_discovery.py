"""Guessing a site's Webitel objects from its $metadata (``mappings.discovery``): pure, no HTTP."""

from __future__ import annotations

import tomllib

from connector.creatio.metadata import Column
from jobs.config import CreatioConfig
from mappings.discovery import discover, fitting_profiles, render_block
from mappings.profiles import PROFILES, WSYSACCOUNT_USER_ROLE

EDM = {"guid": "Edm.Guid", "text": "Edm.String", "bool": "Edm.Boolean", "int": "Edm.Int32",
       "datetime": "Edm.DateTimeOffset"}


def entity(**columns) -> dict[str, Column]:
    """``entity(Name="text", ContactId="->Contact", RoleId="->Role!")``: ``->`` a lookup, ``!`` required."""
    out = {"Id": Column("Id", "guid", "Edm.Guid", required=True),
           "CreatedById": Column("CreatedById", "guid", "Edm.Guid", "Contact"),
           "CreatedOn": Column("CreatedOn", "datetime", "Edm.DateTimeOffset"),
           "ModifiedOn": Column("ModifiedOn", "datetime", "Edm.DateTimeOffset")}
    for name, kind in columns.items():
        required = kind.endswith("!")
        kind = kind.rstrip("!")
        if kind.startswith("->"):
            out[name] = Column(name, "guid", "Edm.Guid", kind[2:], required)
        else:
            out[name] = Column(name, kind, EDM[kind], None, required)
    return out


STANDARD = {
    "Contact": entity(Name="text", Email="text", AccountId="->Account", OwnerId="->Contact", Phone="text",
                      MobilePhone="text", JobTitle="text"),
    "Account": entity(Name="text", Code="text"),
    "SysAdminUnit": entity(Name="text", ContactId="->Contact", AccountId="->Account", Email="text",
                           SysAdminUnitTypeValue="int", Active="bool"),
    # Creatio's own objects with a contact and a number: never a role's object.
    "ContactCommunication": entity(ContactId="->Contact", CommunicationTypeId="->CommunicationType",
                                   Number="text", Primary="bool"),
    "SysLic": entity(Key="text", Count="int", DueDate="datetime", StartDate="datetime",
                     SysLicPackageId="->SysLicPackage"),
    "Activity": entity(Title="text", ContactId="->Contact", OwnerId="->Contact", PhoneNumber="text"),
}
DEFAULT_SITE = {
    **STANDARD,
    "WebitelUser": entity(Name="text", Username="text", WebitelId="text", Extension="text",
                          ContactId="->Contact", SysAdminUnitId="->SysAdminUnit", Active="bool"),
    "WebitelLicense": entity(Serial="text", Product="text", Name="text", ValidFrom="datetime",
                             ValidTill="datetime", Limit="int", Used="int", Concurrent="bool"),
    "WebitelUserLicense": entity(UserId="->WebitelUser", LicenseId="->WebitelLicense"),
}
WSYS_SITE = {
    **STANDARD,
    "WSysAccount": entity(Name="text", Login="text!", Password="text", ContactId="->Contact!",
                          RoleId="->WSysAccountRole!"),
    "WSysAccountRole": entity(Name="text", Description="text"),
}


def names(site) -> dict[str, set[str]]:
    return {e: set(c) for e, c in site.items()}


def load_block(block: str):
    """The ``[creatio.objects]`` block as the configuration reads it."""
    data = tomllib.loads(block)["creatio"]
    return CreatioConfig(url="https://c.test", username="u", password="p", **data).objects


def test_fitting_profiles():
    assert fitting_profiles(names(DEFAULT_SITE), PROFILES) == ["default"]
    assert fitting_profiles(names(WSYS_SITE), PROFILES) == ["wsysaccount"]
    assert fitting_profiles(names(STANDARD), PROFILES) == []


def test_the_default_objects_are_found_and_the_block_is_the_default_profile():
    found = discover(DEFAULT_SITE, PROFILES)
    assert (found.profile, found.fitting) == ("default", ("default",))
    assert (found.user.entity, found.license.entity, found.user_license.entity) == (
        "WebitelUser", "WebitelLicense", "WebitelUserLicense")
    assert {c.attribute: c.column for c in found.user.columns} == {
        "name": "Name", "username": "Username", "webitel_id": "WebitelId", "extension": "Extension",
        "contact": "ContactId", "sys_admin_unit": "SysAdminUnitId", "active": "Active"}
    assert load_block(render_block(found, PROFILES)) == PROFILES["default"]


def test_wsysaccount_login_is_the_extension_and_the_profile_keeps_its_role():
    found = discover(WSYS_SITE, PROFILES)
    assert found.profile == "wsysaccount" and found.user.entity == "WSysAccount"
    assert found.user.column("extension") == "Login" and found.user.column("username") is None
    assert found.license.entity is None and found.user_license.entity is None
    block = render_block(found, PROFILES, site="https://site.test")
    model = load_block(block)
    assert model.webitel_user.defaults == {"RoleId": WSYSACCOUNT_USER_ROLE}
    assert model.webitel_license is None and model.webitel_user.extension == "Login"
    assert model.webitel_user.username == "" and "https://site.test" in block
    assert "looks required" not in block  # the profile's own role fills RoleId


def test_custom_names_with_the_usr_prefix_and_alternatives_as_comments():
    site = {
        **STANDARD,
        "UsrWbtAccount": entity(UsrName="text", UsrLogin="text", UsrSipNumber="text", UsrExtension="text",
                                UsrContactId="->Contact", UsrSysUserId="->SysAdminUnit", UsrIsActive="bool",
                                UsrWebitelUserId="text", UsrGroupId="->UsrWbtGroup!"),
        "UsrWbtPhoneUser": entity(Name="text", Extension="text", ContactId="->Contact"),
        "UsrWbtLicence": entity(UsrSerialNumber="text", UsrProduct="text", Name="text",
                                UsrNotBefore="datetime", UsrNotAfter="datetime", UsrLimit="int",
                                UsrUsedCount="int", UsrCompetitive="bool"),
        "UsrWbtAccountLicence": entity(UsrAccountId="->UsrWbtAccount", UsrLicenceId="->UsrWbtLicence"),
        "UsrWbtGroup": entity(Name="text"),
    }
    found = discover(site, PROFILES)
    assert found.profile == "default" and found.fitting == ()
    user = found.user
    assert user.entity == "UsrWbtAccount" and "UsrWbtPhoneUser" in user.alternatives
    got = {c.attribute: c.column for c in user.columns}
    assert got == {"name": "UsrName", "username": "UsrLogin", "webitel_id": "UsrWebitelUserId",
                   "extension": "UsrExtension", "contact": "UsrContactId", "sys_admin_unit": "UsrSysUserId",
                   "active": "UsrIsActive"}
    assert next(c for c in user.columns if c.attribute == "extension").alternatives == ("UsrSipNumber",)
    lic = {c.attribute: c.column for c in found.license.columns}
    assert lic == {"serial": "UsrSerialNumber", "product": "UsrProduct", "name": "Name",
                   "valid_from": "UsrNotBefore", "valid_till": "UsrNotAfter", "limit": "UsrLimit",
                   "used": "UsrUsedCount", "concurrent": "UsrCompetitive"}
    assert (found.user_license.column("user"), found.user_license.column("license")) == (
        "UsrAccountId", "UsrLicenceId")
    block = render_block(found, PROFILES)
    assert "also seen: UsrSipNumber" in block and "other objects that fit: UsrWbtPhoneUser" in block
    assert 'UsrGroupId (lookup to UsrWbtGroup) looks required' in block
    model = load_block(block)
    # Another object than the profile's: the profile's constant values are not carried over.
    assert model.webitel_user.entity == "UsrWbtAccount" and model.webitel_user.defaults == {}
    assert model.webitel_license.serial == "UsrSerialNumber"
    assert model.webitel_user_license.entity == "UsrWbtAccountLicence"
    assert all(len(line) <= 80 for line in block.splitlines())


def test_creatio_own_objects_are_never_taken_and_nothing_found_is_said():
    found = discover(STANDARD, PROFILES)
    assert found.user.entity is None and found.license.entity is None
    block = render_block(found, PROFILES)
    assert "[creatio.objects.webitel_user]" not in block and "none found" in block
    assert tomllib.loads(block)["creatio"]["objects"] == {"profile": "wsysaccount"}


def test_an_incomplete_licence_object_is_left_as_comments():
    site = {**WSYS_SITE, "WebitelLicense": entity(Serial="text", Product="text", Name="text")}
    found = discover(site, PROFILES)
    assert found.license.entity == "WebitelLicense" and not found.license.complete
    assert found.profile == "wsysaccount"
    block = render_block(found, PROFILES)
    assert "# [creatio.objects.webitel_license]" in block and "not usable: no column found for" in block
    assert load_block(block).webitel_license is None
