"""Keeping extensions unique across the domain's Webitel users and all active Webitel-user records.

A write that would give two active records the same extension is not made: it becomes a
``duplicate_extension`` conflict naming both holders. The first holder keeps the extension: the
Webitel user that holds it now (Webitel keeps extensions unique and would refuse the other
write), then the record that holds it now (an existing link), then the lowest Webitel id. A loser whose record
already holds another extension keeps that one, which may in turn take it from someone else, so
the resolution repeats until nothing changes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mappings.keys import extension_key

from jobs.plan.model import Issue


@dataclass(frozen=True, slots=True)
class Claim:
    """A planned user asking for an extension on its (existing or new) record."""

    user_id: int
    label: str
    extension: str
    record: Any | None  # the existing record, if any
    current: str = ""  # the extension the Webitel user holds now


def resolve_extensions(
    claims: list[Claim], static_holders: dict[str, list[str]]
) -> tuple[set[int], list[Issue]]:
    """Decide which claims may be written.

    Args:
        claims: one per planned user with a non-empty extension.
        static_holders: extension -> labels of active records no planned user writes.

    Returns:
        The user ids whose extension must NOT be written, and one conflict per refused claim.
    """
    holders: dict[str, list[str]] = defaultdict(list)
    for ext, labels in static_holders.items():
        holders[extension_key(ext)] += labels
    holders = dict(holders)
    pending = {c.user_id: c for c in claims}
    refused: set[int] = set()
    issues: list[Issue] = []
    changed = True
    while changed:
        changed = False
        by_ext: dict[str, list[Claim]] = defaultdict(list)
        for claim in pending.values():
            by_ext[extension_key(claim.extension)].append(claim)
        for ext in sorted(by_ext):
            group = by_ext[ext]
            if ext in holders:
                winner = None
                holder = holders[ext][0]
            else:
                winner = min(group, key=lambda c: (extension_key(c.current) != ext, not _holds(c, ext),
                                                   c.user_id))
                holder = winner.label
            for claim in group:
                if claim is winner:
                    continue
                refused.add(claim.user_id)
                del pending[claim.user_id]
                issues.append(
                    Issue(
                        "duplicate_extension",
                        f"extension {ext} is already held by {holder}; not written",
                        user=claim.label,
                        webitel_id=claim.user_id,
                        field="extension",
                        others=(holder,),
                    )
                )
                old = claim.record.extension if claim.record is not None else ""
                if old and old != ext:
                    # The loser keeps the extension its record holds now.
                    holders.setdefault(old, []).append(claim.label)
                    changed = True
    return refused, issues


def _holds(claim: Claim, ext: str) -> bool:
    return claim.record is not None and extension_key(claim.record.extension) == ext
