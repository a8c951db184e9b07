"""Checkpoint stores: where durable runs keep their state (`Runner(store=...)`).

`SQLiteStore` is the embedded default (one file), `PostgresStore` serves several hosts
(the ``postgres`` extra), and `MemoryStore` is for tests and scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from intentflow.stores.base import Checkpoint, CheckpointStore, RunStatus
from intentflow.stores.memory import MemoryStore
from intentflow.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from intentflow.stores.postgres import PostgresStore

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "MemoryStore",
    "PostgresStore",
    "RunStatus",
    "SQLiteStore",
]


def __getattr__(name: str) -> Any:
    # psycopg is an optional extra: imported only when PostgresStore is asked for.
    if name == "PostgresStore":
        from intentflow.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
