"""The checkpoint store protocol: where durable runs keep their state between steps.

A store keeps one row per run: its id, its conversation and place in it, its status, a
version that every save increments, and the run's state as JSON text (the runner writes and
reads that text; a store never interprets it). Saving is optimistic: a writer says which
version it last saw, and a store refuses (`CheckpointConflict`) when someone else has saved
since, instead of silently overwriting. A new run of a conversation takes the next place
(``seq``) in it; two runs that both try to take the same place conflict the same way, so two
replicas answering one conversation at once cannot fork it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["Checkpoint", "CheckpointStore", "RunStatus"]

RunStatus = Literal["running", "paused", "finished", "failed", "cancelled"]
"""Where a run is: in progress (or interrupted: its process died), waiting for decisions,
ended with an output, ended with an error, or cancelled by its caller."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One run's latest saved state.

    Attributes:
        run_id: The run.
        conversation_id: The conversation it belongs to (``None`` for a lone run).
        seq: Its place in the conversation (1 for the first run), ``None`` for a lone run.
        status: Where the run is.
        version: How many times it was saved (1 after the first save).
        data: The run's state, as JSON text (see `intentflow.agents.checkpoint`).
        updated_at: When it was last saved (seconds since the epoch).
    """

    run_id: str
    conversation_id: str | None
    seq: int | None
    status: RunStatus
    version: int
    data: str
    updated_at: float


@runtime_checkable
class CheckpointStore(Protocol):
    """Saves and loads runs' checkpoints (`SQLiteStore`, `PostgresStore`, `MemoryStore`).

    Every method may raise `StoreError` when the storage itself fails.
    """

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
        """Save a run's state; return its new version.

        Args:
            run_id: The run.
            data: Its state as JSON text.
            status: Its status.
            expected_version: The version this writer last saw: ``0`` for a new run.
            conversation_id: Its conversation (kept from the first save).
            seq: Its place in the conversation (kept from the first save).

        Raises:
            CheckpointConflict: The run was saved by another writer since
                ``expected_version`` (or, for ``0``, exists already), or another run already
                holds place ``seq`` of the conversation.
            CheckpointNotFound: ``expected_version`` is not 0 but the run is not there
                (deleted meanwhile).
        """
        ...

    async def load(self, run_id: str) -> Checkpoint:
        """The run's checkpoint.

        Raises:
            CheckpointNotFound: There is none.
        """
        ...

    async def latest(self, conversation_id: str) -> Checkpoint | None:
        """The checkpoint of the conversation's last run (highest ``seq``), if any."""
        ...

    async def list(
        self,
        *,
        conversation_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
    ) -> Sequence[Checkpoint]:
        """Checkpoints, most recently saved first, filtered by conversation and status."""
        ...

    async def delete(self, run_id: str) -> bool:
        """Delete a run's checkpoint; whether there was one."""
        ...

    async def aclose(self) -> None:
        """Release connections (the store cannot be used afterwards)."""
        ...
