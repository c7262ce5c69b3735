"""Reading a set of rows at the fewest requests: by values in URL-sized chunks, or the whole table.

Also the read statistics every job reports: how each table was read and the fewest requests each
read could have taken (``floor``), which the benchmarks compare with the requests made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from connector.creatio import odata

URL_OVERHEAD = 400


# No character takes more than this once URL-encoded (four UTF-8 bytes of three characters each);
# a quote doubled for OData takes six.
MAX_ENCODED_PER_CHAR = 12


def fits_lookup(creatio, column: str, value) -> bool:
    """Whether ``value`` can be looked up at all: alone in a filter, within the URL length allowed."""
    budget = creatio.settings.max_url_length - URL_OVERHEAD
    if isinstance(value, str) and odata.COLUMN_RE.fullmatch(column) and _encodes(value):
        # Decision: a value short enough to fit even at the worst encoding of every character is
        # not encoded at all (tens of thousands of names per run); only longer ones are measured.
        bare = odata.encoded_length("(" + odata.eq(column, "") + ")")
        if bare + MAX_ENCODED_PER_CHAR * len(value) <= budget:
            return True
    try:
        odata.chunk_any_of(column, [value], max_chars=budget)
    except ValueError:
        return False
    return True


def _encodes(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (a lone surrogate has none, and cannot be sent)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def pages(rows: int, page_size: int) -> int:
    """Requests a whole read of ``rows`` rows takes (an empty read still takes one)."""
    return max(1, math.ceil(rows / page_size))


@dataclass
class ReadStats:
    """How each table was read, for the report and the benchmarks.

    ``floor`` is the fewest requests each read could have taken (pages of the table, or the
    lookups, whichever is less); benchmarks compare the requests made with it.
    """

    strategies: dict[str, str]
    floor: dict[str, int] = field(default_factory=dict)


def by_ids(creatio, entity: str, ids: list, select, stats: ReadStats, label: str) -> Iterator[dict]:
    """Rows by Id in URL-sized chunks; the chunks are part of the request floor."""
    if ids:
        stats.floor[label] = lookup_count(creatio, "Id", ids)
    return creatio.iter_by_values(entity, "Id", ids, select=list(select))


def lookup(creatio, entity: str, column: str, values: Iterable, select, extra_filter: str | None,
            stats: ReadStats) -> Iterator[dict]:
    """Rows whose ``column`` is one of ``values``: in chunks, or the whole table when cheaper.

    Streams rows page by page, so a caller that keeps only typed records never holds every raw
    row of a large table at once.
    """
    values = sorted(set(values), key=str)
    if not values:
        stats.strategies[entity] = "none needed"
        stats.floor[entity] = 0
        return iter(())
    lookups = lookup_count(creatio, column, values)
    if lookups == 1:  # no whole-table read can cost less than one request: skip the $count
        stats.strategies[entity] = f"1 lookup for {len(values)} values"
        stats.floor[entity] = 1
        return creatio.iter_by_values(entity, column, values, select=list(select), extra_filter=extra_filter)
    total = creatio.count(entity, extra_filter)
    whole_pages = pages(total, creatio.settings.page_size)
    stats.floor[entity] = min(whole_pages, lookups)
    if whole_pages <= lookups:
        stats.strategies[entity] = f"whole table ({total} rows, {whole_pages} pages)"
        return creatio.iter_rows(entity, select=list(select), filter=extra_filter)
    stats.strategies[entity] = f"about {lookups} lookups for {len(values)} values ({total} rows in the table)"
    return creatio.iter_by_values(entity, column, values, select=list(select), extra_filter=extra_filter)


def lookup_count(creatio, column: str, values) -> int:
    """About how many lookups ``values`` take (the rest of the URL takes a few hundred characters)."""
    return len(odata.chunk_any_of(column, values, max_chars=creatio.settings.max_url_length - URL_OVERHEAD))
