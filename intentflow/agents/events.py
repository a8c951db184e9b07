"""Typed events an agent run reports as it goes (pass ``on_event=`` to `Agent.run`).

Every event names the agent and the turn it belongs to. A streaming agent also reports the
model's output as it arrives (`ModelDelta`); a non-streaming one reports the whole response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from intentflow.messages import ToolCall
from intentflow.models.base import (
    ModelRequest,
    ModelResponse,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)
from intentflow.toolsets.outcomes import ToolCallOutcome

__all__ = [
    "AgentEvent",
    "FinalOutput",
    "ModelDelta",
    "ModelRequested",
    "ModelResponded",
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


AgentEvent: TypeAlias = (
    ModelRequested | ModelDelta | ModelResponded | ToolCallStarted | ToolCallFinished | FinalOutput
)
"""Any event of an agent run."""
