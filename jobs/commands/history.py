"""``history``: recent runs, one run's per-object events, or one object's events across runs."""

from __future__ import annotations

import argparse
import sys
import json
from typing import TextIO

from connector.errors import ConfigError

from jobs import exit_codes
from jobs.commands import config_of
from jobs.config import AppConfig
from jobs.wiring import state_store


def _run_dict(run) -> dict:
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "run_id": run.run_id,
        "job": run.job,
        "dry_run": run.dry_run,
        "outcome": run.outcome,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": round(duration, 3) if duration is not None else None,
        "counts": run.counts,
        "conflicts": run.conflicts,
        "errors": run.errors,
    }


def _event_dict(event) -> dict:
    out = {"action": event.action, "object": event.object, "key": event.key, "outcome": event.outcome}
    for name in ("old", "new"):
        if getattr(event, name) is not None:
            out[name] = getattr(event, name)
    if event.message:
        out["message"] = event.message
    if event.at is not None:
        out["at"] = event.at.isoformat()
    return out


def _change(event) -> str:
    if event.old is None and event.new is None:
        return ""
    if event.old is None:
        return " " + ", ".join(f"{k}={v!r}" for k, v in (event.new or {}).items())
    return " " + ", ".join(f"{k} {event.old.get(k)!r} -> {v!r}" for k, v in (event.new or {}).items())


def show_history(
    config: AppConfig, *, run_id: str | None, limit: int, as_json: bool, key: str | None, out: TextIO
) -> int:
    with state_store(config) as store:
        if key:
            rows = store.object_history(key, limit=limit)
            if as_json:
                print(
                    json.dumps(
                        [{"run": _run_dict(r), "event": _event_dict(e)} for r, e in rows],
                        indent=2,
                        ensure_ascii=False,
                    ),
                    file=out,
                )
            else:
                if not rows:
                    print(f"no events for {key}", file=out)
                for run, event in rows:
                    print(
                        f"{run.started_at:%Y-%m-%d %H:%M:%S} {run.run_id[:8]} {event.action} {event.outcome}"
                        f"{_change(event)}{' — ' + event.message if event.message else ''}",
                        file=out,
                    )
            return exit_codes.OK
        if run_id:
            try:
                run = store.get_run(run_id)
            except LookupError as exc:  # a prefix that matches several runs
                raise ConfigError(f"run id {run_id!r} is ambiguous: {exc}") from None
            if run is None:
                raise ConfigError(f"no run {run_id!r} in the state store")
            events = store.run_events(run.run_id)
            if as_json:
                print(
                    json.dumps(
                        {**_run_dict(run), "events": [_event_dict(e) for e in events]},
                        indent=2,
                        ensure_ascii=False,
                    ),
                    file=out,
                )
            else:
                d = _run_dict(run)
                print(
                    f"run {run.run_id} {run.job} {run.outcome}{' (dry run)' if run.dry_run else ''} "
                    f"started {d['started_at']} took {d['duration_s']}s",
                    file=out,
                )
                for event in events:
                    print(
                        f"  {event.action:<24} {event.key:<28} {event.outcome:<16}{_change(event)}"
                        f"{' — ' + event.message if event.message else ''}",
                        file=out,
                    )
            return exit_codes.OK
        runs = store.recent_runs(limit)
        if as_json:
            print(json.dumps([_run_dict(r) for r in runs], indent=2, ensure_ascii=False), file=out)
            return exit_codes.OK
        if not runs:
            print("no runs yet", file=out)
        for run in runs:
            d = _run_dict(run)
            changes = sum(
                v
                for k, v in run.counts.items()
                if k not in ("conflicts", "warnings", "errors", "applied", "failed")
            )
            print(
                f"{run.run_id[:8]}  {d['started_at'][:19]}  {run.job:<9} {run.outcome:<14} "
                f"{d['duration_s'] if d['duration_s'] is not None else '-':>8}s  changes {changes:<6} "
                f"conflicts {run.conflicts:<4} errors {run.errors}{'  (dry run)' if run.dry_run else ''}",
                file=out,
            )
    return exit_codes.OK


def cmd_history(args: argparse.Namespace) -> int:
    """Recent runs, one run's events, or one object's events across runs."""
    return show_history(
        config_of(args),
        run_id=args.run_id,
        limit=args.limit,
        as_json=args.json,
        key=args.object,
        out=sys.stdout,
    )
