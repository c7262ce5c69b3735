"""``history``: recent runs, one run's per-object events, or one object's events across runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from jobs import exit_codes
from jobs.config import config_path, load_state_config
from jobs.report import fit
from jobs.state import StateStore
from jobs.state.store import MIN_RUN_PREFIX
from jobs.sync.cycle import mark_abandoned_runs


MODES = {"full": "full", "incremental": "incr"}  # the history table's "read" column


def run_dict(run) -> dict:
    """One run of the history as JSON: the same for ``history --json`` and the HTTP API."""
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
        **({"mode": run.report["mode"]} if run.report and run.report.get("mode") else {}),
        **({"failure": _reason(run)} if _reason(run) else {}),
        **({"approved": run.report["approved"]} if run.report and run.report.get("approved") else {}),
    }


def _reason(run) -> str:
    """Why a run failed (or was interrupted or refused), as recorded with it."""
    report = run.report or {}
    if report.get("failure"):
        return str(report["failure"])
    if run.outcome == "refused" and isinstance(report.get("refused"), dict):
        return str(report["refused"].get("message", ""))
    return ""


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


def object_keys(store, wanted: str) -> tuple[str, list[str]]:
    """The event keys of one user's story: ``wanted`` is a Webitel id, a username, or an event key.

    Returns the user's label and the keys (the record, its contact, its extension and its grants).
    """
    if ":" in wanted:
        return wanted, [wanted]
    webitel_id = wanted if wanted.isdigit() else store.webitel_id_of(wanted)
    if webitel_id is None:
        return wanted, []
    return f"{wanted} (id {webitel_id})" if not wanted.isdigit() else f"Webitel user {webitel_id}", [
        f"webitel_user:{webitel_id}", f"contact:{webitel_id}", f"extension_comm:{webitel_id}",
        f"grant:{webitel_id}:"]


def show_history(
    config, *, run_id: str | None, limit: int, as_json: bool, key: str | None, out: TextIO
) -> int:
    with StateStore.open(config.state.url) as store:
        marked = mark_abandoned_runs(store)
        if marked and not as_json:
            print(f"({marked} run(s) whose process had ended were marked interrupted)", file=out)
        if run_id and len(run_id) < MIN_RUN_PREFIX and store.get_run(run_id) is None:
            print(f"history: give at least {MIN_RUN_PREFIX} characters of a run id (got {run_id!r})",
                  file=sys.stderr)
            return exit_codes.USAGE
        if key:
            label, keys = object_keys(store, key)
            if not keys:
                print(f"no Webitel user {key!r} in the history (try its Webitel id)", file=out)
                return exit_codes.OK
            rows = store.object_history(keys, limit=limit)
            if as_json:
                print(
                    json.dumps(
                        [{"run": run_dict(r), "event": _event_dict(e)} for r, e in rows],
                        indent=2,
                        ensure_ascii=False,
                    ),
                    file=out,
                )
            else:
                if not rows:
                    print(f"no events for {label}", file=out)
                elif len(keys) > 1:
                    print(f"the story of {label}, newest first:", file=out)
                for run, event in rows:
                    note = f" — {event.message}" if event.message else ""
                    text = (f"{run.started_at:%Y-%m-%d %H:%M} {run.run_id[:8]} {event.key} {event.action} "
                            f"{event.outcome}{_change(event)}{note}")
                    print(fit(text), file=out)
            return exit_codes.OK
        if run_id:
            try:
                run = store.get_run(run_id)
            except LookupError as exc:  # a prefix that matches several runs
                print(f"history: {exc}", file=sys.stderr)
                return exit_codes.USAGE
            if run is None:
                print(f"history: no run {run_id!r} in the state store", file=sys.stderr)
                return exit_codes.USAGE
            events = store.run_events(run.run_id)
            if as_json:
                print(
                    json.dumps(
                        {**run_dict(run), "events": [_event_dict(e) for e in events]},
                        indent=2,
                        ensure_ascii=False,
                    ),
                    file=out,
                )
            else:
                d = run_dict(run)
                print(f"run {run.run_id}", file=out)
                print(
                    f"  {run.job} {run.outcome}{' (dry run)' if run.dry_run else ''}"
                    f"{' (' + d['mode'] + ' read)' if d.get('mode') else ''}, started "
                    f"{d['started_at'][:19]}, took {d['duration_s']}s",
                    file=out,
                )
                for line in _counts_lines(run):
                    print(line, file=out)
                if d.get("failure"):
                    print(fit(f"reason: {d['failure']}", "  "), file=out)
                for event in events:
                    text = f"{event.action} {event.key} {event.outcome}{_change(event)}"
                    print(fit(text + (f" — {event.message}" if event.message else ""), "  "), file=out)
            return exit_codes.OK
        runs = store.recent_runs(limit)
        if as_json:
            print(json.dumps([run_dict(r) for r in runs], indent=2, ensure_ascii=False), file=out)
            return exit_codes.OK
        if not runs:
            print("no runs yet", file=out)
            return exit_codes.OK
        print(
            f"{'run':<8} {'started':<11} {'job':<8} {'outcome':<12} {'read':<5} {'took':>6} {'changes':>7} "
            f"{'confl.':>6} {'errors':>6}",
            file=out,
        )
        for run in runs:
            d = run_dict(run)
            took = f"{d['duration_s']:.1f}s" if d["duration_s"] is not None else "-"
            outcome = run.outcome + ("*" if run.dry_run else "")
            print(
                f"{run.run_id[:8]} {run.started_at:%m-%d %H:%M} {run.job:<8} {outcome:<12} "
                f"{MODES.get(d.get('mode', ''), ''):<5} {took:>6} "
                f"{_changes(run):>7} {run.conflicts:>6} {run.errors:>6}",
                file=out,
            )
            if d.get("failure"):
                print(fit(f"reason: {d['failure']}", "  "), file=out)
        if any(r.dry_run for r in runs):
            print("* a dry run: planned, nothing written", file=out)
    return exit_codes.OK


META = ("conflicts", "warnings", "errors", "applied", "failed", "planned")


def _changes(run) -> int:
    """Changes made (planned, for a dry run): what landed once a plan was applied."""
    if "applied" in run.counts:
        return run.counts["applied"]
    return sum(v for k, v in run.counts.items() if k not in META)


def _counts_lines(run) -> list[str]:
    kinds = ", ".join(
        f"{n} {k.replace('_', ' ')}" for k, n in sorted(run.counts.items()) if n and k not in META
    )
    verb = "planned" if run.dry_run else "made"
    lines = [fit(f"{verb}: {kinds or 'nothing'}", "  ")]
    if "planned" in run.counts:
        lines.append(
            f"  {run.counts.get('applied', 0)} written of {run.counts['planned']} planned, "
            f"{run.counts.get('failed', 0)} failed"
        )
    return lines


def cmd_history(args: argparse.Namespace) -> int:
    """Recent runs, one run's events, or one user's story; reads only the state store."""
    return show_history(
        load_state_config(config_path(args.config)),
        run_id=args.run_id,
        limit=args.limit,
        as_json=args.json,
        key=args.object,
        out=sys.stdout,
    )
