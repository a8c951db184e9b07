"""The behaviour every checkpoint store must have; each store's test module runs it."""

from __future__ import annotations

import anyio
import pytest

from intentflow.errors import CheckpointConflict, CheckpointNotFound
from intentflow.stores import CheckpointStore


async def check_store(store: CheckpointStore) -> None:
    """Run every check on an empty store (the caller closes it)."""
    await _save_load_and_versions(store)
    await _optimistic_conflicts(store)
    await _conversations(store)
    await _listing_and_delete(store)
    await _concurrent_writers(store)


async def _save_load_and_versions(store: CheckpointStore) -> None:
    assert await store.save("a", data='{"n": 1}', status="running", expected_version=0) == 1
    assert await store.save("a", data='{"n": 2}', status="paused", expected_version=1) == 2
    loaded = await store.load("a")
    assert (loaded.run_id, loaded.version, loaded.status, loaded.data) == (
        "a",
        2,
        "paused",
        '{"n": 2}',
    )
    assert loaded.conversation_id is None and loaded.seq is None
    assert loaded.updated_at > 0
    text = '{"text": "caf\\u00e9 \u2603 \U0001f600", "big": "' + "x" * 200_000 + '"}'
    assert await store.save("a", data=text, status="running", expected_version=2) == 3
    assert (await store.load("a")).data == text
    with pytest.raises(CheckpointNotFound, match="'nope'"):
        await store.load("nope")


async def _optimistic_conflicts(store: CheckpointStore) -> None:
    await store.save("b", data="{}", status="running", expected_version=0)
    await store.save("b", data='{"by": "first"}', status="running", expected_version=1)
    with pytest.raises(CheckpointConflict) as caught:  # a second writer that loaded version 1
        await store.save("b", data='{"by": "second"}', status="running", expected_version=1)
    assert (caught.value.expected, caught.value.found) == (1, 2)
    assert (await store.load("b")).data == '{"by": "first"}'  # not overwritten
    with pytest.raises(CheckpointConflict, match="exists already"):
        await store.save("b", data="{}", status="running", expected_version=0)
    with pytest.raises(CheckpointNotFound):
        await store.save("ghost", data="{}", status="running", expected_version=3)


async def _conversations(store: CheckpointStore) -> None:
    assert await store.latest("c1") is None
    await store.save(
        "c1-r1", data="{}", status="finished", expected_version=0, conversation_id="c1", seq=1
    )
    await store.save(
        "c1-r2", data="{}", status="running", expected_version=0, conversation_id="c1", seq=2
    )
    await store.save(
        "c2-r1", data="{}", status="running", expected_version=0, conversation_id="c2", seq=1
    )
    latest = await store.latest("c1")
    assert latest is not None and (latest.run_id, latest.seq) == ("c1-r2", 2)
    # Another replica answering the same conversation from the same state: refused.
    with pytest.raises(CheckpointConflict, match="run 2 of conversation 'c1'"):
        await store.save(
            "c1-other", data="{}", status="running", expected_version=0, conversation_id="c1", seq=2
        )
    with pytest.raises(CheckpointNotFound):
        await store.load("c1-other")  # nothing half-written
    # Later saves keep the conversation and the place.
    await store.save("c1-r2", data="{}", status="finished", expected_version=1)
    again = await store.load("c1-r2")
    assert (again.conversation_id, again.seq, again.status) == ("c1", 2, "finished")


async def _listing_and_delete(store: CheckpointStore) -> None:
    runs = await store.list(conversation_id="c1")
    assert [c.run_id for c in runs] == ["c1-r2", "c1-r1"]  # most recently saved first
    assert {c.run_id for c in await store.list(status="paused")} == set()
    assert {c.run_id for c in await store.list(status="finished")} >= {"c1-r1", "c1-r2"}
    assert len(await store.list(limit=2)) == 2
    assert await store.delete("c1-r2") is True
    assert await store.delete("c1-r2") is False
    latest = await store.latest("c1")
    assert latest is not None and latest.run_id == "c1-r1"
    # The freed place can be taken again.
    await store.save(
        "c1-r2b", data="{}", status="running", expected_version=0, conversation_id="c1", seq=2
    )


async def _concurrent_writers(store: CheckpointStore) -> None:
    """Many tasks saving their own runs at once, and racing on one shared run."""
    wins: list[int] = []
    conflicts: list[CheckpointConflict] = []

    async def own(i: int) -> None:
        version = 0
        for step in range(5):
            version = await store.save(
                f"own-{i}",
                data=f'{{"step": {step}}}',
                status="running",
                expected_version=version,
            )

    await store.save("shared", data="{}", status="running", expected_version=0)

    async def racer(i: int) -> None:
        try:
            wins.append(
                await store.save(
                    "shared", data=f'{{"by": {i}}}', status="running", expected_version=1
                )
            )
        except CheckpointConflict as exc:
            conflicts.append(exc)

    async with anyio.create_task_group() as group:
        for i in range(10):
            group.start_soon(own, i)
            group.start_soon(racer, i)
    assert wins == [2]  # exactly one of the racers saved
    assert len(conflicts) == 9
    for i in range(10):
        checkpoint = await store.load(f"own-{i}")
        assert (checkpoint.version, checkpoint.data) == (5, '{"step": 4}')
