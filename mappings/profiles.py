"""The built-in Creatio object models (profiles), as data.

The vendor's CallManager package does not publish its object and column names
(``reference/creatio-api.md`` section 4.2), so every name is configurable. Two built-in profiles:

- ``default``: ``WebitelUser``, ``WebitelLicense``, ``WebitelUserLicense`` as described in the
  foundation issue.
- ``wsysaccount``: the older public ``WSysAccount`` object of the ``WebitelCollaborations``
  package (``reference/creatio-api.md`` section 4.1). It has no username, Webitel id, active flag
  or licence detail: links live in the state store only, ``Login`` carries the extension, and the
  required ``RoleId`` is filled with the "User" role.
"""

from __future__ import annotations

from connector.creatio.objects import ObjectModel, WebitelUserObject

WSYSACCOUNT_USER_ROLE = "7640dfbd-0cf2-4040-998e-4641042eff46"

PROFILES: dict[str, ObjectModel] = {
    "default": ObjectModel(),
    "wsysaccount": ObjectModel(
        profile="wsysaccount",
        webitel_user=WebitelUserObject(
            entity="WSysAccount", name="Name", username=None, webitel_id=None, extension="Login",
            contact="ContactId", sys_admin_unit=None, active=None,
            defaults={"RoleId": WSYSACCOUNT_USER_ROLE},
            required=("extension", "contact"),
        ),
        webitel_license=None,
        webitel_user_license=None,
    ),
}


def object_model(profile: str = "default", overrides: dict | None = None) -> ObjectModel:
    """The profile's model with ``overrides`` (the ``[creatio.objects]`` table) laid over it."""
    base = PROFILES[profile].model_dump()
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    base["profile"] = profile
    return ObjectModel.model_validate(base)
