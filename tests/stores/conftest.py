"""Fixtures of the store tests: a real PostgreSQL server, and a fresh database per test.

``INTENTFLOW_TEST_POSTGRES_DSN`` names a server to use; otherwise a throwaway one is started
(see `tests.stores.postgres_server`). Without PostgreSQL the tests that need it are skipped,
except under CI (``CI`` set), where that is a failure: CI installs PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.stores.postgres_server import PostgresUnavailable, fresh_database, throwaway_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server for the whole session."""
    external = os.environ.get("INTENTFLOW_TEST_POSTGRES_DSN")
    if external:
        yield external
        return
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(throwaway_server())
        except PostgresUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI must test PostgresStore, but {exc}", pytrace=False)
            pytest.skip(str(exc))
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """The DSN of a new, empty database on `postgres_server` (dropped after the test)."""
    with fresh_database(postgres_server) as dsn:
        yield dsn
