"""The values a plan is made of: actions to apply and issues to report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jobs.read.snapshots import Issue

__all__ = ["Action", "Issue", "Plan"]


@dataclass(frozen=True, slots=True)
class Action:
    """One write the run intends to make (or, for ``link_record``, one state-store link to keep).

    Attributes:
        kind: e.g. ``create_contact``, ``update_record``, ``deactivate_record``.
        object: the logical object: ``Account``, ``Contact``, ``WebitelUser``, ``ContactCommunication``.
        id: the Creatio Id written (chosen by us for creates).
        key: a stable key for history: ``webitel_user:17``, ``account:contact center``.
        user: the Webitel user as an admin knows it (``ann (id 17)``), or "".
        webitel_id: the Webitel user's id, when the action is about one.
        old: the values before (logical field names), for updates.
        new: the values after.
        depends_on: Ids created earlier in the same plan that this write refers to.
        link_extra: what the state-store link of this user records once the action lands (the
            name and extension both sides agree on, the baseline of the next field merge).
    """

    kind: str
    object: str
    id: str
    key: str
    user: str = ""
    webitel_id: int | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    depends_on: tuple[str, ...] = ()
    link_extra: dict[str, Any] | None = None

    @property
    def writes(self) -> bool:
        """Whether applying it sends a request (``link_record`` only touches the state store)."""
        return self.kind != "link_record"

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "object": self.object, "id": self.id, "key": self.key}
        if self.user:
            out["user"] = self.user
        if self.webitel_id is not None:
            out["webitel_id"] = self.webitel_id
        if self.old is not None:
            out["old"] = self.old
        if self.new is not None:
            out["new"] = self.new
        return out


@dataclass(frozen=True)
class Plan:
    """What a run will do, and what it found wrong. ``guard`` is set when a safety brake tripped."""

    job: str
    actions: tuple[Action, ...] = ()
    conflicts: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    errors: tuple[Issue, ...] = ()
    guard: Issue | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Actions by kind, plus conflicts, warnings and errors."""
        out = dict(Counter(a.kind for a in self.actions))
        out.update(conflicts=len(self.conflicts), warnings=len(self.warnings), errors=len(self.errors))
        return out

    @property
    def writes(self) -> int:
        return sum(1 for a in self.actions if a.writes)
