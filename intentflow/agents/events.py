"""Typed events an agent run reports as it goes (pass ``on_event=`` to `Agent.run`).

Every event names the agent and the turn it belongs to. A streaming agent also reports the
model's output as it arrives (`ModelDelta`); a non-streaming one reports the whole response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from intentflow.messages import ToolCall
from intentflow.models.base import (
    ModelRequest,
    ModelResponse,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)
from intentflow.toolsets.outcomes import ToolCallOutcome

if TYPE_CHECKING:
    from intentflow.router.decision import RouteDecision

__all__ = [
    "AgentEvent",
    "FinalOutput",
    "GraphEvent",
    "GuardNotice",
    "HandoffTaken",
    "ModelDelta",
    "ModelRequested",
    "ModelResponded",
    "NodeStarted",
    "RouteDecided",
    "ToolCallFinished",
    "ToolCallStarted",
]


@dataclass(frozen=True, slots=True)
class ModelRequested:
    """A model call is about to be made (after the ``before_model`` hook)."""

    agent: str
    turn: int
    request: ModelRequest


@dataclass(frozen=True, slots=True)
class ModelDelta:
    """A piece of the model's output, as it streams (streaming agents only)."""

    agent: str
    turn: int
    delta: TextDelta | RefusalDelta | ToolCallDelta


@dataclass(frozen=True, slots=True)
class ModelResponded:
    """The model's whole response to a turn."""

    agent: str
    turn: int
    response: ModelResponse


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call is starting."""

    agent: str
    turn: int
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended (in success or in a typed failure)."""

    agent: str
    turn: int
    outcome: ToolCallOutcome


@dataclass(frozen=True, slots=True)
class FinalOutput:
    """The run's final output."""

    agent: str
    turn: int
    output: Any


@dataclass(frozen=True, slots=True)
class RouteDecided:
    """The router decided where a message goes (the first event of a routed run)."""

    decision: RouteDecision


@dataclass(frozen=True, slots=True)
class NodeStarted:
    """The run entered a node of the graph.

    Attributes:
        agent: The node.
        via: How: ``"entry"`` (the intent's entry point), ``"handoff"`` (the model
            transferred), ``"transition"`` (the code moved on), or ``"reroute"`` (an agent
            asked for the message to be routed again, and this is the new intent's entry).
        source: The node it came from (``None`` for the entry).
    """

    agent: str
    via: Literal["entry", "handoff", "transition", "reroute"]
    source: str | None = None


@dataclass(frozen=True, slots=True)
class HandoffTaken:
    """The model transferred the conversation to another agent.

    Attributes:
        agent: The agent that transferred.
        target: The agent it transferred to.
        payload: The handoff's validated payload, if it has one.
    """

    agent: str
    target: str
    payload: Any = None


@dataclass(frozen=True, slots=True)
class GuardNotice:
    """A guard acted: a loop note or restriction, a refused transfer, the step cap's last
    call, or a stop (the run then raises the typed error after this event).

    Attributes:
        agent: The node that was acting.
        guard: Which guard (``"loop"``, ``"max_steps"``, ``"max_visits"``, ``"cycle_cap"``,
            ``"token_budget"``).
        detail: What happened, in words.
    """

    agent: str
    guard: str
    detail: str


AgentEvent: TypeAlias = (
    ModelRequested | ModelDelta | ModelResponded | ToolCallStarted | ToolCallFinished | FinalOutput
)
"""Any event of an agent run."""

GraphEvent: TypeAlias = AgentEvent | RouteDecided | NodeStarted | HandoffTaken | GuardNotice
"""Any event of a graph run (`Runner.stream`): the agent events of each node, plus routing,
node entries, handoffs and guard notices. The final output of the run is one `FinalOutput`."""
