"""The in-memory and SQLite stores against the shared conformance checks, and SQLite's own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from intentflow.errors import CheckpointConflict, StoreError
from intentflow.stores import CheckpointStore, MemoryStore, SQLiteStore
from tests.stores.conformance import check_store

pytestmark = pytest.mark.anyio


async def test_memory_store() -> None:
    store = MemoryStore()
    assert isinstance(store, CheckpointStore)
    await check_store(store)
    await store.aclose()


async def test_sqlite_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "deep" / "runs.sqlite")
    assert isinstance(store, CheckpointStore)
    await check_store(store)
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.load("a")


async def test_sqlite_checkpoints_outlive_the_store_object(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    first = SQLiteStore(path)
    await first.save("r", data='{"x": 1}', status="paused", expected_version=0)
    await first.aclose()
    second = SQLiteStore(path, synchronous="FULL")
    assert (await second.load("r")).data == '{"x": 1}'
    await second.aclose()


async def test_two_sqlite_store_objects_share_a_file_with_versioning(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    a, b = SQLiteStore(path), SQLiteStore(path)
    await a.save("r", data="{}", status="running", expected_version=0)
    assert await b.save("r", data='{"by": "b"}', status="running", expected_version=1) == 2
    with pytest.raises(CheckpointConflict):
        await a.save("r", data='{"by": "a"}', status="running", expected_version=1)
    await a.aclose()
    await b.aclose()


def test_another_process_sees_a_committed_save(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    script = (
        "import anyio, sys\n"
        "from intentflow.stores import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(sys.argv[1])\n"
        "    await store.save('r', data='{\"from\": \"child\"}', status='running',"
        " expected_version=0)\n"
        "anyio.run(main)\n"
        "import os; os._exit(0)\n"  # no close, no cleanup: only the commit made it durable
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    rows = sqlite3.connect(path).execute("SELECT data FROM intentflow_runs").fetchall()
    assert rows == [('{"from": "child"}',)]


async def test_a_file_that_is_not_a_store_or_a_newer_schema_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite"):
        await SQLiteStore(junk).load("r")
    newer = tmp_path / "newer.sqlite"
    await SQLiteStore(newer).save("r", data="{}", status="running", expected_version=0)
    connection = sqlite3.connect(newer)
    connection.execute("UPDATE intentflow_meta SET value = '99' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await SQLiteStore(newer).load("r")


def test_bad_synchronous_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "x.sqlite", synchronous="OFF")  # type: ignore[arg-type]
