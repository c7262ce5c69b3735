"""Configuration: every bad input gets a ConfigError naming the file, the key path and what was expected."""

import tomllib
from pathlib import Path

import pytest

from connector.errors import ConfigError
from jobs.config import load_config

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
[webitel]
url = "https://webitel.example.com/api"
token = "tok-0123456789"
[creatio]
url = "https://crm.example.com"
username = "Supervisor"
password = "pw-0123456789"
"""


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("WCSYNC_"):
            monkeypatch.delenv(name)


def test_example_config_parses_and_documents_every_section():
    data = tomllib.loads((ROOT / "config.example.toml").read_text())
    data["webitel"]["password"] = "pw-0123456789"
    data["creatio"]["password"] = "pw-0123456789"
    config = load_config(data=data)
    assert set(data) == {
        "webitel",
        "creatio",
        "retry",
        "sync",
        "licenses",
        "schedule",
        "state",
        "serve",
        "provisioning",
        "console",
    }
    assert config.creatio.objects.webitel_user.entity == "WebitelUser"
    assert config.webitel.page_size == 1000


def test_defaults(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.webitel.verify_tls is True and config.creatio.verify_tls is True
    assert config.creatio.odata_path == "auto" and config.creatio.batch_size == 100
    assert config.sync.on_missing == "deactivate" and config.licenses.first_run_winner == "webitel"
    assert config.state.url.startswith("sqlite:")
    assert config.account_name == "webitel.example.com"


@pytest.mark.parametrize(
    "patch, key, expected",
    [
        (
            '[webitel]\nurl = "webitel.example.com"\ntoken = "t-0123456789"',
            "webitel.url",
            "http:// or https://",
        ),
        ('[webitel]\nurl = "https://w/api"\ntokn = "t"', "webitel.tokn", "unknown key"),
        ('[webitel]\nurl = "https://w/api"', "webitel", "missing credentials"),
        (
            '[webitel]\nurl = "https://w/api"\ntoken = "t"\npage_size = 5000',
            "webitel.page_size",
            "less than or equal to 1000",
        ),
        (
            '[webitel]\nurl = "https://w/api"\ntoken = "t"\ntimeout_s = "soon"',
            "webitel.timeout_s",
            "valid number",
        ),
    ],
)
def test_bad_webitel_table(tmp_path, patch, key, expected):
    text = GOOD.split("[creatio]")[1]
    path = write(tmp_path, patch + "\n[creatio]" + text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and f": {key}" in message and expected in message


@pytest.mark.parametrize(
    "extra, key, expected",
    [
        ("page_size = 30000", "creatio.page_size", "less than or equal to 20000"),
        ("batch_size = 500", "creatio.batch_size", "less than or equal to 100"),
        ('auth = "oauth"', "creatio", "needs creatio.identity_url"),
        ('auth = "kerberos"', "creatio.auth", "'forms' or 'oauth'"),
        ('odata_path = "0/odata"', "creatio.odata_path", "starting with '/'"),
        ("verify_tls = 3", "creatio.verify_tls", "valid boolean"),
        ('[creatio.objects]\nprofile = "nope"', "creatio.objects", "unknown profile"),
        (
            '[creatio.objects.webitel_user]\nentitty = "X"',
            "creatio.objects.webitel_user.entitty",
            "unknown key",
        ),
    ],
)
def test_bad_creatio_table(tmp_path, extra, key, expected):
    path = write(tmp_path, GOOD.replace('password = "pw-0123456789"', 'password = "pw-0123456789"\n' + extra))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f": {key}" in str(info.value) and expected in str(info.value)


def test_bad_schedule_and_state(tmp_path):
    path = write(tmp_path, GOOD + '\n[schedule.users]\ncron = "every day"\n[state]\nurl = "mysql://x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert (
        "schedule.users.cron: not a valid cron expression" in text
        and "state.url: expected a SQLAlchemy URL" in text
    )


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[webitel\nurl="))


def test_environment_overrides_file_and_is_named_in_errors(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("WCSYNC_CREATIO__PAGE_SIZE", "500")
    monkeypatch.setenv("WCSYNC_WEBITEL__TOKEN", "env-token-0123456789")
    monkeypatch.setenv("WCSYNC_CREATIO__OBJECTS__WEBITEL_USER__ENTITY", "UsrWebitelUser")
    config = load_config(path)
    assert config.creatio.page_size == 500
    assert config.webitel.token.get_secret_value() == "env-token-0123456789"
    assert config.creatio.objects.webitel_user.entity == "UsrWebitelUser"
    assert config.creatio.objects.webitel_user.username == "Username"  # the rest of the profile stays
    monkeypatch.setenv("WCSYNC_CREATIO__PAGE_SIZE", "many")
    with pytest.raises(
        ConfigError, match=r"creatio.page_size \(from environment WCSYNC_CREATIO__PAGE_SIZE\)"
    ):
        load_config(path)


def test_config_path_from_env(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("WCSYNC_CONFIG", str(path))
    assert load_config().creatio.username == "Supervisor"


def test_secrets_dir(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.replace('password = "pw-0123456789"', ""))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "creatio__password").write_text("from-file-secret\n")
    monkeypatch.setenv("WCSYNC_SECRETS_DIR", str(secrets))
    assert load_config(path).creatio.password.get_secret_value() == "from-file-secret"


def test_wsysaccount_profile(tmp_path):
    path = write(tmp_path, GOOD + '\n[creatio.objects]\nprofile = "wsysaccount"\n')
    objects = load_config(path).creatio.objects
    assert objects.webitel_user.entity == "WSysAccount" and objects.webitel_user.extension == "Login"
    assert objects.webitel_user.username is None and objects.webitel_license is None


def test_secrets_never_in_repr_or_errors(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    text = repr(config) + str(config) + str(config.model_dump())
    assert "tok-0123456789" not in text and "pw-0123456789" not in text
    bad = GOOD.replace('token = "tok-0123456789"', 'token = "tok-0123456789"\npage_size = "x"')
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    assert "tok-0123456789" not in str(info.value)


def test_every_key_the_code_reads_is_documented_in_the_example():
    from pydantic import BaseModel

    from jobs.config import AppConfig

    data = tomllib.loads((ROOT / "config.example.toml").read_text())
    text = (ROOT / "config.example.toml").read_text()
    missing = []

    def walk(model, node, path):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            nested = (
                annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
            )
            if nested is None:
                args = [
                    a
                    for a in getattr(annotation, "__args__", ())
                    if isinstance(a, type) and issubclass(a, BaseModel)
                ]
                nested = args[0] if args else None
            if nested is not None and name in node:
                walk(nested, node[name], f"{path}{name}.")
            elif name not in node and f"# {name} =" not in text and f"#{name} =" not in text:
                missing.append(path + name)

    walk(AppConfig, data, "")
    assert missing == [], f"keys read by the code but not documented in config.example.toml: {missing}"


def test_a_config_readable_by_others_is_named_in_a_warning(tmp_path, caplog):
    path = write(tmp_path, GOOD)
    path.chmod(0o644)
    load_config(path)
    assert any(str(path) in r.getMessage() and "chmod 600" in r.getMessage() for r in caplog.records)
    caplog.clear()
    path.chmod(0o600)
    load_config(path)
    assert not [r for r in caplog.records if "chmod" in r.getMessage()]
