"""Agents: the function-calling loop, tool_choice policies, and what a run returns.

* `Agent`: subclass it (or instantiate it) with instructions, a model, tools and a
  `ToolChoicePolicy`; ``await agent.run("...")`` returns a `RunResult`.
* Policies: `auto`, `required`, `none`, `forced`, `sequence`.
* Events (`AgentEvent`) report a run as it goes.
"""

from intentflow.agents.agent import FINAL_ANSWER_NOTE, Agent, AgentOptions, Instructions, OnMaxTurns
from intentflow.agents.events import (
    AgentEvent,
    FinalOutput,
    ModelDelta,
    ModelRequested,
    ModelResponded,
    ToolCallFinished,
    ToolCallStarted,
)
from intentflow.agents.output import OutputMode, OutputSpec
from intentflow.agents.result import RunResult, StopReason, TurnRecord
from intentflow.toolsets.choice import ToolChoicePolicy, auto, forced, none, required, sequence

__all__ = [
    "FINAL_ANSWER_NOTE",
    "Agent",
    "AgentEvent",
    "AgentOptions",
    "FinalOutput",
    "Instructions",
    "ModelDelta",
    "ModelRequested",
    "ModelResponded",
    "OnMaxTurns",
    "OutputMode",
    "OutputSpec",
    "RunResult",
    "StopReason",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolChoicePolicy",
    "TurnRecord",
    "auto",
    "forced",
    "none",
    "required",
    "sequence",
]
