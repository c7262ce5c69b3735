"""The run report: a pure function of the plan and the outcomes, as JSON or as text."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jobs import exit_codes
from jobs.apply.engine import ApplyResult
from jobs.plan import Issue, Plan


@dataclass
class RunReport:
    """One job's run: its plan, what was applied, and how it ended.

    Outcomes: ``in_sync``; ``conflicts`` (finished, something left for an administrator);
    ``failed`` (with ``failure``, the reason); ``interrupted`` (stopped by a signal, a lost lease or
    a dead process: what was applied stays, a re-run continues); ``refused`` (a safety cap or a
    budget stopped it before anything destructive); ``planned`` for a dry run.
    """

    run_id: str
    job: str
    dry_run: bool
    plan: Plan
    applied: ApplyResult | None = None
    failure: str = ""
    interrupted: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    ignored: tuple[Issue, ...] = ()  # conflicts an administrator accepted: reported, not counted

    @property
    def errors(self) -> list[Issue]:
        return list(self.plan.errors) + (self.applied.errors if self.applied else [])

    @property
    def outcome(self) -> str:
        if self.failure:
            return "failed"
        if self.interrupted:
            return "interrupted"
        if self.plan.guard is not None:
            return "refused"
        if self.plan.conflicts or self.errors:
            return "conflicts"
        return "planned" if self.dry_run else "in_sync"

    def exit_code(self) -> int:
        if self.outcome in ("failed", "refused", "interrupted"):
            return exit_codes.FAILED
        if self.outcome == "conflicts":
            return exit_codes.CONFLICTS
        return exit_codes.OK

    def counts(self) -> dict[str, int]:
        """Changes by kind, and the conflicts, warnings and errors.

        Once a plan was applied (even in part), the changes by kind are those that landed, and
        ``planned`` says how many were planned: an interrupted run never counts as made what
        was not.
        """
        counts = self.plan.counts()
        counts["errors"] = len(self.errors)
        if self.ignored:
            counts["ignored"] = len(self.ignored)
        if self.applied is not None:
            landed = Counter(o.action.kind for o in self.applied.outcomes if o.ok)
            counts.update({kind: landed.get(kind, 0) for kind in Counter(a.kind for a in self.plan.actions)})
            counts["planned"] = len(self.plan.actions)
            counts["applied"] = sum(1 for o in self.applied.outcomes if o.ok and o.action.writes)
            counts["failed"] = sum(1 for o in self.applied.outcomes if not o.ok)
        return counts

    def iter_actions(self):
        """Every action as a JSON-ready dict, with its outcome once applied (lazily: runs can be large)."""
        outcomes = {id(o.action): o for o in self.applied.outcomes} if self.applied else {}
        for action in self.plan.actions:
            item = action.as_dict()
            done = outcomes.get(id(action))
            if done is not None:
                item["outcome"] = "applied" if done.ok else "failed"
                if done.message:
                    item["message"] = done.message
            yield item

    def as_json(self, *, actions: bool = True) -> dict[str, Any]:
        out = {"run_id": self.run_id, "job": self.job, "dry_run": self.dry_run, "outcome": self.outcome,
               "counts": self.counts(), "actions": list(self.iter_actions()) if actions else [],
               "conflicts": [c.as_dict() for c in self.plan.conflicts],
               "warnings": [w.as_dict() for w in self.plan.warnings],
               "errors": [e.as_dict() for e in self.errors]}
        out["ignored"] = [i.as_dict() for i in self.ignored]
        if self.failure:
            out["failure"] = self.failure
        if self.plan.guard is not None:
            out["refused"] = {**self.plan.guard.as_dict(), "users": list(self.plan.guard.others)}
        out.update(self.details)
        return out


def text_width() -> int | None:
    """The width to wrap human output at: ``COLUMNS`` when set, the terminal's when there is one,
    else None (output to a pipe or a file stays one line per message, for grep and log shippers)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(40, int(columns))
    if sys.stdout.isatty() or sys.stderr.isatty():
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    return None


def fit(text: str, indent: str = "", more: str = "    ") -> str:
    """``text`` wrapped to ``text_width()`` after ``indent``; the lines after the first are indented
    by ``more`` again. Long words (ids, URLs) are broken. Not wrapped when there is no width."""
    width = text_width()
    if width is None:
        return indent + text
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent + more,
                         break_long_words=True, break_on_hyphens=False)


def fit_lines(text: str) -> str:
    """Every line of ``text`` wrapped by ``fit``, keeping each line's own indentation."""
    out = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        out.append(fit(stripped, line[:len(line) - len(stripped)]) if stripped else "")
    return "\n".join(out)


class Fitted:
    """A text stream whose every line is wrapped by ``fit`` (for a command's human output; never
    for JSON). Whatever else the caller asks of it goes to the stream underneath."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._stream.write(fit_lines(line) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(fit_lines(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def read_lines(details: dict[str, Any]) -> list[str]:
    """How the run read, in words: everything, or what changed since the last cycle, and why."""
    mode = details.get("mode")
    if mode == "incremental":
        carried = details.get("carried_conflicts", 0)
        return ["  read: what changed since the last cycle (incremental)"
                + (f"; {carried} conflict(s) of users it did not read carried over" if carried else "")]
    if mode == "full":
        why = details.get("fallback")
        return [f"  read: everything (full){': ' + why if why else ''}"]
    return []


def render_text(report: RunReport, *, limit: int = 20) -> str:
    """A short human summary: counts, then the conflicts, errors and (on a dry run) the actions."""
    lines = [
        f"{report.job}: {report.outcome.replace('_', ' ')}"
        f"{' (dry run: nothing written)' if report.dry_run else ''}"
        f"  run {report.run_id}"
    ]
    lines += read_lines(report.details)
    kinds = Counter(a.kind for a in report.plan.actions)
    if kinds:
        verb = "planned" if report.dry_run else "actions"
        lines.append(
            f"  {verb}: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
        )
    else:
        lines.append("  nothing to change")
    if report.applied is not None:
        counts = report.counts()
        lines.append(f"  written: {counts.get('applied', 0)}, failed: {counts.get('failed', 0)}")
    if report.failure:
        lines.append(f"  FAILED: {report.failure}")
    if report.interrupted:
        lines.append(f"  INTERRUPTED: what was written stays; re-run to continue (run {report.run_id})")
    guard = report.plan.guard
    if guard is not None and guard.others:
        lines.append(f"  {guard.kind}: the {len(guard.others)} users it would touch:")
        lines += [f"    - {who}" for who in guard.others[:limit]]
        if len(guard.others) > limit:
            lines.append(f"    ... and {len(guard.others) - limit} more (see --json)")
    for title, issues in (
        ("conflicts (left for an administrator)", report.plan.conflicts),
        ("errors", report.errors),
        ("warnings", report.plan.warnings),
        ("ignored (accepted by an administrator)", report.ignored),
    ):
        if not issues:
            continue
        lines.append(f"  {title}: {len(issues)}")
        for issue in issues[:limit]:
            who = f"{issue.user}: " if issue.user else ""
            others = (
                f" [{'; '.join(issue.others[:3])}]"
                if issue.others and issue.kind != "duplicate_extension"
                else ""
            )
            lines.append(f"    - {issue.kind}: {who}{issue.message}{others}")
        if len(issues) > limit:
            lines.append(
                f"    ... and {len(issues) - limit} more (see --json or history {report.run_id[:8]})"
            )
    trace = report.details.get("trace")
    if trace:
        lines.append("  trace:")
        lines += [f"    {step}" for step in trace]
    if report.dry_run and report.plan.actions and not trace:
        lines.append("  plan:")
        for action in report.plan.actions[:limit]:
            change = ""
            if action.old is not None and action.new is not None:
                change = ": " + ", ".join(
                    f"{k} {action.old.get(k)!r} -> {v!r}" for k, v in action.new.items()
                )
            lines.append(f"    {action.kind} {action.object} {action.user or action.key}{change}")
        if len(report.plan.actions) > limit:
            lines.append(f"    ... and {len(report.plan.actions) - limit} more (see --json)")
    return fit_lines("\n".join(lines))


OUTCOME_ORDER = ("failed", "interrupted", "refused", "conflicts", "planned", "in_sync")


def combined_json(reports: list[RunReport], *, actions: bool = True) -> dict[str, Any]:
    """One JSON object for a cycle of several jobs (one job: that job's report as it is).

    ``run_id`` is the first job's; ``run_ids`` names each job's run (what ``history`` shows);
    actions, conflicts, warnings and errors carry the ``job`` they belong to; counts are summed.
    """
    if len(reports) == 1:
        return reports[0].as_json(actions=actions)
    parts = [r.as_json(actions=actions) for r in reports]
    out: dict[str, Any] = {
        "run_id": parts[0]["run_id"],
        "run_ids": {p["job"]: p["run_id"] for p in parts},
        "dry_run": parts[0]["dry_run"],
        "outcome": min((p["outcome"] for p in parts), key=OUTCOME_ORDER.index),
        "counts": dict(sum((Counter(p["counts"]) for p in parts), Counter())),
    }
    for key in ("actions", "conflicts", "warnings", "errors", "ignored"):
        out[key] = [{**item, "job": p["job"]} for p in parts for item in p[key]]
    out["jobs"] = {
        p["job"]: {
            k: v for k, v in p.items() if k not in ("actions", "conflicts", "warnings", "errors", "ignored")
        }
        for p in parts
    }
    return out


def write_json(reports: list[RunReport], out) -> None:
    """``combined_json(reports)`` written to ``out`` as it is encoded, one action at a time.

    A run of tens of thousands of actions would otherwise be built as one large tree and one large
    string before a byte is written.
    """
    head = combined_json_without_actions(reports)
    out.write("{\n")
    for key, value in head.items():
        out.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, default=str)},\n")
    out.write('  "actions": [')
    first = True
    for report in reports:
        for item in report.iter_actions():
            if len(reports) > 1:
                item["job"] = report.job
            out.write(("\n    " if first else ",\n    ") + json.dumps(item, ensure_ascii=False, default=str))
            first = False
    out.write("\n  ]\n}\n")


def combined_json_without_actions(reports: list[RunReport]) -> dict[str, Any]:
    if len(reports) == 1:
        data = reports[0].as_json(actions=False)
        data.pop("actions")
        return data
    data = combined_json(reports, actions=False)
    data.pop("actions")
    return data
