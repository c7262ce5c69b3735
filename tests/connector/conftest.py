"""Client tests: no page asked ahead outlives its test (it would answer the next test's mocks)."""

from __future__ import annotations

import pytest

from threadkit import settle


@pytest.fixture(autouse=True)
def _no_page_outlives_its_test():
    yield
    settle()
