"""Pages read ahead over real sockets: with ``max_concurrency`` 4 a read of many pages has several
requests in flight, as the sandbox server counts them (``Stats.peak_in_flight``), and its rows
come out as a read one page at a time gives them."""

from __future__ import annotations

import pytest

from jobs.wiring import webitel_client
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
