"""What a run returns: the output, the transcript, usage and per-turn records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from intentflow.agents.handoff import HandoffRequest
from intentflow.messages import Message, Usage
from intentflow.models.base import FinishReason, ToolChoice
from intentflow.toolsets.outcomes import OutcomeKind, ToolCallOutcome

__all__ = ["RunResult", "StopReason", "TurnRecord"]

OutputT = TypeVar("OutputT", covariant=True)

StopReason = Literal["final_answer", "stop_tool", "max_turns", "handoff"]
"""Why a run ended: the model answered; a tool that ends the run succeeded; the turn cap
was reached and the model gave its answer on a last turn without tools; or (one node of a
graph run) the model transferred the conversation to another agent."""


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn of an agent: a model call and the tool calls it asked for.

    Attributes:
        turn: The turn number (1-based).
        tool_choice: The tool_choice sent on this turn.
        tools: The names of the tools sent.
        finish_reason: Why the model stopped.
        usage: What the model call consumed.
        outcomes: The outcome of each tool call of the turn, in the model's order.
        notes: Notes intentflow added to this turn's request only (budget notes).
        model_seconds: Time spent in the model call.
        tool_seconds: Time spent executing the tool calls.
    """

    turn: int
    tool_choice: ToolChoice
    tools: tuple[str, ...]
    finish_reason: FinishReason
    usage: Usage
    outcomes: tuple[ToolCallOutcome, ...]
    notes: tuple[str, ...]
    model_seconds: float
    tool_seconds: float


@dataclass(frozen=True, slots=True)
class RunResult(Generic[OutputT]):
    """The result of a run.

    Attributes:
        output: The final output: the answer's text, or the validated output model.
        transcript: The whole conversation: the history given to the run, then every message
            the run added (the agent's instructions are not part of it).
        new_messages: The messages this run added.
        usage: What the run consumed, summed over its model calls.
        turns: One record per model call.
        agent: The agent that produced the output.
        run_id: The run's id (also bound into its log events).
        stop_reason: Why the run ended.
        duration: Seconds from start to finish.
        handoff: The transfer that ended the run, when ``stop_reason`` is ``"handoff"``.
    """

    output: OutputT
    transcript: tuple[Message, ...]
    new_messages: tuple[Message, ...]
    usage: Usage
    turns: tuple[TurnRecord, ...]
    agent: str
    run_id: str
    stop_reason: StopReason
    duration: float
    handoff: HandoffRequest | None = None

    @property
    def outcome_counts(self) -> Counter[OutcomeKind]:
        """How the run's tool calls ended, by kind.

        ``result.outcome_counts[OutcomeKind.PERMISSION_DENIED]`` counts the calls refused: the
        tool was not allowed on that turn (another intent's tool), or a reviewer rejected it.
        The ``agent.run.finished`` log event carries the same number as ``refused_calls``.
        """
        return outcome_counts(self.turns)


def outcome_counts(turns: Iterable[TurnRecord]) -> Counter[OutcomeKind]:
    """The tool-call outcomes of ``turns``, counted by kind."""
    return Counter(outcome.kind for turn in turns for outcome in turn.outcomes)
