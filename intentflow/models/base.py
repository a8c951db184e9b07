"""The model protocol and the provider-neutral request and response it speaks.

A `Model` answers a `ModelRequest` (messages, tools, a tool choice, an optional output schema)
with a `ModelResponse` (one assistant message, why generation stopped, and the usage), either
at once (`Model.complete`) or as a stream of events that ends with the whole response
(`Model.stream`). Nothing above this layer knows a provider's wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from intentflow.messages import AssistantMessage, Message, Usage
from intentflow.toolsets.choice import ForcedTool, ToolChoice, ToolChoiceMode

if TYPE_CHECKING:
    from intentflow.toolsets.tool import Tool

__all__ = [
    "FinishReason",
    "ForcedTool",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OutputSchema",
    "RefusalDelta",
    "ResponseCompleted",
    "StreamEvent",
    "TextDelta",
    "TokenLogprob",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceMode",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """A JSON Schema the final answer must follow (``response_format`` of type json_schema).

    Attributes:
        name: A name for the schema (letters, digits, ``_`` and ``-``).
        schema: The JSON Schema (strict-mode compatible when ``strict`` is true).
        strict: Whether the endpoint should enforce the schema while generating.
        description: What the output is, for the model.
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool = True
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One request to a model, provider-neutral.

    Attributes:
        messages: The conversation to continue, instructions first.
        tools: The tools sent to the model (their schemas), in a stable order.
        tool_choice: What the model must do about tools on this request.
        allowed_tools: When set, the model may call only these tools (by ``api_name``) although
            every tool in ``tools`` is sent: the cache-preserving way to narrow, since the
            tools array (part of the cached prompt prefix) does not change between turns.
        parallel_tool_calls: Whether the model may call several tools at once; ``None``
            leaves it to the endpoint's default.
        output: The schema the final answer must follow, if any.
        strict_tools: Send tools in strict mode where their schemas allow it.
        settings: Per-request sampling settings (``temperature``, ``max_completion_tokens``,
            ...), on top of the model's own.
    """

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    allowed_tools: tuple[str, ...] | None = None
    parallel_tool_calls: bool | None = None
    output: OutputSchema | None = None
    strict_tools: bool = True
    settings: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names (as the model sees them) of the tools sent."""
        return tuple(t.api_name for t in self.tools)


class FinishReason(StrEnum):
    """Why the model stopped generating."""

    STOP = "stop"
    """It finished its answer."""
    TOOL_CALLS = "tool_calls"
    """It called tools."""
    LENGTH = "length"
    """It ran out of output tokens: the text or the tool arguments may be cut short."""
    CONTENT_FILTER = "content_filter"
    """The provider's content filter stopped it."""
    OTHER = "other"
    """Anything else a provider sends (or nothing at all)."""

    @classmethod
    def parse(cls, raw: str | None) -> FinishReason:
        """The normalized reason for what a provider sent (the legacy ``function_call`` is
        ``TOOL_CALLS``; anything unknown, or nothing, is ``OTHER``).

        Examples:
            >>> FinishReason.parse("function_call"), FinishReason.parse("eos")
            (<FinishReason.TOOL_CALLS: 'tool_calls'>, <FinishReason.OTHER: 'other'>)
        """
        if raw == "function_call":
            return cls.TOOL_CALLS
        if raw is None:
            return cls.OTHER
        try:
            return cls(raw)
        except ValueError:
            return cls.OTHER


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """The log probability of one generated token, with the most likely alternatives.

    Attributes:
        token: The token text.
        logprob: Its natural-log probability (``0.0`` is certainty).
        top_logprobs: The most likely tokens at this position, as ``(token, logprob)`` pairs,
            most likely first; empty when the endpoint sent none.
    """

    token: str
    logprob: float
    top_logprobs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """A model's whole answer to one request.

    Attributes:
        message: The assistant message: text, tool calls (complete, with ids), or a refusal.
        finish_reason: Why generation stopped, normalized.
        usage: What this request consumed (``requests=1``).
        model: The model that answered, as the endpoint reports it.
        id: The endpoint's id for the completion.
        raw_finish_reason: The finish reason exactly as the endpoint sent it.
        logprobs: Log probabilities of the content tokens, when the request asked for them
            (``settings={"logprobs": True, "top_logprobs": k}``) and the endpoint sent them.
    """

    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage
    model: str | None = None
    id: str | None = None
    raw_finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, as it streams."""

    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """A piece of a refusal, as it streams."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call, as it streams.

    Attributes:
        position: Which call of the answer this piece belongs to (0-based, in the model's
            order), after the accumulator has matched it; stable for the whole stream.
        id: The call's id, when this piece carried it.
        name: The tool name, when this piece carried it.
        arguments: The piece of the argument text this delta added.
    """

    position: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseCompleted:
    """The last event of every stream: the whole response, as `Model.complete` returns it."""

    response: ModelResponse


StreamEvent: TypeAlias = TextDelta | RefusalDelta | ToolCallDelta | ResponseCompleted
"""What a model stream yields."""


@runtime_checkable
class Model(Protocol):
    """A chat model that can call tools: the one interface the agent loop talks to.

    Implement it to plug in another provider; `intentflow.models.OpenAIChatModel` speaks to
    any OpenAI-compatible endpoint and `intentflow.testing.ScriptedModel` answers from a
    script.

    ``stream`` returns an async context manager, so the underlying connection is closed when
    the block ends, even if the caller stops reading early::

        async with model.stream(request) as events:
            async for event in events:
                ...  # TextDelta, RefusalDelta, ToolCallDelta, then one ResponseCompleted

    Attributes:
        name: The model's name (as sent to the endpoint).
    """

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer the request in one piece.

        Raises:
            ModelError: The call failed (a typed subclass says how).
        """
        ...

    def stream(
        self, request: ModelRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Answer the request as a stream of events; the last event is `ResponseCompleted`.

        Raises:
            ModelError: The call failed, before or during the stream.
        """
        ...
