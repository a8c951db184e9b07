"""The run context: what a tool, an instruction function or a hook may know about the run.

A tool receives it by annotating one parameter with `RunContext` (that parameter never
appears in the tool's schema)::

    @toolset.tool
    async def order_status(ctx: RunContext[Db], order_id: str) -> dict[str, str]:
        return await ctx.deps.fetch_order(order_id)

``deps`` is whatever the application injects (a database handle, an HTTP client, the user's
id). The context is immutable; the executor gives each tool call its own copy with
``tool_call_id`` and ``tool_name`` filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import uuid4

__all__ = ["RunContext"]

DepsT = TypeVar("DepsT")


def _new_run_id() -> str:
    return uuid4().hex


@dataclass(frozen=True, slots=True)
class RunContext(Generic[DepsT]):
    """What a run knows about itself, plus the application's dependencies.

    Attributes:
        deps: The application's dependencies for this run (anything; ``None`` if unused).
        run_id: A unique id for the run, bound into every log event.
        intent: The intent the router chose, if the run was routed.
        agent: The agent currently acting.
        turn: The current turn of that agent (1-based; 0 before the first model call).
        tool_call_id: For a tool call, the id the model gave it.
        tool_name: For a tool call, the tool's name.
        state: In a graph run, the run's state (the graph's ``state_type``, a Pydantic model
            the application defines); it lives in the run, is shared by every node, tool and
            hook of it, and may be changed in place.
    """

    deps: DepsT
    run_id: str = field(default_factory=_new_run_id)
    intent: str | None = None
    agent: str | None = None
    turn: int = 0
    tool_call_id: str | None = None
    tool_name: str | None = None
    state: Any = None
