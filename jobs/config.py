"""Loading and checking the configuration: a TOML file, overridden key by key from the environment.

Precedence, highest first: environment ``WCSYNC_<SECTION>__<KEY>`` (nested tables with more
``__``, e.g. ``WCSYNC_CREATIO__OBJECTS__WEBITEL_USER__ENTITY``), files in ``WCSYNC_SECRETS_DIR``
named ``<section>__<key>`` (Docker/Kubernetes secrets), then the TOML file. Every problem is
reported as a ``ConfigError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.errors import ConfigError
from connector.creatio.objects import ObjectModel
from connector.settings import CreatioSettings, RetrySettings, WebitelSettings
from mappings.profiles import PROFILES, object_model

log = logging.getLogger(__name__)

ENV_PREFIX = "WCSYNC_"
DEFAULT_CONFIG = "config.toml"


def duration_s(text: str) -> float:
    """``"24h"``, ``"90m"``, ``"30s"``, ``"7d"`` in seconds.

    Raises:
        ValueError: not a number followed by s, m, h or d.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in units or not value[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"expected a duration like 24h, 90m or 7d, not {text!r}")
    return float(value[:-1]) * units[value[-1]]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SyncSettings(_Section):
    """``[sync]``: rules of the users job."""

    account_name: str | None = None  # default: the Webitel domain's name
    on_missing: Literal["deactivate", "delete", "keep"] = "deactivate"
    max_deactivations: int = Field(50, ge=0)
    max_deactivation_share: float = Field(0.10, ge=0, le=1)
    sync_extension_communication: bool = True
    # Cycles between full reads read only what changed since the last one (Webitel users newest
    # first, Creatio records by ModifiedOn); a full read (which also catches deletions on either
    # side) every this long: "24h", "90m", "7d"; "0s": every cycle reads everything.
    full_every: str = "24h"
    # Watermarks are taken back this far on each incremental read, for clocks that disagree.
    watermark_margin_s: float = Field(120, ge=0)

    @field_validator("full_every")
    @classmethod
    def _full_every(cls, value: str) -> str:
        duration_s(value)
        return value


class LicenseSettings(_Section):
    """``[licenses]``: rules of the licences job."""

    first_run_winner: Literal["webitel", "creatio"] = "webitel"
    max_revocations: int = Field(50, ge=0)
    max_revocation_share: float = Field(0.10, ge=0, le=1)
    expiring_days: int = Field(30, ge=1)


class JobSchedule(_Section):
    """When one job runs: every N minutes, or a cron expression (five fields); exactly one of them."""

    every_minutes: float | None = Field(None, gt=0)
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f"not a valid cron expression ({exc}); expected five fields like '*/15 * * * *'"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_of(self) -> "JobSchedule":
        if (self.every_minutes is None) == (self.cron is None):
            raise ValueError("set exactly one of every_minutes and cron")
        return self


class ScheduleSettings(_Section):
    """``[schedule]``: the worker's timetable, and how it backs off from a failing job."""

    users: JobSchedule = JobSchedule(every_minutes=15)
    licenses: JobSchedule = JobSchedule(every_minutes=60)
    run_at_start: bool = False
    misfire_grace_s: int = Field(300, ge=1)
    # After this many failed runs in a row, a job's next attempts are spaced out: twice its
    # interval, then four times... up to max_backoff_minutes. A successful run resets it.
    backoff_after_failures: int = Field(3, ge=1)
    max_backoff_minutes: float = Field(60, gt=0)
    # IANA time zone of the cron expressions (default: the machine's local zone).
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; expected an IANA name like 'Europe/Kyiv' or 'UTC'"
            ) from None
        return value


class StateSettings(_Section):
    """``[state]``: where run history, links and the licence baseline live."""

    url: str = "sqlite:///.wcsync/state.sqlite"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith("sqlite:") or value.startswith("postgresql")):
            raise ValueError(
                "expected a SQLAlchemy URL: sqlite:///path/to/state.sqlite or postgresql+psycopg://..."
            )
        return value


class ServeSettings(_Section):
    """``[serve]``: the scheduled worker's own endpoints and how it stops."""

    http_port: int | None = Field(None, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    # On SIGTERM/SIGINT the run in progress finishes its batch in flight; past this many seconds
    # the worker exits anyway (exit code 1) and the run is recorded as interrupted.
    stop_timeout_s: float = Field(60, gt=0)
    # The run lock's lease; the worker renews it every third of this while a run goes on. A
    # worker on another host that dies holds the lock until its lease runs out.
    lock_lease_s: float = Field(120, ge=5)


class ProvisioningSettings(_Section):
    """``[provisioning]``: Creatio -> Webitel (records made by a Creatio admin become Webitel users)."""

    enabled: bool = True
    # "generate": a password made by Webitel's own generator (meets its password settings), never
    # stored or logged; "none": no password, where the server allows it.
    password: Literal["generate", "none"] = "generate"
    # A record deleted in Creatio: "soft" (Webitel's soft delete), "permanent", or "keep".
    on_delete: Literal["soft", "permanent", "keep"] = "soft"
    # Who wins when both sides changed a field since the last run.
    owner: dict[Literal["name", "extension"], Literal["webitel", "creatio"]] = {
        "name": "webitel",
        "extension": "webitel",
    }


class CreatioConfig(CreatioSettings):
    """``[creatio]``: the client's settings and the site's object model (``[creatio.objects]``)."""

    objects: ObjectModel = ObjectModel()
    # Creatio meters API calls (its Growth plan lists 10,000 per user per day): with a budget, the
    # state store counts this site's requests per UTC day, and a run whose plan would need more
    # than is left stops before writing.
    daily_request_budget: int | None = Field(None, ge=1)

    @field_validator("objects", mode="before")
    @classmethod
    def _objects(cls, value: object) -> object:
        if isinstance(value, dict):
            overrides = dict(value)
            profile = overrides.pop("profile", "default")
            if profile not in PROFILES:
                raise ValueError(
                    f"unknown profile {profile!r}: expected one of {', '.join(map(repr, PROFILES))}"
                )
            return object_model(profile, overrides)
        return value


class ConsoleSettings(_Section):
    """``[console]``: the HTTP API and the web console on ``[serve] http_port``. Without a token they
    answer on this machine only (``jobs.worker.console.access``)."""

    # The API's bearer token and a console login; a secret (WCSYNC_CONSOLE__TOKEN).
    token: SecretStr | None = None
    # Another console login, for people; a secret (WCSYNC_CONSOLE__PASSWORD).
    password: SecretStr | None = None


class AppConfig(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    webitel: WebitelSettings
    creatio: CreatioConfig
    retry: RetrySettings = RetrySettings()
    sync: SyncSettings = SyncSettings()
    licenses: LicenseSettings = LicenseSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    state: StateSettings = StateSettings()
    serve: ServeSettings = ServeSettings()
    console: ConsoleSettings = ConsoleSettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (which arrives as init arguments).
        return env_settings, init_settings

    def secrets(self) -> list[str]:
        """Every secret value in force, for scrubbing text that leaves the process."""
        values = [
            self.webitel.token,
            self.webitel.password,
            self.creatio.password,
            self.creatio.client_secret,
            self.console.token,
            self.console.password,
        ]
        return [v.get_secret_value() for v in values if v is not None]

    @property
    def account_name(self) -> str:
        """The Account that created contacts belong to."""
        return self.sync.account_name or self.webitel.domain or _host(self.webitel.url)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]


def config_path(explicit: str | None = None) -> Path:
    """The config file to read: ``--config``, else ``WCSYNC_CONFIG``, else ``./config.toml``."""
    return Path(explicit or os.environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None, *, data: dict | None = None) -> AppConfig:
    """Read, merge and validate the configuration.

    A relative SQLite path in ``[state] url`` is resolved against the config file's folder, so
    every command run from any folder with the same config uses the same state store.

    Args:
        path: the TOML file (see ``config_path``); ignored when ``data`` is given.
        data: an already parsed mapping (tests, the demo); relative paths stay relative to the
            working folder.

    Raises:
        ConfigError: naming the file, the key path and what was expected.
    """
    data, source, base = _read(path, data)
    try:
        config = AppConfig(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source)) from None
    if base is not None:
        config.state.url = resolve_state_url(config.state.url, base)
    return config


class StateOnlyConfig(BaseSettings):
    """The ``[state]`` table alone: what read-only views (``history``) need; the rest is not checked."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    state: StateSettings = StateSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, *args: Any, **kwargs: Any):
        return env_settings, init_settings


def load_state_config(path: str | Path | None = None, *, data: dict | None = None) -> StateOnlyConfig:
    """Only ``[state]`` of the configuration (no credentials needed); see ``load_config``."""
    data, source, base = _read(path, data)
    try:
        config = StateOnlyConfig(**{k: v for k, v in data.items() if k == "state"})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source)) from None
    if base is not None:
        config.state.url = resolve_state_url(config.state.url, base)
    return config


def resolve_state_url(url: str, base: Path) -> str:
    """A ``sqlite:///relative/path`` made absolute against ``base`` (other URLs as they are)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, _, query = url[len(prefix) :].partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return prefix + str((base / path).resolve()) + (f"?{query}" if query else "")


def _read(path: str | Path | None, data: dict | None) -> tuple[dict, str, Path | None]:
    """The configuration as a mapping (file, then secret files), its source, and the file's folder."""
    source, base = "<given settings>", None
    if data is None:
        file = config_path(str(path) if path else None)
        source, base = str(file), file.resolve().parent
        if file.is_dir():
            raise ConfigError(f"{file}: is a folder, not a config file (pass --config FILE)")
        if not file.exists():
            raise ConfigError(
                f"{file}: config file not found (pass --config FILE or set WCSYNC_CONFIG; "
                f"config.example.toml is a commented starting point)"
            )
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
        warn_if_readable(file)
    return _merge(data, _secret_files()), source, base


def warn_if_readable(path: Path) -> None:
    """Warn when a file that may hold secrets can be read by other users of the machine."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "%s can be read by other users of this machine (mode %o); it may hold secrets: chmod 600 %s",
            path,
            mode & 0o777,
            path,
        )


def _secret_files() -> dict:
    folder = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    out: dict = {}
    if not folder or not Path(folder).is_dir():
        return out
    for item in sorted(Path(folder).iterdir()):
        parts = item.name.lower().split("__")
        if item.is_file() and len(parts) >= 2:
            warn_if_readable(item)
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = item.read_text(encoding="utf-8").strip()
    return out


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_errors(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<file>: <key.path>: <what was expected>`` (input values of secrets hidden)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
        kind = err["type"]
        message = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key (check the spelling against config.example.toml)"
        elif kind == "missing":
            message = "required key is missing"
        env = f"{ENV_PREFIX}{loc.upper().replace('.', '__')}"
        origin = f" (from environment {env})" if env in {k.upper() for k in os.environ} else ""
        lines.append(f"{source}: {loc or '(top level)'}{origin}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
