"""Agents: the function-calling loop, tool_choice policies, the agent graph and its runner.

* `Agent`: subclass it (or instantiate it) with instructions, a model, tools and a
  `ToolChoicePolicy`; ``await agent.run("...")`` returns a `RunResult`.
* Policies: `auto`, `required`, `none`, `forced`, `sequence`.
* `AgentGraph`: agents as nodes, handoffs (`Handoff`) and transitions as edges, validated.
* `Runner`: routes a message and runs the graph under `Limits` and the loop detector
  (`LoopPolicy`); returns a `GraphResult`, or streams `GraphEvent`s.
* Events (`AgentEvent`, `GraphEvent`) report a run as it goes.
"""

from intentflow.agents.agent import FINAL_ANSWER_NOTE, Agent, AgentOptions, Instructions, OnMaxTurns
from intentflow.agents.checkpoint import Decision, PendingApproval, RunState
from intentflow.agents.events import (
    AgentEvent,
    FinalOutput,
    GraphEvent,
    GuardNotice,
    HandoffTaken,
    ModelDelta,
    ModelRequested,
    ModelResponded,
    NodeStarted,
    RouteDecided,
    ToolCallFinished,
    ToolCallStarted,
)
from intentflow.agents.graph import AgentGraph, Transition
from intentflow.agents.guards import CycleCap, Limits, OnLimit
from intentflow.agents.handoff import Handoff, HandoffRequest
from intentflow.agents.loops import LoopDetector, LoopPolicy, LoopVerdict
from intentflow.agents.output import OutputMode, OutputSpec
from intentflow.agents.result import RunResult, StopReason, TurnRecord
from intentflow.agents.runner import Conversation, EventStream, GraphResult, GraphRun, Runner
from intentflow.toolsets.choice import ToolChoicePolicy, auto, forced, none, required, sequence

__all__ = [
    "FINAL_ANSWER_NOTE",
    "Agent",
    "AgentEvent",
    "AgentGraph",
    "AgentOptions",
    "Conversation",
    "CycleCap",
    "Decision",
    "EventStream",
    "FinalOutput",
    "GraphEvent",
    "GraphResult",
    "GraphRun",
    "GuardNotice",
    "Handoff",
    "HandoffRequest",
    "HandoffTaken",
    "Instructions",
    "Limits",
    "LoopDetector",
    "LoopPolicy",
    "LoopVerdict",
    "ModelDelta",
    "ModelRequested",
    "ModelResponded",
    "NodeStarted",
    "OnLimit",
    "OnMaxTurns",
    "OutputMode",
    "OutputSpec",
    "PendingApproval",
    "RouteDecided",
    "RunResult",
    "RunState",
    "Runner",
    "StopReason",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolChoicePolicy",
    "Transition",
    "TurnRecord",
    "auto",
    "forced",
    "none",
    "required",
    "sequence",
]
