"""What a durable run saves after every step, and the decisions that resume a paused run.

`RunState` is the JSON document a `CheckpointStore` keeps for each run: the route decision,
the node the run is at and how far its loop got (before a model call, after a response,
during a tool batch, or paused for approval), the transcript, the tool outcomes recorded so
far, usage, the guards' counters (and the loop detector's memory) and the application's run
state. It is versioned (`FORMAT_VERSION`); a checkpoint of another version is refused with
`IncompatibleCheckpoint` rather than misread.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, cast

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from intentflow.errors import IncompatibleCheckpoint, StoreError
from intentflow.messages import Message, Usage
from intentflow.models.base import FinishReason
from intentflow.router.decision import RouteDecision
from intentflow.stores.base import RunStatus
from intentflow.toolsets.choice import ToolChoice
from intentflow.toolsets.outcomes import ErrorAction, OutcomeKind, ToolCallOutcome

__all__ = ["FORMAT", "FORMAT_VERSION", "Decision", "PendingApproval", "RunState"]

FORMAT = "intentflow.run"
FORMAT_VERSION = 1

Phase = Literal["start", "model", "response", "tools", "done"]
"""Where a run was when saved: not yet routed; about to call the model; holding a response
whose tool calls have not run; in (or just after) a tool batch; ended."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class PendingApproval(BaseModel):
    """A tool call the run waits on: it needs a person's approval, or it was running when its
    process died and is not idempotent, so running it again needs a decision.

    Attributes:
        id: The approval's id (unique; the key of its decision in `Runner.resume`).
        tool_call_id: The model's id for the call.
        tool: The tool's name as the model called it.
        arguments: The call's validated arguments (sensitive ones hidden).
        kind: ``"approval"`` (the tool requires it) or ``"interrupted"`` (re-run?).
        node: The graph node that made the call.
    """

    model_config = _FROZEN

    id: str
    tool_call_id: str
    tool: str
    arguments: dict[str, Any] | str
    kind: Literal["approval", "interrupted"]
    node: str


class Decision(BaseModel):
    """A person's decision on a `PendingApproval`.

    Examples:
        >>> Decision.approve().approved, Decision.reject("over the limit").reason
        (True, 'over the limit')

    Attributes:
        approved: Run the call (``True``), or send the model a rejection (``False``).
        reason: Why, for a rejection: the model reads it in the tool's error result.
    """

    model_config = _FROZEN

    approved: bool
    reason: str = ""

    @classmethod
    def approve(cls) -> Decision:
        """Run the call."""
        return cls(approved=True)

    @classmethod
    def reject(cls, reason: str = "") -> Decision:
        """Do not run it; the model is told, with ``reason``."""
        return cls(approved=False, reason=reason)


class SavedOutcome(BaseModel):
    """A tool call's outcome as a checkpoint keeps it (the return value itself is not kept:
    what the model read, ``content``, is)."""

    model_config = _FROZEN

    tool_call_id: str
    called_as: str
    tool_name: str | None
    kind: OutcomeKind
    content: str
    arguments: dict[str, Any] | None = None
    action: ErrorAction | None = None
    attempts: int = 0
    duration: float = 0.0

    @staticmethod
    def jsonable(arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments (dates, models, ...) as JSON values."""
        return cast("dict[str, Any]", pydantic_core.to_jsonable_python(arguments, fallback=str))

    @classmethod
    def of(cls, outcome: ToolCallOutcome) -> SavedOutcome:
        """Keep an outcome."""
        arguments = outcome.arguments
        if arguments is not None:
            arguments = cls.jsonable(arguments)
        return cls(
            tool_call_id=outcome.tool_call_id,
            called_as=outcome.called_as,
            tool_name=outcome.tool_name,
            kind=outcome.kind,
            content=outcome.content,
            arguments=arguments,
            action=outcome.action,
            attempts=outcome.attempts,
            duration=outcome.duration,
        )

    def outcome(self) -> ToolCallOutcome:
        """The outcome again (``result`` and ``error`` are not restored)."""
        return ToolCallOutcome(
            tool_call_id=self.tool_call_id,
            called_as=self.called_as,
            tool_name=self.tool_name,
            kind=self.kind,
            content=self.content,
            arguments=self.arguments,
            action=self.action,
            attempts=self.attempts,
            duration=self.duration,
        )


class TurnInfo(BaseModel):
    """What a turn's request asked and its response said, for the turn's record."""

    model_config = _FROZEN

    tool_choice: ToolChoice
    tools: tuple[str, ...]
    notes: tuple[str, ...]
    finish_reason: FinishReason
    usage: Usage


class NodeProgress(BaseModel):
    """How far one node's loop got."""

    model_config = ConfigDict(extra="forbid")

    phase: Phase
    turn: int
    retries_left: int
    restrict_next: bool = False
    sent: int = 0
    usage: Usage = Field(default_factory=Usage)
    errors_per_tool: dict[str, int] = Field(default_factory=dict)
    errors_total: int = 0
    turn_info: TurnInfo | None = None
    recorded: list[SavedOutcome] = Field(default_factory=list)
    in_flight: list[str] = Field(default_factory=list)
    approvals: list[PendingApproval] = Field(default_factory=list)
    decisions: dict[str, Decision] = Field(default_factory=dict)  # by tool_call_id


class RunState(BaseModel):
    """One run's checkpoint (see the module notes)."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    version: int = FORMAT_VERSION
    run_id: str
    conversation_id: str | None = None
    seq: int | None = None
    status: RunStatus = "running"
    phase: Phase = "start"
    message: Message
    history_len: int
    transcript: list[Message]
    current_intent: str | None = None
    decision: RouteDecision | None = None
    intent: str | None = None
    excluded: list[str] = Field(default_factory=list)
    node: str | None = None
    progress: NodeProgress | None = None
    guards: dict[str, Any] | None = None
    usage_by_node: dict[str, Usage] = Field(default_factory=dict)
    state: Any = None
    output: Any = None
    error: dict[str, str] | None = None
    resume_at: int | None = None  # a failed/cancelled run resumes from transcript[:resume_at]

    def dumps(self) -> str:
        """The checkpoint's JSON text."""
        return self.model_dump_json(exclude_none=False)

    @classmethod
    def loads(cls, text: str, run_id: str | None = None) -> RunState:
        """Read a checkpoint's JSON text.

        Raises:
            IncompatibleCheckpoint: Written by a format version this code does not read.
            StoreError: Not a run checkpoint, or damaged.
        """
        try:
            head = pydantic_core.from_json(text)
        except ValueError as exc:
            raise StoreError(f"the checkpoint is not JSON: {exc}", run_id=run_id) from None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise StoreError("the checkpoint is not an intentflow run", run_id=run_id)
        if head.get("version") != FORMAT_VERSION:
            raise IncompatibleCheckpoint(run_id, head.get("version"), [FORMAT_VERSION])
        try:
            return cls.model_validate(head)
        except ValidationError as exc:
            raise StoreError(f"the checkpoint is damaged: {exc}", run_id=run_id) from None


def new_approval_id() -> str:
    """A fresh approval id."""
    return f"apr_{uuid.uuid4().hex[:20]}"
