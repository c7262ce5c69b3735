"""The run report: a pure function of the plan and the outcomes, as JSON or as text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import exit_codes
from .apply import ApplyResult
from .plan import Issue, Plan


@dataclass
class RunReport:
    run_id: str
    job: str
    dry_run: bool
    plan: Plan
    applied: ApplyResult | None = None
    failure: str = ""
    interrupted: bool = False
    details: dict[str, Any] = field(default_factory=dict)

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
            return "guard_tripped"
        if self.plan.conflicts or self.errors:
            return "conflicts"
        return "planned" if self.dry_run else "in_sync"

    def exit_code(self) -> int:
        if self.outcome in ("failed", "guard_tripped", "interrupted"):
            return exit_codes.FAILED
        if self.outcome == "conflicts":
            return exit_codes.CONFLICTS
        return exit_codes.OK

    def counts(self) -> dict[str, int]:
        counts = self.plan.counts()
        counts["errors"] = len(self.errors)
        if self.applied is not None:
            counts["applied"] = sum(1 for o in self.applied.outcomes if o.ok and o.action.writes)
            counts["failed"] = sum(1 for o in self.applied.outcomes if not o.ok)
        return counts

    def as_json(self) -> dict[str, Any]:
        outcomes = {id(o.action): o for o in self.applied.outcomes} if self.applied else {}
        actions = []
        for action in self.plan.actions:
            item = action.as_dict()
            done = outcomes.get(id(action))
            if done is not None:
                item["outcome"] = "applied" if done.ok else "failed"
                if done.message:
                    item["message"] = done.message
            actions.append(item)
        out = {"run_id": self.run_id, "job": self.job, "dry_run": self.dry_run, "outcome": self.outcome,
               "counts": self.counts(), "actions": actions,
               "conflicts": [c.as_dict() for c in self.plan.conflicts],
               "warnings": [w.as_dict() for w in self.plan.warnings],
               "errors": [e.as_dict() for e in self.errors]}
        if self.failure:
            out["failure"] = self.failure
        out.update(self.details)
        return out


def render_text(report: RunReport, *, limit: int = 20) -> str:
    """A short human summary: counts, then the conflicts, errors and (on a dry run) the actions."""
    lines = [f"{report.job}: {report.outcome.replace('_', ' ')}{' (dry run: nothing written)' if report.dry_run else ''}"
             f"  run {report.run_id}"]
    kinds = Counter(a.kind for a in report.plan.actions)
    if kinds:
        verb = "planned" if report.dry_run else "actions"
        lines.append(f"  {verb}: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())))
    else:
        lines.append("  nothing to change")
    if report.applied is not None:
        counts = report.counts()
        lines.append(f"  written: {counts.get('applied', 0)}, failed: {counts.get('failed', 0)}")
    if report.failure:
        lines.append(f"  FAILED: {report.failure}")
    for title, issues in (("conflicts (left for an administrator)", report.plan.conflicts),
                          ("errors", report.errors), ("warnings", report.plan.warnings)):
        if not issues:
            continue
        lines.append(f"  {title}: {len(issues)}")
        for issue in issues[:limit]:
            who = f"{issue.user}: " if issue.user else ""
            others = f" [{'; '.join(issue.others[:3])}]" if issue.others and issue.kind != "duplicate_extension" else ""
            lines.append(f"    - {issue.kind}: {who}{issue.message}{others}")
        if len(issues) > limit:
            lines.append(f"    ... and {len(issues) - limit} more (see --json or history {report.run_id[:8]})")
    if report.dry_run and report.plan.actions:
        lines.append("  plan:")
        for action in report.plan.actions[:limit]:
            change = ""
            if action.old is not None and action.new is not None:
                change = ": " + ", ".join(f"{k} {action.old.get(k)!r} -> {v!r}" for k, v in action.new.items())
            lines.append(f"    {action.kind} {action.object} {action.user or action.key}{change}")
        if len(report.plan.actions) > limit:
            lines.append(f"    ... and {len(report.plan.actions) - limit} more (see --json)")
    return "\n".join(lines)
