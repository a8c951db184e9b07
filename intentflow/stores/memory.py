"""`MemoryStore`: checkpoints in this process's memory, for tests and single-process scripts.

It keeps every run until deleted; a long-lived service should use `SQLiteStore` or
`PostgresStore` (or delete finished runs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from intentflow.errors import CheckpointConflict, CheckpointNotFound
from intentflow.stores.base import Checkpoint, RunStatus

__all__ = ["MemoryStore"]


class MemoryStore:
    """A `CheckpointStore` in memory (lost with the process).

    Examples:
        >>> import anyio
        >>> store = MemoryStore()
        >>> async def main():
        ...     v = await store.save("r1", data="{}", status="running", expected_version=0)
        ...     await store.save("r1", data="{}", status="finished", expected_version=v)
        ...     return (await store.load("r1")).status
        >>> anyio.run(main)
        'finished'
    """

    def __init__(self) -> None:
        self._runs: dict[str, Checkpoint] = {}
        self._places: dict[tuple[str, int], str] = {}

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
        # No await before the write: the check and the write are atomic for anyio tasks.
        old = self._runs.get(run_id)
        if old is None:
            if expected_version != 0:
                raise CheckpointNotFound(run_id, " (deleted while it ran?)")
            if conversation_id is not None and seq is not None:
                holder = self._places.get((conversation_id, seq))
                if holder is not None:
                    raise conversation_conflict(run_id, conversation_id, seq, holder)
                self._places[(conversation_id, seq)] = run_id
            new = Checkpoint(run_id, conversation_id, seq, status, 1, data, time.time())
        elif expected_version == 0:
            raise CheckpointConflict(run_id, 0, old.version, f"run {run_id!r} exists already")
        else:
            if old.version != expected_version:
                raise CheckpointConflict(run_id, expected_version, old.version)
            new = Checkpoint(
                run_id, old.conversation_id, old.seq, status, old.version + 1, data, time.time()
            )
        self._runs[run_id] = new
        return new.version

    async def load(self, run_id: str) -> Checkpoint:
        """See `CheckpointStore.load`."""
        found = self._runs.get(run_id)
        if found is None:
            raise CheckpointNotFound(run_id)
        return found

    async def latest(self, conversation_id: str) -> Checkpoint | None:
        """See `CheckpointStore.latest`."""
        runs = [c for c in self._runs.values() if c.conversation_id == conversation_id]
        return max(runs, key=lambda c: c.seq or 0, default=None)

    async def list(
        self,
        *,
        conversation_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> Sequence[Checkpoint]:
        """See `CheckpointStore.list`."""
        found = [
            c
            for c in self._runs.values()
            if (conversation_id is None or c.conversation_id == conversation_id)
            and (status is None or c.status == status)
        ]
        found.sort(key=lambda c: c.updated_at, reverse=True)
        return found[:limit]

    async def delete(self, run_id: str) -> bool:
        """See `CheckpointStore.delete`."""
        old = self._runs.pop(run_id, None)
        if old is not None and old.conversation_id is not None and old.seq is not None:
            self._places.pop((old.conversation_id, old.seq), None)
        return old is not None

    async def aclose(self) -> None:
        """Nothing to release."""


def conversation_conflict(
    run_id: str, conversation_id: str, seq: int, holder: str | None
) -> CheckpointConflict:
    """The error for a run that tried to take a conversation place another run holds."""
    other = f"run {holder!r}" if holder else "another run"
    return CheckpointConflict(
        run_id,
        None,
        None,
        f"run {run_id!r} cannot become run {seq} of conversation {conversation_id!r}: "
        f"{other} already is (another replica answered the conversation meanwhile); "
        "load the conversation again and retry the message",
    )
