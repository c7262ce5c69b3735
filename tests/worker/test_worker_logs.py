"""Log lines: run id and job on every line of a run, extra JSON fields, secrets never shown."""

from __future__ import annotations

import json
import logging
import sys

from jobs.logs import (JsonFormatter, TextFormatter, _ContextFilter, bind_run, register_secrets, scrub,
                       unbind_run)


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    made = logging.LogRecord("wcsync.worker", logging.INFO, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(made, key, value)
    _ContextFilter().filter(made)
    return made


def test_lines_of_a_run_carry_its_id_and_job_in_both_formats():
    token = bind_run("0123456789abcdef", "users")
    try:
        line = record("writing %d changes", 3)
    finally:
        unbind_run(token)
    assert TextFormatter().format(line) == "info [users 01234567] wcsync.worker: writing 3 changes"
    data = json.loads(JsonFormatter().format(line))
    assert data["run_id"] == "0123456789abcdef" and data["job"] == "users"
    assert data["message"] == "writing 3 changes"
    # Before a run has an id, the job alone.
    token = bind_run("", "licenses")
    try:
        early = record("skipped")
    finally:
        unbind_run(token)
    assert TextFormatter().format(early).startswith("info [licenses] ")
    assert "run_id" not in json.loads(JsonFormatter().format(early))
    assert "[" not in TextFormatter().format(record("outside any run"))


def test_extra_fields_join_the_json_line_but_cannot_replace_its_own():
    line = record("done", fields={"outcome": "in_sync", "counts": {"applied": 2}, "message": "forged"})
    data = json.loads(JsonFormatter().format(line))
    assert data["outcome"] == "in_sync" and data["counts"] == {"applied": 2} and data["message"] == "done"


def test_registered_secrets_never_reach_a_line():
    plain, quoted = "wk-plain-secret-1234", 'pa"ss\\word-5678'
    register_secrets([plain, quoted])
    try:
        raise RuntimeError(f"login failed for token {plain}")
    except RuntimeError:
        exc_info = sys.exc_info()
    line = record("sent %s and %s", plain, quoted, exc_info=exc_info)
    text, as_json = TextFormatter().format(line), JsonFormatter().format(line)
    for out in (text, as_json):
        assert plain not in out and "***" in out
    assert quoted not in text and json.dumps(quoted)[1:-1] not in as_json
    data = json.loads(as_json)
    assert data["message"] == "sent *** and ***" and "token ***" in data["exception"]
    assert scrub(f"url?key={plain}") == "url?key=***"
