"""Pages read ahead over real sockets: with ``max_concurrency`` 4 a read of many pages has several
requests in flight, as the sandbox server counts them (``Stats.peak_in_flight``), and its rows
come out as a read one page at a time gives them."""

from __future__ import annotations

import pytest

from jobs.wiring import creatio_client, webitel_client
from sandbox.faults import Faults

pytestmark = pytest.mark.e2e
SLOW = Faults(latency_ms=30)  # every answer late enough that requests sent together overlap


def webitel_ids(box, config, concurrency):
    box.webitel.stats.reset()
    client = webitel_client(config.model_copy(update={"webitel": config.webitel.model_copy(
        update={"max_concurrency": concurrency})}))
    return [u.id for u in client.iter_users(fields=("id", "username"))]


def test_webitel_pages_after_the_second_are_read_four_at_a_time(make_sandbox, make_config):
    box = make_sandbox(120, seed=4, faults_webitel=SLOW)
    config = make_config(box, webitel={"page_size": 10})
    one_by_one = webitel_ids(box, config, 1)
    assert box.webitel.stats.peak_in_flight == 1 and box.webitel.stats.total("GET", "/") == 12
    ahead = webitel_ids(box, config, 4)
    assert ahead == one_by_one and len(set(ahead)) == 120
    stats = box.webitel.stats
    assert 2 <= stats.peak_in_flight <= 4
    assert 12 <= stats.total("GET", "/") <= 12 + 3  # at most 3 pages asked past the last


def creatio_rows(box, config, concurrency):
    client = creatio_client(config.model_copy(update={"creatio": config.creatio.model_copy(
        update={"max_concurrency": concurrency})}))
    client.login()
    box.creatio.stats.reset()  # the pages only
    return [row["Id"] for row in client.iter_rows("Contact", select=["Id", "Name"])]


def test_creatio_pages_the_count_needs_are_read_four_at_a_time(make_sandbox, make_config):
    box = make_sandbox(120, seed=4, faults_creatio=SLOW)
    config = make_config(box, creatio={"page_size": 10, "odata_path": "/0/odata"})
    one_by_one = creatio_rows(box, config, 1)
    pages = box.creatio.stats.total("GET", "/")
    assert box.creatio.stats.peak_in_flight == 1 and pages >= 8
    ahead = creatio_rows(box, config, 4)
    assert ahead == one_by_one and len(set(ahead)) == len(ahead)
    stats = box.creatio.stats
    assert 2 <= stats.peak_in_flight <= 4
    assert stats.total("GET", "/") == pages  # the count bounds the pages: none asked in vain
