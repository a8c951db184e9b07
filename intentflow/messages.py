"""Provider-neutral conversation types.

These are what a transcript is made of. They are Pydantic models, so a transcript saved as JSON
and loaded again is equal to the original::

    >>> t = [UserMessage(content="hi"), AssistantMessage(content="hello")]
    >>> TRANSCRIPT.validate_json(TRANSCRIPT.dump_json(t)) == t
    True

Model adapters (``intentflow.models``) map these to and from a provider's wire format; nothing
else in intentflow knows what a provider's messages look like.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "TRANSCRIPT",
    "AssistantMessage",
    "Message",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "Usage",
    "UserMessage",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ToolCall(BaseModel):
    """A tool call as the model made it.

    Attributes:
        id: The call id the model gave (``tool_call_id`` in the tool's reply).
        name: The tool name the model used: the name the model was shown (an alias, if any).
        arguments: The raw argument text, exactly as the model produced it. It is parsed and
            validated by the executor, never before, so malformed arguments are a typed
            outcome rather than an exception here.
    """

    model_config = _FROZEN

    id: str
    name: str
    arguments: str = "{}"


class SystemMessage(BaseModel):
    """Instructions for the model."""

    model_config = _FROZEN

    role: Literal["system"] = "system"
    content: str


class UserMessage(BaseModel):
    """A message from the user."""

    model_config = _FROZEN

    role: Literal["user"] = "user"
    content: str
    name: str | None = None


class AssistantMessage(BaseModel):
    """A reply from the model: text, tool calls, or both (or a refusal).

    Attributes:
        content: The text, if any.
        tool_calls: The tool calls, in the model's order.
        refusal: The model's refusal text, when it refused.
        agent: The name of the agent that produced this message, for transcripts that span
            several agents (not sent to the provider).
    """

    model_config = _FROZEN

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    agent: str | None = None


class ToolMessage(BaseModel):
    """The result of one tool call, as sent back to the model.

    Attributes:
        tool_call_id: The id of the call this answers.
        content: What the model reads: the result as JSON text, or a structured error.
        name: The tool's name (for the record; not every provider takes it).
        is_error: Whether ``content`` describes a failure.
    """

    model_config = _FROZEN

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str
    name: str | None = None
    is_error: bool = False


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
"""Any message of a transcript."""

TRANSCRIPT: TypeAdapter[list[Message]] = TypeAdapter(list[Message])
"""Validates and serializes a whole transcript: ``TRANSCRIPT.dump_json(messages)``."""


class Usage(BaseModel):
    """Token and request counts; add two together with ``+``.

    Examples:
        >>> Usage(requests=1, prompt_tokens=10) + Usage(requests=1, completion_tokens=5)
        Usage(requests=2, prompt_tokens=10, completion_tokens=5, cached_tokens=0)
    """

    model_config = _FROZEN

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )
