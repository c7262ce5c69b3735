"""Logging: human lines on a terminal, JSON lines for log shippers; secrets scrubbed from both.

Every record may carry ``run_id`` and ``job`` (bound with ``bind_run``); the JSON formatter writes
them as fields, together with any ``extra={"fields": {...}}`` a line passes (a run's outcome,
counts and duration, say).

The secrets scrubbed are the process-wide list here (``register_secrets``: the configured
passwords and tokens, a licence key being uploaded) and, asked at every line, what each live client
holds right now (``connector.secrets.live_secrets``: session cookies, CSRF and access tokens).
Decision: the formatters ask the live clients rather than have the clients register what they
learn. A client's secrets are known the moment it holds them (a cookie set by any answer, a
renewed token) without a hook that could be forgotten, and nothing piles up in a worker that logs
in again for weeks: a client's session secrets leave the list with the client. What a client said
while it lived is safe without it: its errors scrub their text when they are made.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone

from connector.errors import redact
from connector.secrets import MASK, live_secrets

_run: contextvars.ContextVar[dict] = contextvars.ContextVar("wcsync_run", default={})
_secrets: list[str] = []


def register_secrets(values: list[str]) -> None:
    """Values that must never appear in a log line (tokens, passwords)."""
    _secrets.extend(v for v in values if v and v not in _secrets)


def secrets_in_force() -> list[str]:
    """The registered secrets and those every live client holds now."""
    return [*_secrets, *live_secrets()]


def scrub(text: str) -> str:
    """``text`` with every secret in force replaced, in any encoding (for text that leaves the
    process otherwise: a run report, a health answer)."""
    return redact(text, secrets_in_force())


def bind_run(run_id: str, job: str) -> contextvars.Token:
    """Tag every following log record of this context (thread) with the run id and job.

    ``run_id`` may be empty: the lines then carry the job alone (before a run has an id).
    """
    return _run.set({"run_id": run_id, "job": job})


def unbind_run(token: contextvars.Token) -> None:
    """Undo the ``bind_run`` that returned ``token``."""
    _run.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _run.get().items():
            setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", None) or ""
        tag = " ".join(filter(None, (getattr(record, "job", None), run_id[:8])))
        run = f" [{tag}]" if tag else ""
        line = f"{record.levelname.lower()}{run} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line, secrets_in_force())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "job"):
            if getattr(record, key, None):
                out[key] = getattr(record, key)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        held = secrets_in_force()
        text = json.dumps(_scrubbed(out, held), ensure_ascii=False, default=str)
        # The values were scrubbed before serialising; the line again after it, for a secret that
        # only serialising forms (one with a backslash that JSON escaping completes, say).
        line = redact(text, held)
        if line != text:
            try:
                json.loads(line)
            except ValueError:  # the replacement broke the line's syntax: say so, show nothing
                kept = {key: out[key] for key in ("time", "level", "logger", "run_id", "job") if key in out}
                return json.dumps(kept | {"message": f"{MASK} (line withheld: it held a secret)"})
        return line


def _scrubbed(value, held: list[str]):
    """``value`` (a JSON-able tree) with every string scrubbed; other values as ``str`` would show."""
    if isinstance(value, dict):
        return {key: _scrubbed(item, held) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item, held) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(value if isinstance(value, str) else str(value), held)


def setup_logging(level: str = "WARNING", fmt: str = "text") -> None:
    """Configure the root logger once for the process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_wcsync", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._wcsync = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
