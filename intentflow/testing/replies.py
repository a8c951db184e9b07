"""The script vocabulary of intentflow's test doubles: what a fake model says, or how it fails.

A *script* is what a test double answers, one item per model call: either a sequence of
`Reply` and `Fault` items, consumed in order, or a function of the request that
returns one. The vocabulary is provider-neutral (no HTTP, no wire format), so the same script
drives the loopback `FakeOpenAIServer` and an
in-process scripted model::

    script = [
        Fault.rate_limit(retry_after=0.01),  # the client retries...
        Reply.call("get_weather", {"city": "Paris"}),  # ...and gets a tool call
        Reply.text("It is sunny in Paris."),  # the final answer, after the tool ran
    ]
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from intentflow.messages import ToolCall, Usage
from intentflow.models.base import TokenLogprob

__all__ = [
    "Arguments",
    "CallIdSequence",
    "Fault",
    "FaultKind",
    "Reply",
    "Script",
    "ScriptFunction",
    "ScriptItem",
    "TokenLogprob",
    "estimate_tokens",
]

Arguments: TypeAlias = Mapping[str, Any] | str
"""Tool-call arguments: a mapping (sent JSON-encoded) or a string (sent verbatim, so a test can
send malformed JSON on purpose)."""


def estimate_tokens(text: str) -> int:
    """A deterministic token count for text: one token per four characters, rounded up.

    Examples:
        >>> estimate_tokens("hello world")
        3
    """
    return math.ceil(len(text) / 4)


def _encode_arguments(arguments: Arguments | None) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    # Compact separators match what OpenAI models emit.
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted model reply: text, tool calls, or both (or a refusal).

    Build one with `text`, `call`, `calls` or `refused`, or directly.

    Attributes:
        content: The reply text, if any.
        tool_calls: The tool calls, in the model's order. A call with an empty ``id`` gets a
            deterministic one (``call_1``, ``call_2``, ...) from the double that serves it.
        refusal: A refusal text, when the model refuses.
        finish_reason: Why generation stopped; None derives it (``"tool_calls"`` when there
            are calls, else ``"stop"``). Set it to test providers that get it wrong.
        usage: The token usage to report; None derives a deterministic estimate.
        logprobs: Log probabilities of the content tokens; their tokens must join up to
            ``content``. None when the reply has none. A streamed reply with logprobs is sent
            one token per chunk, as real streams are.
        delay: Seconds to wait before answering.

    Examples:
        >>> Reply.call("get_weather", {"city": "Paris"}).tool_calls[0].arguments
        '{"city":"Paris"}'
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError(f"Reply.delay must be >= 0 seconds, not {self.delay}")
        if self.logprobs is not None:
            joined = "".join(t.token for t in self.logprobs)
            if joined != (self.content or ""):
                raise ValueError(
                    f"the logprob tokens join to {joined!r}, not to the content "
                    f"{self.content!r}; give one token entry per piece of the content"
                )

    @classmethod
    def text(
        cls,
        content: str,
        *,
        logprobs: Iterable[TokenLogprob | tuple[str, float]] | None = None,
        finish_reason: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A plain text reply.

        Args:
            content: The text.
            logprobs: Per-token log probabilities whose tokens join up to ``content``, as
                `TokenLogprob` or ``(token, logprob)`` pairs.
            finish_reason: Override the derived ``"stop"`` (e.g. ``"length"``).
            usage: Override the estimated usage.
            delay: Seconds to wait before answering.

        Examples:
            >>> Reply.text("billing", logprobs=[("bill", -0.1), ("ing", -0.01)]).content
            'billing'
        """
        tokens = None
        if logprobs is not None:
            tokens = tuple(
                t if isinstance(t, TokenLogprob) else TokenLogprob(t[0], t[1]) for t in logprobs
            )
        return cls(
            content=content,
            logprobs=tokens,
            finish_reason=finish_reason,
            usage=usage,
            delay=delay,
        )

    @classmethod
    def call(
        cls,
        name: str,
        arguments: Arguments | None = None,
        *,
        id: str | None = None,
        content: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A reply with one tool call.

        Args:
            name: The tool name the model calls.
            arguments: A mapping (JSON-encoded) or a string (sent verbatim, malformed or not);
                None sends ``"{}"``.
            id: The call id; None lets the serving double number it (``call_<n>``).
            content: Text sent alongside the call, if any.
            usage: Override the estimated usage.
            delay: Seconds to wait before answering.
        """
        return cls.calls((name, arguments, id), content=content, usage=usage, delay=delay)

    @classmethod
    def calls(
        cls,
        *calls: ToolCall | tuple[str, Arguments | None] | tuple[str, Arguments | None, str | None],
        content: str | None = None,
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A reply with parallel tool calls, in the order given.

        Args:
            *calls: Each a ``(name, arguments)`` or ``(name, arguments, id)`` tuple, or a
                `ToolCall`.
            content: Text sent alongside the calls, if any.
            usage: Override the estimated usage.
            delay: Seconds to wait before answering.

        Examples:
            >>> r = Reply.calls(("a", {"x": 1}), ("b", '{"broken'))
            >>> [c.arguments for c in r.tool_calls]
            ['{"x":1}', '{"broken']
        """
        if not calls:
            raise ValueError("Reply.calls() needs at least one call")
        built = []
        for call in calls:
            if isinstance(call, ToolCall):
                built.append(call)
                continue
            name, arguments, *rest = call
            call_id = (rest[0] if rest else None) or ""  # "" = numbered when served
            built.append(ToolCall(id=call_id, name=name, arguments=_encode_arguments(arguments)))
        return cls(content=content, tool_calls=tuple(built), usage=usage, delay=delay)

    @classmethod
    def refused(cls, refusal: str, *, delay: float = 0.0) -> Reply:
        """A refusal (``message.refusal`` set, no content)."""
        return cls(refusal=refusal, delay=delay)

    @property
    def resolved_finish_reason(self) -> str:
        """``finish_reason`` as sent: the given one, or derived from the tool calls."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def completion_tokens(self) -> int:
        """The estimated number of tokens the model generated for this reply."""
        parts = [self.content or "", self.refusal or ""]
        parts += [call.name + call.arguments for call in self.tool_calls]
        return estimate_tokens("".join(parts))

    def usage_for(self, prompt_tokens: int) -> Usage:
        """The usage to report: the scripted one, or an estimate for this prompt size."""
        if self.usage is not None:
            return self.usage
        return Usage(
            requests=1, prompt_tokens=prompt_tokens, completion_tokens=self.completion_tokens
        )

    def with_call_ids(self, next_id: Callable[[], str]) -> Reply:
        """This reply with every empty tool-call id replaced by ``next_id()``, in order."""
        if all(call.id for call in self.tool_calls):
            return self
        calls = tuple(
            call if call.id else call.model_copy(update={"id": next_id()})
            for call in self.tool_calls
        )
        return replace(self, tool_calls=calls)


class CallIdSequence:
    """Hands out deterministic tool-call ids: ``call_1``, ``call_2``, ...

    One sequence belongs to one test double, so ids are unique within it and the same on
    every run.

    Examples:
        >>> ids = CallIdSequence()
        >>> ids(), ids()
        ('call_1', 'call_2')
    """

    def __init__(self, prefix: str = "call_") -> None:
        self._prefix = prefix
        self._issued = 0

    def __call__(self) -> str:
        """The next id."""
        self._issued += 1
        return f"{self._prefix}{self._issued}"


class FaultKind(enum.Enum):
    """The kinds of injected failure."""

    HTTP_ERROR = "http_error"
    """Answer with an HTTP error status and an OpenAI-shaped error body."""
    DROP_CONNECTION = "drop_connection"
    """Close the connection without answering."""
    CUT_STREAM = "cut_stream"
    """Send part of a reply, then close the connection."""
    SLOW = "slow"
    """Answer only after a long wait (longer than the client's timeout)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected failure, in place of a reply. Build one with the class methods.

    Attributes:
        kind: What goes wrong.
        status: The HTTP status (``HTTP_ERROR`` only).
        message: The error message (``HTTP_ERROR`` only).
        error_type: The error body's ``type`` (``HTTP_ERROR`` only).
        error_code: The error body's ``code`` (``HTTP_ERROR`` only).
        retry_after: Seconds the server asks the client to wait (sent as ``Retry-After`` and
            ``retry-after-ms``); None sends neither header.
        reply: The reply that is cut (``CUT_STREAM``) or finally sent (``SLOW``).
        after_chunks: How many stream chunks to send before the cut (``CUT_STREAM``); None
            cuts in the middle of the first tool call's arguments (or of the text).
        seconds: How long to wait before answering (``SLOW``).
    """

    kind: FaultKind
    status: int = 0
    message: str = ""
    error_type: str = ""
    error_code: str | None = None
    retry_after: float | None = None
    reply: Reply | None = None
    after_chunks: int | None = None
    seconds: float = 0.0

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """Answer with any HTTP error status and an OpenAI-shaped error body.

        Examples:
            >>> Fault.http_error(400, "maximum context length exceeded",
            ...                  error_code="context_length_exceeded").status
            400
        """
        if not 400 <= status <= 599:
            raise ValueError(f"an HTTP error status is 400-599, not {status}")
        return cls(
            FaultKind.HTTP_ERROR,
            status=status,
            message=message,
            error_type=error_type,
            error_code=error_code,
            retry_after=retry_after,
        )

    @classmethod
    def rate_limit(
        cls,
        retry_after: float = 0.0,
        message: str = "Rate limit reached for requests. Please try again later.",
    ) -> Fault:
        """HTTP 429 with ``Retry-After`` and an OpenAI-shaped ``rate_limit_exceeded`` body.

        The ``openai`` SDK honours a positive ``retry_after`` (it reads ``retry-after-ms``
        first); for ``0`` it falls back to its own exponential backoff (0.5 s and up), so
        tests that want to be fast pass a small positive value such as ``0.01``.
        """
        return cls.http_error(
            429,
            message,
            error_type="requests",
            error_code="rate_limit_exceeded",
            retry_after=retry_after,
        )

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        message: str = "The server had an error while processing your request. Sorry about that!",
        *,
        retry_after: float | None = None,
    ) -> Fault:
        """HTTP 5xx with an OpenAI-shaped ``server_error`` body.

        Args:
            status: 500, 502, 503, ...
            message: The error message.
            retry_after: Optional ``Retry-After``; real 5xx replies rarely send one, but it lets
                a test skip the SDK's 0.5 s backoff before its retry.
        """
        if not 500 <= status <= 599:
            raise ValueError(f"a server error status is 500-599, not {status}")
        return cls.http_error(status, message, error_type="server_error", retry_after=retry_after)

    @classmethod
    def drop_connection(cls) -> Fault:
        """Read the request, then close the connection without a byte of reply."""
        return cls(FaultKind.DROP_CONNECTION)

    @classmethod
    def cut_stream(cls, reply: Reply, after_chunks: int | None = None) -> Fault:
        """Start sending ``reply``, then close the connection before it is complete.

        For a streaming request, the stream stops before ``data: [DONE]``: after
        ``after_chunks`` chunks, or by default in the middle of the first tool call's
        arguments (in the middle of the text when there are no calls). For a non-streaming
        request, the headers and half of the body are sent.
        """
        if after_chunks is not None and after_chunks < 0:
            raise ValueError(f"after_chunks must be >= 0, not {after_chunks}")
        return cls(FaultKind.CUT_STREAM, reply=reply, after_chunks=after_chunks)

    @classmethod
    def slow(cls, seconds: float, reply: Reply | None = None) -> Fault:
        """Wait ``seconds`` before answering with ``reply`` (a short text by default).

        Pick ``seconds`` longer than the client's timeout to test timeouts; shutting the
        server down cancels the wait.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds}")
        return cls(FaultKind.SLOW, reply=reply or Reply.text("(a slow reply)"), seconds=seconds)


ScriptItem: TypeAlias = Reply | Fault
"""One answer of a script."""

ScriptFunction: TypeAlias = Callable[[dict[str, Any]], ScriptItem | Awaitable[ScriptItem]]
"""A script as a function (sync or async) of the request's parsed JSON body."""

Script: TypeAlias = Iterable[ScriptItem] | ScriptFunction
"""What a test double answers: items consumed in order, or a function of the request."""
