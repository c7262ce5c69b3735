"""The clients' settings against odd values, and TLS settings that the environment cannot override."""

from __future__ import annotations

import os

import pytest
import responses
from pydantic import ValidationError

from connector.creatio.client import CreatioClient
from connector.retry import RetryPolicy
from connector.settings import CreatioSettings, WebitelSettings
from connector.webitel.client import WebitelClient

API = "https://webitel.test/api"


def webitel(**kw):
    return WebitelSettings(**({"url": API, "token": "tok-SECRET-1234"} | kw))


def test_limits_have_generous_defaults_and_bounds():
    settings = webitel()
    assert settings.max_response_mb == 32 and settings.max_pages == 10_000
    creatio = CreatioSettings(url="https://c.test", username="u", password="p")
    assert creatio.max_response_mb == 64 and creatio.max_pages == 10_000
    for bad in ({"max_response_mb": 0}, {"max_pages": 0}):
        with pytest.raises(ValidationError):
            webitel(**bad)


def test_a_missing_ca_file_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ValidationError) as raised:
        webitel(ca_file=str(tmp_path / "nope.pem"))
    (error,) = raised.value.errors()
    assert error["loc"] == ("ca_file",) and "no such file" in error["msg"]
    with pytest.raises(ValidationError, match="ca_file"):
        CreatioSettings(url="https://c.test", username="u", password="p", ca_file=str(tmp_path / "x"),
                        verify_tls=False)


def test_an_unreadable_ca_file_is_a_config_error(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="cannot read .*Not a directory"):
        webitel(ca_file=str(bundle / "ca.pem"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_a_ca_file_without_read_permission_is_a_config_error(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    bundle.chmod(0)
    with pytest.raises(ValidationError, match="cannot read"):
        webitel(ca_file=str(bundle))


def test_a_readable_ca_file_or_folder_is_kept(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert webitel(ca_file=str(bundle)).verify == str(bundle)
    assert webitel(ca_file=str(tmp_path)).verify == str(tmp_path)
    assert webitel(ca_file=str(bundle), verify_tls=False).verify is False


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
@responses.activate
def test_verify_is_sent_with_every_request_so_the_environment_cannot_override_it(
        tmp_path, monkeypatch, variable):
    monkeypatch.setenv(variable, str(tmp_path / "bogus-bundle.pem"))
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    responses.get(f"{API}/userinfo", json={})
    responses.get("https://c.test/0/odata/Contact", json={"@odata.count": 0, "value": []})
    WebitelClient(webitel(verify_tls=False), retry=RetryPolicy(max_attempts=1)).userinfo()
    WebitelClient(webitel(ca_file=str(bundle)), retry=RetryPolicy(max_attempts=1)).userinfo()
    creatio = CreatioClient(CreatioSettings(url="https://c.test", auth="oauth", identity_url="https://c.test",
                                            client_id="c", client_secret="s", verify_tls=False,
                                            odata_path="/0/odata"),
                            retry=RetryPolicy(max_attempts=1))
    responses.post("https://c.test/connect/token", json={"access_token": "t" * 20})
    creatio.count("Contact")
    verifies = [call.request.req_kwargs["verify"] for call in responses.calls]
    assert verifies == [False, str(bundle), False, False]


# --- addresses as people write them ----------------------------------------------------------------


@pytest.mark.parametrize("written", [
    "https://webitel.example.com", "https://webitel.example.com/", "https://webitel.example.com/api",
    "https://webitel.example.com/api/", " https://webitel.example.com/API ",
])
def test_the_webitel_address_is_the_server_with_or_without_api(written):
    url = WebitelSettings(url=written, token="tok-SECRET-1234").url
    assert url.lower() == "https://webitel.example.com/api"


def test_a_webitel_server_under_a_folder_keeps_it_and_the_client_talks_to_api():
    assert webitel(url="https://host.test/webitel/").url == "https://host.test/webitel/api"
    with pytest.raises(ValidationError, match="without"):
        webitel(url="https://host.test/?tab=users")


@responses.activate
def test_the_client_talks_to_server_api_whatever_the_form():
    for written in ("https://webitel.test", "https://webitel.test/api/"):
        responses.get(f"{API}/userinfo", json={"username": "admin"})
        assert WebitelClient(webitel(url=written)).userinfo() == {"username": "admin"}
    assert [c.request.url for c in responses.calls] == [f"{API}/userinfo"] * 2


@pytest.mark.parametrize("written, root", [
    ("https://site.creatio.com", "https://site.creatio.com"),
    ("https://site.creatio.com/", "https://site.creatio.com"),
    ("https://site.creatio.com/0/Nui/ViewModule.aspx#SectionModuleV2/ContactSectionV2",
     "https://site.creatio.com"),
    ("https://site.creatio.com/0/Shell/#Section/Contact_ListPage", "https://site.creatio.com"),
    ("https://site.creatio.com/Shell/#Card/Contact_FormPage/edit/1", "https://site.creatio.com"),
    ("https://site.creatio.com/0/odata/", "https://site.creatio.com"),
    ("https://host.test/crm/0/Shell/?x=1", "https://host.test/crm"),
    ("https://host.test/crm/", "https://host.test/crm"),
])
def test_the_creatio_address_is_cut_to_the_site_root(written, root):
    assert CreatioSettings(url=written, username="u", password="p").url == root


def test_a_pasted_page_address_is_named_in_one_warning(caplog):
    from connector import settings as module

    page = "https://paste.creatio.test/0/Nui/ViewModule.aspx#CardModuleV2/ContactPageV2/edit/7"
    module._WARNED.discard(page)
    with caplog.at_level("WARNING", logger="connector.settings"):
        for _ in range(3):
            CreatioSettings(url=page, username="u", password="p")
        CreatioSettings(url="https://paste.creatio.test", username="u", password="p")
    (record,) = caplog.records
    assert "using the site root https://paste.creatio.test" in record.getMessage()
    assert "/0/Nui/ViewModule.aspx#CardModuleV2/ContactPageV2/edit/7" in record.getMessage()


def test_odata_path_is_auto_by_default_and_an_explicit_one_stays():
    assert CreatioSettings(url="https://c.test", username="u", password="p").odata_path == "auto"
    assert CreatioSettings(url="https://c.test", username="u", password="p",
                           odata_path="/odata/").odata_path == "/odata"
    with pytest.raises(ValidationError, match='"auto" or a path'):
        CreatioSettings(url="https://c.test", username="u", password="p", odata_path="odata")
