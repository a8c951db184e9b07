"""Fixtures of the example tests: the real PostgreSQL server of the store tests
(`tests.stores.conftest`: skipped without PostgreSQL binaries, a failure under CI)."""

from __future__ import annotations

from tests.stores.conftest import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]
