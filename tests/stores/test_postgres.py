"""`PostgresStore` against a real PostgreSQL server (see `tests.stores.conftest`): the shared
conformance checks, migrations, writers racing across pools and processes, and errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

psycopg = pytest.importorskip(
    "psycopg", reason="PostgresStore needs the postgres extra: pip install 'intentflow[postgres]'"
)

from psycopg_pool import ConnectionPool  # noqa: E402

from intentflow.errors import CheckpointConflict, StoreError  # noqa: E402
from intentflow.stores import CheckpointStore, PostgresStore  # noqa: E402
from tests.stores.conformance import check_store  # noqa: E402

pytestmark = pytest.mark.anyio

Attempt = Callable[[int], Awaitable[int]]


def _execute(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement.encode())
        return cursor.fetchall() if cursor.description else []


async def test_postgres_store(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    assert isinstance(store, CheckpointStore)
    await store.migrate()
    await check_store(store)
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.load("a")


async def test_a_pool_passed_in_is_used_and_left_open(postgres_dsn: str) -> None:
    # Not autocommit, unlike the store's own pool: the store must commit and roll back right.
    pool: ConnectionPool[Any] = ConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    store = PostgresStore(pool=pool)
    assert repr(store) == f"PostgresStore(pool={pool.name!r})"
    await store.open()
    await store.migrate()
    await check_store(store)
    await store.aclose()
    assert not pool.closed
    await anyio.to_thread.run_sync(pool.close)
    assert len(_execute(postgres_dsn, "SELECT run_id FROM intentflow_runs")) > 10


async def test_migrate_is_idempotent_safe_in_parallel_and_refuses_a_newer_schema(
    postgres_dsn: str,
) -> None:
    stores = [PostgresStore(postgres_dsn) for _ in range(4)]
    async with anyio.create_task_group() as group:  # a fresh database, migrated 4 times at once
        for store in stores:
            group.start_soon(store.migrate)
    await stores[0].migrate()
    await stores[0].save("r", data="{}", status="running", expected_version=0)
    await stores[1].migrate()  # keeps the data
    assert (await stores[1].load("r")).version == 1
    assert _execute(postgres_dsn, "SELECT key, value FROM intentflow_meta") == [
        ("schema_version", "1")
    ]
    for store in stores:
        await store.aclose()

    _execute(postgres_dsn, "UPDATE intentflow_meta SET value = '99'")
    newer = PostgresStore(postgres_dsn)
    with pytest.raises(StoreError, match="schema version 99, but this intentflow uses version 1"):
        await newer.load("r")
    with pytest.raises(StoreError, match="schema version 99"):
        await newer.migrate()
    await newer.aclose()
    assert _execute(postgres_dsn, "SELECT value FROM intentflow_meta") == [("99",)]


async def test_using_the_store_before_migrate_says_to_migrate(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    with pytest.raises(StoreError, match=r"call `await store\.migrate\(\)`") as caught:
        await store.save("r", data="{}", status="running", expected_version=0)
    assert caught.value.run_id == "r"
    for use in (store.load("r"), store.latest("c"), store.list(), store.delete("r")):
        with pytest.raises(StoreError, match="migrate"):
            await use
    await store.migrate()  # then the same store object works
    assert await store.save("r", data="{}", status="running", expected_version=0) == 1
    _execute(postgres_dsn, "DROP TABLE intentflow_runs")  # gone after the first check
    with pytest.raises(StoreError, match="migrate"):
        await store.load("r")
    await store.aclose()


async def test_two_pools_racing_on_one_run_and_one_conversation(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn, max_size=5) for _ in range(2)]
    await stores[0].migrate()
    await stores[0].save("shared", data="{}", status="running", expected_version=0)

    async def race(attempt: Attempt) -> tuple[int, list[CheckpointConflict]]:
        wins: list[int] = []
        conflicts: list[CheckpointConflict] = []

        async def one(i: int) -> None:
            try:
                wins.append(await attempt(i))
            except CheckpointConflict as exc:
                conflicts.append(exc)

        async with anyio.create_task_group() as group:
            for i in range(10):
                group.start_soon(one, i)
        assert len(wins) == 1, wins
        return wins[0], conflicts

    # Ten writers that all loaded version 1, half on each pool: one saves.
    won, conflicts = await race(
        lambda i: stores[i % 2].save(
            "shared", data=f'{{"by": {i}}}', status="running", expected_version=1
        )
    )
    assert won == 2
    assert {(c.expected, c.found) for c in conflicts} == {(1, 2)} and len(conflicts) == 9
    # Ten new runs with one id: one is created.
    won, conflicts = await race(
        lambda i: stores[i % 2].save("new", data="{}", status="running", expected_version=0)
    )
    assert all("exists already" in str(c) for c in conflicts)
    # Ten replicas answering one conversation, each with its own run: one takes the place.
    won, conflicts = await race(
        lambda i: stores[i % 2].save(
            f"reply-{i}",
            data="{}",
            status="running",
            expected_version=0,
            conversation_id="conv",
            seq=1,
        )
    )
    winner = await stores[1].latest("conv")
    assert winner is not None and winner.seq == 1
    for conflict in conflicts:
        assert f"run 1 of conversation 'conv': run {winner.run_id!r} already is" in str(conflict)
    assert [c.run_id for c in await stores[0].list(conversation_id="conv")] == [winner.run_id]
    for store in stores:
        await store.aclose()


_TAKE_TURNS = """
import sys, time
import anyio
from intentflow.errors import CheckpointConflict
from intentflow.stores import PostgresStore

dsn, me, first, last, backend = sys.argv[1:]

async def main():
    store = PostgresStore(dsn, timeout=10)
    for seq in range(int(first), int(last) + 1, 2):  # every other place of the conversation
        deadline = time.monotonic() + 30
        while True:  # wait for the other process to take the place before
            latest = await store.latest("conv")
            if (0 if latest is None else latest.seq) == seq - 1:
                break
            if time.monotonic() > deadline:
                sys.exit(f"{me}: place {seq - 1} was never taken")
            await anyio.sleep(0.005)
        if seq > 1:
            try:  # answering from a state older than the other process's turn: refused
                await store.save(f"{me}-stale-{seq}", data="{}", status="running",
                                 expected_version=0, conversation_id="conv", seq=seq - 1)
                sys.exit(f"{me}: took place {seq - 1}, which the other process holds")
            except CheckpointConflict:
                pass
        version = await store.save(f"{me}-{seq}", data='{"by": "%s"}' % me, status="running",
                                   expected_version=0, conversation_id="conv", seq=seq)
        await store.save(f"{me}-{seq}", data='{"by": "%s"}' % me, status="finished",
                         expected_version=version)
    await store.aclose()

anyio.run(main, backend=backend)
"""


def test_two_processes_take_turns_in_one_conversation(postgres_dsn: str) -> None:
    async def migrate() -> None:
        store = PostgresStore(postgres_dsn)
        await store.migrate()
        await store.aclose()

    anyio.run(migrate)
    turns = 6
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _TAKE_TURNS, postgres_dsn, name, first, str(turns), backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, first, backend in (("a", "1", "asyncio"), ("b", "2", "trio"))
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    rows = _execute(
        postgres_dsn, "SELECT run_id, seq, status, version, data FROM intentflow_runs ORDER BY seq"
    )
    assert rows == [
        (f"{me}-{seq}", seq, "finished", 2, f'{{"by": "{me}"}}')
        for seq, me in zip(range(1, turns + 1), "ab" * turns, strict=False)
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("form", ["url", "keywords"])
async def test_a_server_that_is_down_gives_a_store_error_without_the_password(form: str) -> None:
    port, secret = _closed_port(), "s3cret-Pa55word"
    dsn = (
        f"postgresql://intentflow:{secret}@127.0.0.1:{port}/runs"
        if form == "url"
        else f"host=127.0.0.1 port={port} user=intentflow password='{secret}' dbname=runs"
    )
    store = PostgresStore(dsn, timeout=0.2)
    assert secret not in repr(store) and "***" in repr(store)
    for use in (store.open(), store.migrate(), store.load("r1")):
        with pytest.raises(StoreError) as caught:
            await use
        error: BaseException | None = caught.value
        assert type(error) is StoreError  # not psycopg's exception
        assert "no connection within 0.2 s" in str(error) and "refused" in str(error)
        while error is not None:  # nor in anything chained to it
            assert secret not in str(error)
            error = error.__cause__ or error.__context__
    await store.aclose()


def test_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="a dsn or a pool"):
        PostgresStore()
    pool: ConnectionPool[Any] = ConnectionPool(open=False)
    with pytest.raises(ValueError, match="a dsn or a pool"):
        PostgresStore("dbname=x", pool=pool)
    with pytest.raises(TypeError, match=r"ConnectionPool, got object .*trio"):
        PostgresStore(pool=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_size"):
        PostgresStore("dbname=x", min_size=5, max_size=2)
