"""The three-way merge of licence grants (user x licence), pure.

Webitel's grants (each user's ``license`` list) and Creatio's ("User Licenses" rows) are merged
against the baseline stored after the last successful licence sync:

==========  ==========  ==========  =========================================
in Webitel  in Creatio  in baseline  outcome
==========  ==========  ==========  =========================================
yes         yes         any         in sync (both added it: nothing to do)
yes         no          no          added in Webitel -> add in Creatio
yes         no          yes         removed in Creatio -> revoke in Webitel
no          yes         no          added in Creatio -> grant in Webitel
no          yes         yes         removed in Webitel -> remove in Creatio
no          no          yes         removed on both sides -> drop from baseline
==========  ==========  ==========  =========================================

With no baseline yet, the configured side wins: its set is copied to the other side.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.read.snapshots import Grant


@dataclass(frozen=True)
class Merge:
    """What the merge decided, before refusals and caps."""

    add_creatio: frozenset[Grant]     # carry to Creatio (a row to create)
    remove_creatio: frozenset[Grant]  # remove from Creatio (a row to delete)
    grant_webitel: frozenset[Grant]   # carry to Webitel (grant)
    revoke_webitel: frozenset[Grant]  # remove from Webitel (revoke)


def merge_grants(webitel: frozenset[Grant], creatio: frozenset[Grant], baseline: frozenset[Grant] | None,
                 *, first_run_winner: str = "webitel") -> Merge:
    """Decide every grant's fate (see the module table)."""
    if baseline is None:
        if first_run_winner == "creatio":
            return Merge(frozenset(), frozenset(), creatio - webitel, webitel - creatio)
        return Merge(webitel - creatio, creatio - webitel, frozenset(), frozenset())
    only_webitel = webitel - creatio
    only_creatio = creatio - webitel
    return Merge(add_creatio=only_webitel - baseline, revoke_webitel=only_webitel & baseline,
                 grant_webitel=only_creatio - baseline, remove_creatio=only_creatio & baseline)


def next_baseline(webitel_after: frozenset[Grant], creatio_after: frozenset[Grant],
                  baseline: frozenset[Grant] | None) -> frozenset[Grant]:
    """The baseline after a run: it advances only for grants that now agree on both sides.

    A grant present on both sides joins it, one absent from both leaves it, and one that still
    differs (refused, failed, held back by a cap) keeps its old membership, so the next run sees
    the same change again.
    """
    agree_present = frozenset(webitel_after & creatio_after)
    # Without building the grants that differ (a set as large as both sides on a first run).
    kept = [g for g in baseline or () if (g in webitel_after) != (g in creatio_after)]
    return agree_present.union(kept) if kept else agree_present
