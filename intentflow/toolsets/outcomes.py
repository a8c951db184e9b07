"""What became of a tool call: a typed outcome, successful or not.

The executor never lets a tool call end in an unhandled exception. Every call yields exactly
one `ToolCallOutcome`, in the model's order, carrying its ``tool_call_id``; a failure is
an `OutcomeKind` plus a `ToolError` that says what went wrong in words a model can
act on (which fields, what to change, whether retrying may help).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from intentflow.errors import FieldError
from intentflow.messages import ToolMessage

__all__ = ["ErrorAction", "OutcomeKind", "ToolCallOutcome", "ToolError"]


class OutcomeKind(StrEnum):
    """How a tool call ended."""

    SUCCESS = "success"
    """The tool ran and its result went back to the model."""
    UNKNOWN_TOOL = "unknown_tool"
    """The model named a tool that does not exist."""
    PERMISSION_DENIED = "permission_denied"
    """The tool exists but is not allowed for this turn (another intent's tool, say)."""
    INVALID_JSON = "invalid_json"
    """The arguments are not a JSON object."""
    INVALID_ARGUMENTS = "invalid_arguments"
    """The arguments fail validation against the tool's schema."""
    TIMEOUT = "timeout"
    """The tool ran past its timeout (after any retries)."""
    TOOL_ERROR = "tool_error"
    """The tool raised an exception (after any retries)."""
    CANCELLED = "cancelled"
    """The run was cancelled while the tool was running."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """Too many failures went back to the model, for this tool or for the run."""


class ErrorAction(StrEnum):
    """What the error policy does with a failure."""

    RETURN_TO_MODEL = "return_to_model"
    """Send a structured error back to the model as the tool's result, so it can recover."""
    RAISE = "raise"
    """Stop: raise `ToolCallFailed` to the caller."""


MAX_FIELDS_SHOWN = 20
"""The most failing fields one error lists for the model; the rest are counted."""


@dataclass(frozen=True, slots=True)
class ToolError:
    """A failure, described for the model and for the application.

    Attributes:
        kind: The kind of failure.
        message: What happened.
        hint: What the model should do about it.
        retryable: Whether calling again (possibly with other arguments) may succeed.
        fields: For invalid arguments, every failing field with its path.
        exception: The exception behind the failure, if any (never sent to the model).
    """

    kind: OutcomeKind
    message: str
    hint: str = ""
    retryable: bool = False
    fields: tuple[FieldError, ...] = ()
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def to_content(self) -> str:
        """The JSON text the model reads as the tool's result."""
        # A refused tool and an unknown one read the same to the model: it must not learn
        # which tools exist outside what it was given.
        kind = self.kind
        shown = "unknown_tool" if kind is OutcomeKind.PERMISSION_DENIED else kind.value
        body: dict[str, Any] = {"kind": shown, "message": self.message}
        if self.fields:
            # A bounded listing: a reply with thousands of bad fields must not come back to
            # the model as an error many times its own size (``fields`` keeps them all).
            body["fields"] = [f.to_dict() for f in self.fields[:MAX_FIELDS_SHOWN]]
            if len(self.fields) > MAX_FIELDS_SHOWN:
                body["more_fields"] = len(self.fields) - MAX_FIELDS_SHOWN
        if self.hint:
            body["hint"] = self.hint
        body["retryable"] = self.retryable
        return json.dumps({"error": body}, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ToolCallOutcome:
    """The outcome of one tool call.

    Attributes:
        tool_call_id: The id the model gave the call.
        called_as: The tool name the model used.
        tool_name: The tool's own name (differs from ``called_as`` for an alias); ``None`` when
            the model named no known tool.
        kind: How the call ended.
        content: What goes back to the model: the result as JSON text (a string result is sent
            as is), or the structured error.
        result: The tool's return value (``None`` on failure).
        arguments: The validated arguments, when validation got that far.
        error: The failure, when there was one.
        action: What the error policy decided for a failure (``None`` on success).
        attempts: How many times the tool ran (more than one after retries).
        duration: Seconds from the start of the call to its outcome, retries included.
    """

    tool_call_id: str
    called_as: str
    tool_name: str | None
    kind: OutcomeKind
    content: str
    result: Any = None
    arguments: dict[str, Any] | None = None
    error: ToolError | None = None
    action: ErrorAction | None = None
    attempts: int = 0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.kind is OutcomeKind.SUCCESS

    def to_message(self) -> ToolMessage:
        """The tool message to append to the transcript."""
        return ToolMessage(
            tool_call_id=self.tool_call_id,
            content=self.content,
            name=self.called_as,
            is_error=not self.ok,
        )


# Setting the slots' member descriptors directly skips the frozen dataclass ``__init__`` (an
# ``object.__setattr__`` by name for each of the eleven fields, ~2 µs), which matters on the
# executor's hot path. The instance is exactly as frozen, equal and hashable as any other.
(
    _set_tool_call_id,
    _set_called_as,
    _set_tool_name,
    _set_kind,
    _set_content,
    _set_result,
    _set_arguments,
    _set_error,
    _set_action,
    _set_attempts,
    _set_duration,
) = (getattr(ToolCallOutcome, name).__set__ for name in ToolCallOutcome.__slots__)
_new = object.__new__


def success_outcome(
    tool_call_id: str,
    called_as: str,
    tool_name: str,
    content: str,
    result: Any,
    arguments: dict[str, Any],
    attempts: int,
    duration: float,
) -> ToolCallOutcome:
    """A successful :class:`ToolCallOutcome`, built fast (equal to one built normally)."""
    outcome = _new(ToolCallOutcome)
    _set_tool_call_id(outcome, tool_call_id)
    _set_called_as(outcome, called_as)
    _set_tool_name(outcome, tool_name)
    _set_kind(outcome, OutcomeKind.SUCCESS)
    _set_content(outcome, content)
    _set_result(outcome, result)
    _set_arguments(outcome, arguments)
    _set_error(outcome, None)
    _set_action(outcome, None)
    _set_attempts(outcome, attempts)
    _set_duration(outcome, duration)
    return outcome
