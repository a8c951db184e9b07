"""`PostgresStore`: checkpoints in PostgreSQL, shared by every host that runs the agents.

Install the ``postgres`` extra (psycopg 3 and psycopg_pool). The tables are created by an
explicit, idempotent deployment step, never behind the caller's back::

    store = PostgresStore("postgresql://app@db.internal/app")
    await store.migrate()  # once per deployment; harmless to repeat
    runner = Runner(router, graph, store=store)

Why threads, not psycopg's async API: intentflow runs on anyio, on asyncio and on trio, and
psycopg's ``AsyncConnection`` and ``AsyncConnectionPool`` work on asyncio only (under trio
they fail at once with "no running event loop": they wait on the socket through asyncio's
loop). So the store runs psycopg's synchronous API, with a `psycopg_pool.ConnectionPool`,
in anyio worker threads, as `SQLiteStore` does with sqlite3: the event loop never waits on the
network, and both backends behave the same. The cost is a thread hop per call, small next to
a network round trip. A cancelled caller waits for the statement in flight to end (a worker
thread cannot be interrupted), so a save is committed or not, never half-done.

Every psycopg error comes out as a `StoreError` (with the run id when there is one), and no
message shows the DSN's password. Saving is optimistic as the protocol says: an update names
the version it expects (``UPDATE ... WHERE run_id = %s AND version = %s``), and the
``UNIQUE (conversation_id, seq)`` constraint refuses a second run in the same place of a
conversation, whichever host writes it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

import anyio.to_thread
import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from intentflow.errors import CheckpointConflict, CheckpointNotFound, StoreError
from intentflow.stores.base import Checkpoint, RunStatus
from intentflow.stores.memory import conversation_conflict

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

T = TypeVar("T")

SCHEMA_VERSION = 1
"""The version of the tables this intentflow reads and writes (kept in ``intentflow_meta``)."""

# Any fixed 64-bit number: what matters is that every intentflow process takes the same
# lock, so concurrent `migrate()` calls run one after the other instead of racing on
# CREATE TABLE (which PostgreSQL does not make safe: "duplicate key ... pg_type").
_MIGRATION_LOCK = 0x1F_4E7F_10C0_5EED

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS intentflow_runs ("
    " run_id TEXT PRIMARY KEY, conversation_id TEXT, seq INTEGER,"
    " status TEXT NOT NULL, version INTEGER NOT NULL,"
    # TEXT, not JSONB: the runner's JSON comes back byte for byte (JSONB would reorder keys
    # and respace it), and the store never queries inside it.
    " data TEXT NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL,"
    " CONSTRAINT intentflow_runs_place UNIQUE (conversation_id, seq))",
    "CREATE INDEX IF NOT EXISTS intentflow_runs_updated ON intentflow_runs (updated_at)",
)
_PLACE_CONSTRAINT = "intentflow_runs_place"
_COLUMNS = "run_id, conversation_id, seq, status, version, data, updated_at"
# The server's clock, not each host's: "most recently saved first" then holds across hosts.
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class PostgresStore:
    """A `CheckpointStore` in a PostgreSQL database (tables ``intentflow_runs`` and
    ``intentflow_meta``, created by `migrate`).

    Give it a DSN, and it makes (and closes) its own pool, opened on first use or by `open`;
    or give it a `psycopg_pool.ConnectionPool` you own (a synchronous pool: see the module
    notes), which it opens if needed but never closes. Behind a transaction-mode pgBouncer,
    pass a pool whose connections have ``prepare_threshold=None``.

    Args:
        dsn: A libpq connection string or URL (``postgresql://user:password@host/db``).
        pool: A pool to use instead of ``dsn``.
        min_size: The connections the store's own pool keeps open.
        max_size: The most connections it opens.
        timeout: How long to wait for a connection, in seconds (then `StoreError`).

    Attributes:
        timeout: As given.

    Raises:
        ValueError: Neither or both of ``dsn`` and ``pool``, or bad pool sizes.
        TypeError: ``pool`` is not a `psycopg_pool.ConnectionPool`.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: ConnectionPool[Any] | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ValueError("give PostgresStore a dsn or a pool (one of them)")
        self.timeout = timeout
        if pool is not None:
            if not isinstance(pool, ConnectionPool):
                raise TypeError(
                    f"pool must be a psycopg_pool.ConnectionPool, got {type(pool).__name__} "
                    "(psycopg's async pool runs on asyncio only; the store runs a synchronous "
                    "pool in worker threads to work on trio too)"
                )
            self._pool: ConnectionPool[Any] = pool
            self._owns_pool = False
            conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
        else:
            assert dsn is not None
            conninfo = dsn
            # Autocommit: a lone statement commits at once, with no BEGIN/COMMIT round trips;
            # the few multi-statement steps open their own transaction.
            self._pool = ConnectionPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                open=False,
                timeout=timeout,
                kwargs={"autocommit": True},
                # A connection the server dropped (restart, failover) is replaced before use
                # instead of failing a save.
                check=ConnectionPool.check_connection,
                name="intentflow-checkpoints",
            )
            self._owns_pool = True
        self._secrets = _secrets(conninfo)
        self._shown = _mask(conninfo, self._secrets) if dsn is not None else None
        self._open_lock = threading.Lock()
        self._opened = False
        self._ready = False  # whether the schema version was checked on this store
        self._closed = False

    def __repr__(self) -> str:
        if self._shown is None:
            return f"PostgresStore(pool={self._pool.name!r})"
        return f"PostgresStore({self._shown!r})"

    # ------------------------------------------------------------------ connection

    async def open(self) -> None:
        """Open the pool and wait for a first connection (else it opens on first use).

        Raises:
            StoreError: No connection within ``timeout`` seconds.
        """

        def connect() -> None:
            with self._connection():
                pass

        await self._run(connect)

    async def migrate(self) -> None:
        """Create the tables, or bring them to this intentflow's schema version (idempotent).

        Run it once per deployment, before the store is used; processes that migrate at the
        same time take turns (an advisory lock held until the transaction ends).

        Raises:
            StoreError: The database holds a newer schema version than this intentflow's.
        """

        def migrate() -> None:
            with self._connection() as connection, connection.transaction():
                cursor = connection.cursor(row_factory=tuple_row)
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                cursor.execute(
                    "CREATE TABLE IF NOT EXISTS intentflow_meta"
                    " (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                cursor.execute("SELECT value FROM intentflow_meta WHERE key = 'schema_version'")
                row = cursor.fetchone()
                found = None if row is None else _version(row[0])
                if row is not None and (found is None or found > SCHEMA_VERSION):
                    raise self._newer(row[0])
                if found != SCHEMA_VERSION:
                    # Version 1 is the first: there is nothing older to convert yet.
                    for statement in _SCHEMA:
                        cursor.execute(statement)
                    cursor.execute(
                        "INSERT INTO intentflow_meta VALUES ('schema_version', %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(SCHEMA_VERSION),),
                    )
            self._ready = True

        await self._run(migrate)

    def _newer(self, found: str, run_id: str | None = None) -> StoreError:
        return StoreError(
            f"{self!r}: checkpoint schema version {found}, but this intentflow uses version "
            f"{SCHEMA_VERSION}; upgrade intentflow, or use another database for this version",
            run_id=run_id,
        )

    def _not_migrated(self, run_id: str | None) -> StoreError:
        return StoreError(
            f"{self!r}: the checkpoint tables are missing or out of date: call "
            "`await store.migrate()` once (a deployment step) before using the store",
            run_id=run_id,
        )

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """The pool's connection context (opening the pool first); in a worker thread."""
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    # wait=False: the pool keeps connecting in the background, so a server
                    # that is down now does not break the store for good (a failed
                    # ``open(wait=True)`` closes the pool, and a pool cannot reopen).
                    self._pool.open(wait=False)
                    self._opened = True
        return self._pool.connection(timeout=self.timeout)

    def _check_schema(self, connection: psycopg.Connection[Any], run_id: str | None) -> None:
        """Refuse tables this intentflow did not create or cannot read (once per store)."""
        cursor = connection.cursor(row_factory=tuple_row)
        try:
            row = cursor.execute(
                "SELECT value FROM intentflow_meta WHERE key = 'schema_version'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            raise self._not_migrated(run_id) from None
        if row is None:
            raise self._not_migrated(run_id)
        found = _version(row[0])
        if found is None or found > SCHEMA_VERSION:
            raise self._newer(row[0], run_id)
        if found < SCHEMA_VERSION:
            raise self._not_migrated(run_id)
        self._ready = True

    async def _call(
        self, action: Callable[[psycopg.Connection[Any]], T], run_id: str | None = None
    ) -> T:
        """Run ``action`` on a pooled connection in a worker thread, errors as `StoreError`."""

        def work() -> T:
            with self._connection() as connection:
                if not self._ready:
                    self._check_schema(connection, run_id)
                try:
                    return action(connection)
                except psycopg.errors.UndefinedTable:
                    # Dropped after the check (a test, a botched rollback): same advice.
                    raise self._not_migrated(run_id) from None

        return await self._run(work, run_id)

    async def _run(self, work: Callable[[], T], run_id: str | None = None) -> T:
        def guarded() -> T:
            try:
                return work()
            except PoolTimeout as exc:
                detail = f"no connection within {self.timeout:g} s ({exc}): {self._diagnose()}"
                raise self._error(detail, run_id) from exc
            except psycopg.Error as exc:
                # Keep psycopg's exception as the cause, unless its text holds the password.
                secret = _redact(str(exc), self._secrets) != str(exc)
                raise self._error(str(exc), run_id) from (None if secret else exc)

        return await anyio.to_thread.run_sync(guarded)

    def _error(self, detail: str, run_id: str | None) -> StoreError:
        shown = _redact(detail.strip(), self._secrets)
        return StoreError(f"{self!r}: {shown}", run_id=run_id)

    def _diagnose(self) -> str:
        """Why the pool has no connection: one direct attempt, for libpq's own reason (the
        pool only logs its failed attempts)."""
        conninfo, kwargs = self._pool.conninfo, self._pool.kwargs
        if not isinstance(conninfo, str) or not isinstance(kwargs, dict | None):
            return "is the server up and reachable?"
        # A few seconds at most: the caller has waited ``timeout`` already.
        options = {**(kwargs or {}), "connect_timeout": max(2, min(int(self.timeout), 10))}
        try:
            psycopg.connect(conninfo, **options).close()
        except psycopg.Error as exc:
            return " ".join(str(exc).split())
        return "the server answers now: is it overloaded, or the pool too small?"

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

        def write(connection: psycopg.Connection[Any]) -> int:
            cursor = connection.cursor(row_factory=tuple_row)
            if expected_version == 0:
                return self._insert(connection, cursor, run_id, data, status, conversation_id, seq)
            # One statement, atomic: of writers racing from the same version, the first
            # commits; the others wait for its row lock, then find the version changed.
            cursor.execute(
                f"UPDATE intentflow_runs SET data = %s, status = %s, version = version + 1,"
                f" updated_at = {_NOW} WHERE run_id = %s AND version = %s RETURNING version",
                (data, status, run_id, expected_version),
            )
            row = cursor.fetchone()
            if row is not None:
                return int(row[0])
            cursor.execute("SELECT version FROM intentflow_runs WHERE run_id = %s", (run_id,))
            found = cursor.fetchone()
            if found is None:
                raise CheckpointNotFound(run_id, " (deleted while it ran?)")
            raise CheckpointConflict(run_id, expected_version, found[0])

        return await self._call(write, run_id)

    @staticmethod
    def _insert(
        connection: psycopg.Connection[Any],
        cursor: psycopg.Cursor[TupleRow],
        run_id: str,
        data: str,
        status: RunStatus,
        conversation_id: str | None,
        seq: int | None,
    ) -> int:
        # No check-then-insert: two hosts could both pass the check. The primary key and the
        # conversation's UNIQUE constraint decide, and the loser is told who won.
        try:
            cursor.execute(
                f"INSERT INTO intentflow_runs ({_COLUMNS}) VALUES (%s, %s, %s, %s, 1, %s, {_NOW})"
                " ON CONFLICT (run_id) DO NOTHING RETURNING version",
                (run_id, conversation_id, seq, status, data),
            )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != _PLACE_CONSTRAINT or conversation_id is None:
                raise
            assert seq is not None  # a NULL seq never violates UNIQUE
            connection.rollback()  # leave a failed transaction (pools without autocommit)
            cursor.execute(
                "SELECT run_id FROM intentflow_runs WHERE conversation_id = %s AND seq = %s",
                (conversation_id, seq),
            )
            holder = cursor.fetchone()
            raise conversation_conflict(
                run_id, conversation_id, seq, None if holder is None else holder[0]
            ) from None
        if cursor.fetchone() is not None:
            return 1
        cursor.execute("SELECT version FROM intentflow_runs WHERE run_id = %s", (run_id,))
        found = cursor.fetchone()
        raise CheckpointConflict(
            run_id, 0, None if found is None else found[0], f"run {run_id!r} exists already"
        )

    async def load(self, run_id: str) -> Checkpoint:
        """See `CheckpointStore.load`."""
        row = await self._call(
            lambda c: _fetchone(
                c, f"SELECT {_COLUMNS} FROM intentflow_runs WHERE run_id = %s", (run_id,)
            ),
            run_id,
        )
        if row is None:
            raise CheckpointNotFound(run_id)
        return _checkpoint(row)

    async def latest(self, conversation_id: str) -> Checkpoint | None:
        """See `CheckpointStore.latest`."""
        row = await self._call(
            lambda c: _fetchone(
                c,
                f"SELECT {_COLUMNS} FROM intentflow_runs WHERE conversation_id = %s"
                " ORDER BY seq DESC NULLS LAST LIMIT 1",
                (conversation_id,),
            )
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
        where: list[str] = []
        params: list[object] = []
        if conversation_id is not None:
            where.append("conversation_id = %s")
            params.append(conversation_id)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {_COLUMNS} FROM intentflow_runs{clause} ORDER BY updated_at DESC LIMIT %s"

        def fetch(connection: psycopg.Connection[Any]) -> list[TupleRow]:
            cursor = connection.cursor(row_factory=tuple_row)
            return cursor.execute(query, (*params, limit)).fetchall()

        return [_checkpoint(row) for row in await self._call(fetch)]

    async def delete(self, run_id: str) -> bool:
        """See `CheckpointStore.delete`."""

        def delete(connection: psycopg.Connection[Any]) -> bool:
            cursor = connection.cursor(row_factory=tuple_row)
            cursor.execute("DELETE FROM intentflow_runs WHERE run_id = %s", (run_id,))
            return cursor.rowcount > 0

        return await self._call(delete, run_id)

    async def aclose(self) -> None:
        """Close the pool if the store made it (a pool passed in stays open)."""

        def close() -> None:
            with self._open_lock:
                self._closed = True
                if self._owns_pool and self._opened:
                    self._pool.close()

        await anyio.to_thread.run_sync(close)


def _fetchone(
    connection: psycopg.Connection[Any], query: str, params: tuple[object, ...]
) -> TupleRow | None:
    # A tuple row factory whatever the pool's connections use (a pool passed in may not).
    cursor = connection.cursor(row_factory=tuple_row)
    return cursor.execute(query, params).fetchone()


def _checkpoint(row: TupleRow) -> Checkpoint:
    run_id, conversation_id, seq, status, version, data, updated_at = row
    return Checkpoint(
        run_id, conversation_id, seq, cast("RunStatus", status), version, data, updated_at
    )


def _version(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _secrets(conninfo: str) -> list[str]:
    """The password(s) in a connection string, as written and as libpq reads them."""
    found = [m.group(2) for m in _URL_PASSWORD.finditer(conninfo)]
    found += [m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(conninfo)]
    try:
        password = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:  # unparsable: the regular expressions found what there is
        password = None
    if isinstance(password, str):
        found.append(password)
    return sorted({s for s in found if s}, key=len, reverse=True)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _mask(conninfo: str, secrets: Sequence[str]) -> str:
    """The connection string to show: its password as ``***``."""
    shown = _URL_PASSWORD.sub(r"\1***\3", conninfo)
    shown = _KEYWORD_PASSWORD.sub(r"\1***", shown)
    return _redact(shown, secrets)
