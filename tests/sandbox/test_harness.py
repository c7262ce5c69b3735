"""The two-server harness: configuration, TOML output, and both real apps over loopback."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
import types

import pytest
import requests

from sandbox.base import Request, Response, Stats
from sandbox.faults import Faults
from sandbox.harness import Sandbox, start_sandbox, to_toml
from sandbox.seed import generate
from sandbox.seed.types import Credentials

NOW = 1_750_000_000_000


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


REAL_APPS = _have("sandbox.webitel.app") and _have("sandbox.creatio.app")
needs_apps = pytest.mark.skipif(not REAL_APPS,
                                reason="sandbox.webitel.app / sandbox.creatio.app not written yet")


class FakeApp:
    """Stands in for either app: remembers its arguments, answers 200 with its own name."""

    def __init__(self, seed, **options):
        self.seed, self.options, self.stats = seed, options, Stats()

    def route(self, request: Request) -> str:
        return request.path

    def handle(self, request: Request) -> Response:
        return Response.json(200, {"app": type(self).__name__, "path": request.path})


@pytest.fixture
def fake_apps(monkeypatch):
    """Replace both app modules, so the harness logic is tested without the real apps."""
    for name, cls in (("sandbox.webitel.app", "WebitelApp"), ("sandbox.creatio.app", "CreatioApp")):
        module = types.ModuleType(name)
        setattr(module, cls, type(cls, (FakeApp,), {}))
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def data():
    return generate(20, seed=1, now_ms=NOW, unrelated_contacts=5)


def test_config_forms(fake_apps, data):
    with Sandbox(data) as sb:
        config = sb.config()
        assert sb.webitel_url == sb.webitel.url + "/api"
        assert sb.creatio_url == sb.creatio.url and not sb.creatio_url.endswith("/")
        assert sb.webitel.port != sb.creatio.port
    creds = Credentials()
    # The plain server addresses an administrator writes: no /api, no OData path, no profile.
    assert config == {
        "webitel": {"url": sb.webitel.url, "token": creds.webitel_token, "verify_tls": True},
        "creatio": {"url": sb.creatio_url, "auth": "forms", "username": creds.creatio_username,
                    "password": creds.creatio_password},
        "sync": {"account_name": data.domain},
    }


def test_config_oauth_and_state(fake_apps, data):
    with Sandbox(data) as sb:
        config = sb.config(auth="oauth", state_url="sqlite:///state.db")
    assert config["creatio"] == {"url": sb.creatio_url, "auth": "oauth", "identity_url": sb.creatio_url,
                                 "client_id": "sandbox-client",
                                 "client_secret": "creatio-sandbox-client-secret"}
    assert config["state"] == {"url": "sqlite:///state.db"}
    with pytest.raises(ValueError):
        sb.config(auth="basic")


def test_config_toml_parses_back_to_the_config(fake_apps, data):
    with Sandbox(data) as sb:
        text = sb.config_toml(state_url='C:\\state "db"\n.sqlite')
        assert text.startswith("# ")
        assert tomllib.loads(text) == sb.config(state_url='C:\\state "db"\n.sqlite')


def test_to_toml_escapes_and_types():
    config = {"t": {"s": 'a"b\\c\td\x01é', "n": 3, "f": 0.5, "b": False, "none": None, "l": ["x", 1]},
              "odd key": {"k.x": "v"}}
    parsed = tomllib.loads(to_toml(config))
    assert parsed == {"t": {"s": 'a"b\\c\td\x01é', "n": 3, "f": 0.5, "b": False, "l": ["x", 1]},
                      "odd key": {"k.x": "v"}}


def test_sandbox_passes_options_and_faults(fake_apps, data):
    sb = Sandbox(data, creatio_model="wsysaccount", faults_creatio=Faults(error_rate=1.0),
                 creatio_options={"odata_path": "/0/odata"}, webitel_options={"require_password": False})
    assert sb.creatio_app.options == {"odata_path": "/0/odata", "creatio_model": "wsysaccount"}
    assert Sandbox(data).creatio_app.options == {"creatio_model": "default"}
    assert sb.webitel_app.options == {"require_password": False}
    assert sb.creatio_app.seed is data and sb.webitel_app.seed is data
    with sb:
        assert requests.get(sb.creatio_url + "/x").status_code in (500, 502, 503)
        assert requests.get(sb.webitel_url + "/x").json()["app"] == "WebitelApp"
        assert sb.webitel.stats.total() == 1 and sb.creatio.stats.total() == 1


def test_start_sandbox_splits_arguments_and_freezes_the_clock(fake_apps):
    with start_sandbox(15, seed=2, now_ms=NOW, account_name="Acme", unrelated_contacts=3,
                       faults_webitel=Faults(latency_ms=1)) as sb:
        assert len(sb.data.webitel_users) == 15
        assert sb.config()["sync"]["account_name"] == "Acme"
        assert sb.webitel_app.options["now_ms"]() == NOW
        assert sb.webitel.faults.latency_ms == 1
        assert requests.get(sb.webitel_url + "/users").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(sb.webitel_url + "/users")


def test_stop_releases_both_ports(fake_apps, data):
    sb = Sandbox(data).start()
    ports = (sb.webitel.port, sb.creatio.port)
    sb.stop()
    again = Sandbox(data, webitel_port=ports[0], creatio_port=ports[1]).start()
    try:
        assert (again.webitel.port, again.creatio.port) == ports
    finally:
        again.stop()


# ----- against the real apps ------------------------------------------------------------------


@needs_apps
def test_real_webitel_serves_the_generated_users():
    with start_sandbox(40, seed=3, now_ms=NOW, unrelated_contacts=10) as sb:
        config = sb.config()
        headers = {"X-Webitel-Access": config["webitel"]["token"]}
        resp = requests.get(sb.webitel_url + "/users", params={"size": 100, "fields": ["id", "username"]},
                            headers=headers)
        assert resp.status_code == 200
        usernames = {u["username"] for u in resp.json()["items"]}
        assert usernames == {u["username"] for u in sb.data.webitel_users}
        wrong = {"X-Webitel-Access": "wrong"}
        assert requests.get(sb.webitel_url + "/users", headers=wrong).status_code == 401
        assert sb.webitel.stats.total(route_prefix="/api/users") == 2


@needs_apps
def test_real_creatio_serves_the_generated_contacts():
    with start_sandbox(40, seed=3, now_ms=NOW, unrelated_contacts=10) as sb:
        config = sb.config()["creatio"]
        with requests.Session() as session:
            login = session.post(sb.creatio_url + "/ServiceModel/AuthService.svc/Login",
                                 json={"UserName": config["username"], "UserPassword": config["password"]},
                                 headers={"ForceUseSession": "true"})
            assert login.status_code == 200 and login.json()["Code"] == 0
            csrf = session.cookies.get("BPMCSRF", "")
            resp = session.get(sb.creatio_url + "/0/odata/Contact", params={"$count": "true", "$top": "1"},
                               headers={"BPMCSRF": csrf, "ForceUseSession": "true",
                                        "Accept": "application/json"})
            assert resp.status_code == 200
            assert resp.json()["@odata.count"] == len(sb.data.creatio["Contact"])


@needs_apps
def test_real_creatio_oauth_and_other_object_model():
    with start_sandbox(30, seed=4, now_ms=NOW, unrelated_contacts=0, creatio_model="wsysaccount") as sb:
        config = sb.config(auth="oauth")["creatio"]
        token = requests.post(config["identity_url"] + "/connect/token",
                              data={"grant_type": "client_credentials", "client_id": config["client_id"],
                                    "client_secret": config["client_secret"]})
        assert token.status_code == 200
        bearer = {"Authorization": "Bearer " + token.json()["access_token"]}
        resp = requests.get(sb.creatio_url + "/0/odata/WSysAccount", headers=bearer)
        assert resp.status_code == 200
        logins = sorted(r["Login"] for r in resp.json()["value"])
        assert logins == sorted(sb.data.notes["clashing_extensions"])
        roles = requests.get(sb.creatio_url + "/0/odata/WSysAccountRole", headers=bearer).json()["value"]
        assert sorted(r["Name"] for r in roles) == ["Administrator", "User"]
        assert requests.get(sb.creatio_url + "/0/odata/WebitelUser", headers=bearer).status_code == 404


def test_start_sandbox_refuses_an_unknown_creatio_model(fake_apps):
    with pytest.raises(ValueError, match="unknown Creatio model"):
        start_sandbox(5, seed=1, now_ms=NOW, creatio_model="WSysAccount")


@needs_apps
def test_real_webitel_faults_spare_the_excluded_login():
    faults = Faults(error_rate=1.0, exclude_paths=("/api/login",))
    with start_sandbox(12, seed=5, now_ms=NOW, unrelated_contacts=0, faults_webitel=faults) as sb:
        creds = sb.data.credentials
        login = requests.post(sb.webitel_url + "/login", json={
            "username": creds.webitel_username, "password": creds.webitel_password, "domain": sb.data.domain})
        assert login.status_code == 200
        headers = {"X-Webitel-Access": login.json()["access_token"]}
        assert requests.get(sb.webitel_url + "/users", headers=headers).status_code in (500, 502, 503)
        assert sb.webitel.fault_counts == {"pass": 1, "error": 1}
