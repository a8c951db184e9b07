"""The PostgreSQL fixtures of the store tests, for the durable-run tests too."""

from tests.stores.conftest import postgres_dsn, postgres_server

__all__ = ["postgres_dsn", "postgres_server"]
