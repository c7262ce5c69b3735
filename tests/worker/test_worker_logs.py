"""Log lines: run id and job on every line of a run, extra JSON fields, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

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


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("argv, terminal, expected", [
    (["serve", "--log-format", "text"], False, "text"),
    (["--log-format", "json", "serve", "--log-format", "text"], False, "text"),
    (["serve", "--log-format", "json"], True, "json"),
    (["serve"], False, "json"),
    (["serve"], True, "text"),
    (["--log-format", "json", "serve"], True, "json"),
    (["--log-format", "text", "serve"], False, "text"),
])
def test_serve_log_format_given_wins_and_auto_follows_the_terminal(argv, terminal, expected, tmp_path,
                                                                   monkeypatch):
    from jobs import cli
    from jobs.commands import serve

    path = tmp_path / "config.toml"
    path.write_text('[webitel]\nurl = "http://127.0.0.1:9/api"\ntoken = "t0ken-value-1"\n'
                    '[creatio]\nurl = "http://127.0.0.1:9"\nusername = "u"\npassword = "p4ssword-value"\n',
                    encoding="utf-8")
    path.chmod(0o600)
    chosen = []
    monkeypatch.setattr(sys, "stderr", Terminal() if terminal else io.StringIO())
    monkeypatch.setattr("jobs.logs.setup_logging", lambda level, fmt: None)  # the one before the command
    monkeypatch.setattr(serve, "setup_logging", lambda level, fmt: chosen.append(fmt))
    monkeypatch.setattr("jobs.worker.service.serve", lambda config: 0)
    assert cli.main(["--config", str(path), *argv]) == 0
    assert chosen == [expected]
