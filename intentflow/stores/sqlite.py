"""`SQLiteStore`: checkpoints in one SQLite file, the embedded default.

One connection per store object, used from anyio worker threads behind a lock, so the event
loop never waits on the disk; several store objects (and processes) can share one file, with
SQLite's locking and write-ahead logging between them. ``synchronous=NORMAL`` (the default
here) makes every committed save survive the process being killed; ``"FULL"`` also survives
a power cut, at the cost of an fsync per save.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anyio.to_thread

from intentflow import _sqlite
from intentflow.errors import CheckpointConflict, CheckpointNotFound, StoreError
from intentflow.stores.base import Checkpoint, RunStatus
from intentflow.stores.memory import conversation_conflict

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intentflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS intentflow_runs ("
    " run_id TEXT PRIMARY KEY, conversation_id TEXT, seq INTEGER,"
    " status TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,"
    " updated_at REAL NOT NULL, UNIQUE (conversation_id, seq))",
    "CREATE INDEX IF NOT EXISTS intentflow_runs_updated ON intentflow_runs (updated_at)",
)
_COLUMNS = "run_id, conversation_id, seq, status, version, data, updated_at"


class SQLiteStore:
    """A `CheckpointStore` in a SQLite file (created, with its directory, on first use).

    Examples:
        >>> import anyio, tempfile
        >>> store = SQLiteStore(Path(tempfile.mkdtemp()) / "runs.sqlite")
        >>> async def main():
        ...     await store.save("r1", data='{"a": 1}', status="running", expected_version=0)
        ...     checkpoint = await store.load("r1")
        ...     await store.aclose()
        ...     return checkpoint.version, checkpoint.data
        >>> anyio.run(main)
        (1, '{"a": 1}')

    Args:
        path: The database file.
        synchronous: SQLite's ``synchronous`` setting (see the module notes).
    """

    def __init__(
        self, path: str | Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ------------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        if self._connection is not None:
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=_sqlite.OPEN_TIMEOUT, check_same_thread=False, isolation_level=None
        )
        try:
            _sqlite.retry_busy(lambda: self._migrate(connection))
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                connection.execute(statement)
            row = connection.execute(
                "SELECT value FROM intentflow_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO intentflow_meta VALUES ('schema_version', ?)",
                    (str(_SCHEMA_VERSION),),
                )
            elif row[0] != str(_SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path}: checkpoint schema version {row[0]}, but this intentflow "
                    f"uses version {_SCHEMA_VERSION}; use another file for this version"
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def _call(self, action: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return action(self._connect())
                except sqlite3.Error as exc:
                    raise StoreError(f"{self.path}: {exc}") from exc

        return await anyio.to_thread.run_sync(locked)

    # ------------------------------------------------------------------ the protocol

    async def save(
        self,
        run_id: str,
        *,
        data: str,
        status: RunStatus,
        expected_version: int,
        conversation_id: str | None = None,
        seq: int | None = None,
    ) -> int:
        """See `CheckpointStore.save`."""

        def write(connection: sqlite3.Connection) -> int:
            now = time.time()
            connection.execute("BEGIN IMMEDIATE")
            try:
                if expected_version == 0:
                    version = self._insert(connection, run_id, data, status, conversation_id, seq)
                else:
                    cursor = connection.execute(
                        "UPDATE intentflow_runs SET data = ?, status = ?, version = version + 1,"
                        " updated_at = ? WHERE run_id = ? AND version = ?",
                        (data, status, now, run_id, expected_version),
                    )
                    if cursor.rowcount != 1:
                        row = connection.execute(
                            "SELECT version FROM intentflow_runs WHERE run_id = ?", (run_id,)
                        ).fetchone()
                        if row is None:
                            raise CheckpointNotFound(run_id, " (deleted while it ran?)")
                        raise CheckpointConflict(run_id, expected_version, row[0])
                    version = expected_version + 1
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return version

        return await self._call(write)

    @staticmethod
    def _insert(
        connection: sqlite3.Connection,
        run_id: str,
        data: str,
        status: RunStatus,
        conversation_id: str | None,
        seq: int | None,
    ) -> int:
        row = connection.execute(
            "SELECT version FROM intentflow_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is not None:
            raise CheckpointConflict(run_id, 0, row[0], f"run {run_id!r} exists already")
        if conversation_id is not None and seq is not None:
            holder = connection.execute(
                "SELECT run_id FROM intentflow_runs WHERE conversation_id = ? AND seq = ?",
                (conversation_id, seq),
            ).fetchone()
            if holder is not None:
                raise conversation_conflict(run_id, conversation_id, seq, holder[0])
        connection.execute(
            f"INSERT INTO intentflow_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, 1, ?, ?)",
            (run_id, conversation_id, seq, status, data, time.time()),
        )
        return 1

    async def load(self, run_id: str) -> Checkpoint:
        """See `CheckpointStore.load`."""
        row = await self._call(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM intentflow_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        )
        if row is None:
            raise CheckpointNotFound(run_id)
        return _checkpoint(row)

    async def latest(self, conversation_id: str) -> Checkpoint | None:
        """See `CheckpointStore.latest`."""
        row = await self._call(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM intentflow_runs WHERE conversation_id = ?"
                " ORDER BY seq DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
        )
        return None if row is None else _checkpoint(row)

    async def list(
        self,
        *,
        conversation_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> Sequence[Checkpoint]:
        """See `CheckpointStore.list`."""
        where, params = [], []
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {_COLUMNS} FROM intentflow_runs{clause} ORDER BY updated_at DESC LIMIT ?"
        rows = await self._call(lambda c: c.execute(query, (*params, limit)).fetchall())
        return [_checkpoint(row) for row in rows]

    async def delete(self, run_id: str) -> bool:
        """See `CheckpointStore.delete`."""
        count = await self._call(
            lambda c: c.execute("DELETE FROM intentflow_runs WHERE run_id = ?", (run_id,)).rowcount
        )
        return bool(count)

    async def aclose(self) -> None:
        """Close the connection."""

        def close() -> None:
            with self._lock:
                self._closed = True
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await anyio.to_thread.run_sync(close)


def _checkpoint(row: Any) -> Checkpoint:
    run_id, conversation_id, seq, status, version, data, updated_at = row
    return Checkpoint(
        run_id, conversation_id, seq, cast("RunStatus", status), version, data, updated_at
    )
