"""Logging: human lines on a terminal, JSON lines for log shippers; secrets scrubbed from both.

Every record may carry ``run_id`` and ``job`` (bound with ``bind_run``); the JSON formatter writes
them as fields, together with any ``extra={"fields": {...}}`` a line passes (a run's outcome,
counts and duration, say).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone

from connector.errors import redact

_run: contextvars.ContextVar[dict] = contextvars.ContextVar("wcsync_run", default={})
_secrets: list[str] = []


def register_secrets(values: list[str]) -> None:
    """Values that must never appear in a log line (tokens, passwords)."""
    _secrets.extend(v for v in values if v and v not in _secrets)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced (for text that leaves the process otherwise)."""
    return redact(text, _secrets)


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
        return redact(line, _secrets)


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
        text = json.dumps(out, ensure_ascii=False, default=str)
        # A secret with a quote or a backslash in it appears JSON-escaped in the line.
        return redact(redact(text, _secrets), [json.dumps(v, ensure_ascii=False)[1:-1] for v in _secrets])


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
