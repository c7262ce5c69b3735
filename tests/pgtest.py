"""The PostgreSQL test database, for the state and worker tests (skipped when there is none)."""

import os

import pytest


def postgres_url(*, empty: bool = True) -> str:
    """The throwaway test database (with the state tables dropped when ``empty``), or skip saying why."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed")
    url = os.environ.get("WCSYNC_TEST_PG_URL")
    if not url:
        pytest.skip("WCSYNC_TEST_PG_URL is not set")
    if empty:
        from sqlalchemy import create_engine

        from jobs.state import schema

        engine = create_engine(url)
        schema.metadata.drop_all(engine)
        engine.dispose()
    return url
