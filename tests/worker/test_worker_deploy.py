"""The deployment files agree with the worker: signals, stop timeout, health check, no root."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from jobs.config import ServeSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / "webitel-creatio-sync.service")
    return parser


def test_systemd_unit_stops_gracefully_as_a_dedicated_user():
    service = unit()["Service"]
    assert service["User"] not in ("", "root") and service["EnvironmentFile"].startswith("/etc/")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    # systemd must not SIGKILL a worker that is still inside its own stop timeout.
    assert int(service["TimeoutStopSec"]) > ServeSettings().stop_timeout_s
    assert service["ExecStart"].endswith(" serve") and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["StateDirectory"]


def test_dockerfile_runs_serve_unprivileged_with_a_health_check():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    instructions = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.setdefault(keyword, []).append(rest.strip())
    assert instructions["FROM"] == ["python:3.11-slim"]
    assert instructions["USER"] == ["wcsync"]
    assert json.loads(instructions["ENTRYPOINT"][0]) == ["webitel-creatio-sync"]
    assert json.loads(instructions["CMD"][-1]) == ["serve"]
    assert any("pip install ." in run for run in instructions["RUN"])
    [check] = instructions["HEALTHCHECK"]
    assert "/healthz" in check and "WCSYNC_SERVE__HTTP_PORT" in check
    assert "WCSYNC_SERVE__HTTP_PORT=9108" in " ".join(instructions["ENV"])
    assert instructions["STOPSIGNAL"] == ["SIGTERM"] and instructions["VOLUME"]
