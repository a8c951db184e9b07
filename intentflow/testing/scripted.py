"""An in-process `Model` that answers from a script: no HTTP, no SDK.

`ScriptedModel` speaks the same script vocabulary as `FakeOpenAIServer` (`Reply` and `Fault`
items, or a function of the request that returns one), but it implements the `Model` protocol
directly, so a test of an agent, a router or a graph runs without a socket and without the
``openai`` client. A fault is raised as the typed error (`ModelAPIError`, `ModelRateLimited`,
`ModelConnectionError`) the OpenAI adapter raises for the same failure of a real endpoint.

There is no client in between, so there are no client retries either: a scripted 429 or 5xx
is raised at once, on the call that consumed it. Use `FakeOpenAIServer` to test retries.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import anyio
import anyio.lowlevel

from intentflow.errors import ModelAPIError, ModelConnectionError, ModelRateLimited
from intentflow.messages import AssistantMessage
from intentflow.models.base import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    RefusalDelta,
    ResponseCompleted,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
)
from intentflow.testing.replies import (
    CallIdSequence,
    Fault,
    FaultKind,
    Reply,
    ScriptItem,
    estimate_tokens,
)

__all__ = ["ModelScript", "ModelScriptFunction", "ScriptedModel"]

ModelScriptFunction: TypeAlias = Callable[[ModelRequest], ScriptItem | Awaitable[ScriptItem]]
"""A script as a function (sync or async) of the `ModelRequest`, returning a `Reply` or a
`Fault`."""

ModelScript: TypeAlias = Iterable[ScriptItem] | ModelScriptFunction
"""What a `ScriptedModel` answers: items consumed in order, or a function of the request."""

# The OpenAI adapter's normalization, so a scripted finish reason reads as a real one would.


class ScriptedModel:
    """A `Model` that answers each request with the next item of a script, in process.

    Each call to `complete`, or each ``async with`` of `stream`, records the request in
    `requests` and consumes one script item. A `Reply` becomes a `ModelResponse`: tool calls
    without an id get ``call_1``, ``call_2``, ... (numbered across the model's whole life, so
    ids are the same on every run), the finish reason is derived as `Reply` describes, and the
    usage is the reply's own or a deterministic estimate. A `Fault` is raised as the typed
    error a real endpoint's failure becomes:

    | Fault | Raised |
    | --- | --- |
    | ``rate_limit`` | `ModelRateLimited` (any HTTP 429) |
    | ``http_error`` | `ModelAPIError` with the fault's status, message, code and type |
    | ``drop_connection`` | `ModelConnectionError` |
    | ``cut_stream`` | `ModelConnectionError`; a stream first yields the part before the cut |
    | ``slow`` | nothing: the answer comes after ``seconds`` (for a caller's timeout) |

    Errors are raised at once: there is no client here to retry them.

    Args:
        script: Items consumed in order (extend later with `push`), or a function (sync or
            async) of the `ModelRequest` returning the next item.
        name: The model's name, reported as the responses' ``model``.
        chunk_chars: How many characters of text, refusal or tool arguments one stream delta
            carries.

    Attributes:
        name: The model's name.
        requests: Every request received, in order, including those answered with a fault.

    Raises:
        ModelAPIError: From `complete` and `stream`, with ``code="script_exhausted"`` (status
            400) when a list script has no item left, or ``code="script_error"`` (status 500)
            when a script function raised (the original is the ``__cause__``) or returned
            something other than a `Reply` or a `Fault`.

    Examples:
        >>> import anyio
        >>> from intentflow.messages import UserMessage
        >>> from intentflow.models.base import ModelRequest
        >>> from intentflow.testing import Reply, ScriptedModel
        >>> model = ScriptedModel([
        ...     Reply.call("get_weather", {"city": "Paris"}),
        ...     Reply.text("It is sunny in Paris."),
        ... ])
        >>> request = ModelRequest(messages=(UserMessage(content="Weather in Paris?"),))
        >>> first = anyio.run(model.complete, request)
        >>> first.message.tool_calls[0]
        ToolCall(id='call_1', name='get_weather', arguments='{"city":"Paris"}')
        >>> first.finish_reason
        <FinishReason.TOOL_CALLS: 'tool_calls'>
        >>> anyio.run(model.complete, request).message.content
        'It is sunny in Paris.'
        >>> len(model.requests), model.remaining
        (2, 0)
    """

    def __init__(
        self,
        script: ModelScript = (),
        *,
        name: str = "scripted-model",
        chunk_chars: int = 8,
    ) -> None:
        if chunk_chars < 1:
            raise ValueError(f"chunk_chars must be >= 1, not {chunk_chars}")
        self.name = name
        self.requests: list[ModelRequest] = []
        self._chunk_chars = chunk_chars
        self._function: ModelScriptFunction | None = None
        self._items: deque[ScriptItem] = deque()
        self._scripted = 0
        self._call_ids = CallIdSequence()
        if callable(script):
            self._function = script
        else:
            self.push(*script)

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.name!r}, requests={len(self.requests)})"

    # ------------------------------------------------------------------ script

    def push(self, *items: ScriptItem) -> None:
        """Append items to the script (a list script only).

        Raises:
            TypeError: The script is a function, or an item is not a `Reply` or a `Fault`.
        """
        if self._function is not None:
            raise TypeError(
                f"push() extends a list script; the script of ScriptedModel {self.name!r} is a "
                "function, which decides every answer itself"
            )
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"a script item is a Reply or a Fault, not {item!r}")
        self._items.extend(items)
        self._scripted += len(items)

    @property
    def remaining(self) -> int:
        """How many items of a list script are not consumed yet.

        Raises:
            TypeError: The script is a function (it has no length).
        """
        if self._function is not None:
            raise TypeError(
                f"the script of ScriptedModel {self.name!r} is a function: nothing remains"
            )
        return len(self._items)

    @property
    def last_request(self) -> ModelRequest:
        """The most recent request received.

        Raises:
            LookupError: No request was received yet.
        """
        if not self.requests:
            raise LookupError(f"ScriptedModel {self.name!r} has not received a request yet")
        return self.requests[-1]

    # ------------------------------------------------------------------ the Model protocol

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer with the next script item, in one piece.

        Raises:
            ModelAPIError: A scripted HTTP error (`ModelRateLimited` for 429), or the script
                is exhausted or failed.
            ModelConnectionError: A scripted dropped connection or cut stream.
        """
        answer = await self._answer(request, streaming=False)
        return answer.response

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Answer with the next script item, as a stream of events.

        Entering the block records the request and consumes the item, so a fault that a real
        endpoint reports before streaming (an HTTP error, a dropped connection) is raised
        there. The events are `TextDelta` pieces, `RefusalDelta` pieces, then for each tool
        call a `ToolCallDelta` with its id and name followed by pieces of its arguments, and
        last one `ResponseCompleted` equal to what `complete` would have returned. A reply
        with logprobs streams its text one token per delta, as real streams do. A cut stream
        yields the events before the cut (``after_chunks`` of them, or by default up to the
        middle of the first tool call's arguments, or of the text) and then raises
        `ModelConnectionError`. Reading the events after the block has ended raises
        `RuntimeError`, as a closed connection would.

        Raises:
            ModelAPIError: On entering: a scripted HTTP error (`ModelRateLimited` for 429),
                or the script is exhausted or failed.
            ModelConnectionError: On entering for a dropped connection; while reading for a
                cut stream.

        Examples:
            >>> import anyio
            >>> from intentflow.messages import UserMessage
            >>> from intentflow.models.base import ModelRequest
            >>> from intentflow.testing import Reply, ScriptedModel
            >>> async def main() -> list[str]:
            ...     model = ScriptedModel([Reply.text("Hello there!")], chunk_chars=5)
            ...     request = ModelRequest(messages=(UserMessage(content="hi"),))
            ...     async with model.stream(request) as events:
            ...         return [type(event).__name__ async for event in events]
            >>> anyio.run(main)
            ['TextDelta', 'TextDelta', 'TextDelta', 'ResponseCompleted']
        """
        answer = await self._answer(request, streaming=True)
        events = _EventStream(answer.events, answer.error)
        try:
            yield events
        finally:
            events.close()

    # ------------------------------------------------------------------ answering

    async def _answer(self, request: ModelRequest, *, streaming: bool) -> _Answer:
        self.requests.append(request)
        number = len(self.requests)
        # A real call always yields to the event loop; so does this one, so cancellation and
        # concurrency behave alike even for an instant answer.
        await anyio.lowlevel.checkpoint()
        item = await self._next_item(request, number)
        if isinstance(item, Reply):
            if item.delay > 0:
                await anyio.sleep(item.delay)
            return self._build(item, request, number)
        return await self._fail(item, request, number, streaming=streaming)

    async def _next_item(self, request: ModelRequest, number: int) -> ScriptItem:
        if self._function is not None:
            try:
                result = self._function(request)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                raise self._script_error(
                    f"the script function raised on request #{number}: {type(exc).__name__}: {exc}",
                    number,
                ) from exc
            if not isinstance(result, Reply | Fault):
                raise self._script_error(
                    f"the script function returned {result!r} for request #{number}; it must "
                    "return a Reply or a Fault",
                    number,
                )
            return result
        if not self._items:
            raise ModelAPIError(
                400,
                f"ScriptedModel {self.name!r}: the script is exhausted: request #{number} has no "
                f"scripted reply left ({self._scripted} scripted). Give a longer script or add "
                "replies with model.push(...).",
                code="script_exhausted",
                type="invalid_request_error",
                request_id=_request_id(number),
                model=self.name,
            )
        return self._items.popleft()

    async def _fail(
        self, fault: Fault, request: ModelRequest, number: int, *, streaming: bool
    ) -> _Answer:
        if fault.kind is FaultKind.HTTP_ERROR:
            # The SDK's own mapping: 429 is a RateLimitError whatever the body says.
            error_class = ModelRateLimited if fault.status == 429 else ModelAPIError
            raise error_class(
                fault.status,
                fault.message,
                code=fault.error_code,
                type=fault.error_type or None,
                request_id=_request_id(number),
                model=self.name,
            )
        if fault.kind is FaultKind.DROP_CONNECTION:
            raise ModelConnectionError(
                f"no complete answer from {self.name!r}: the connection was closed without a "
                f"reply (scripted Fault.drop_connection, request #{number})",
                model=self.name,
            )
        if fault.reply is None:
            raise self._script_error(
                f"the Fault of kind {fault.kind.name} on request #{number} carries no reply; "
                "build it with Fault.cut_stream(...) or Fault.slow(...)",
                number,
            )
        if fault.kind is FaultKind.SLOW:
            await anyio.sleep(fault.seconds)
            return self._build(fault.reply, request, number)
        cut_error = ModelConnectionError(
            f"no complete answer from {self.name!r}: the connection was cut in the middle of "
            f"the reply (scripted Fault.cut_stream, request #{number})",
            model=self.name,
        )
        if not streaming:
            # A cut JSON body never parses: nothing of it reaches the caller.
            raise cut_error
        answer = self._build(fault.reply, request, number)
        deltas = answer.events[:-1]  # never the ResponseCompleted
        cut = answer.default_cut if fault.after_chunks is None else fault.after_chunks
        return _Answer(answer.response, deltas[:cut], 0, cut_error)

    def _script_error(self, message: str, number: int) -> ModelAPIError:
        return ModelAPIError(
            500,
            f"ScriptedModel {self.name!r}: {message}",
            code="script_error",
            type="server_error",
            request_id=_request_id(number),
            model=self.name,
        )

    def _build(self, reply: Reply, request: ModelRequest, number: int) -> _Answer:
        """The response to ``reply``, its stream events, and where a cut goes by default."""
        reply = reply.with_call_ids(self._call_ids)
        raw = reply.resolved_finish_reason
        finish_reason = FinishReason.parse(raw)
        response = ModelResponse(
            message=AssistantMessage(
                content=reply.content, tool_calls=reply.tool_calls, refusal=reply.refusal
            ),
            finish_reason=finish_reason,
            usage=reply.usage_for(_prompt_tokens(request)),
            model=self.name,
            id=_request_id(number),
            raw_finish_reason=raw,
            logprobs=_logprobs(reply, request),
        )

        events: list[StreamEvent] = []
        if reply.logprobs is not None:
            events += [TextDelta(token.token) for token in reply.logprobs if token.token]
        else:
            events += [TextDelta(p) for p in _pieces(reply.content or "", self._chunk_chars)]
        events += [RefusalDelta(p) for p in _pieces(reply.refusal or "", self._chunk_chars)]
        default_cut = len(events) // 2
        for position, call in enumerate(reply.tool_calls):
            pieces = _pieces(call.arguments, self._chunk_chars)
            if position == 0:
                # Mid-arguments: the call's head and half of its argument pieces.
                default_cut = len(events) + 1 + len(pieces) // 2
            events.append(ToolCallDelta(position, call.id, call.name, ""))
            events += [ToolCallDelta(position, None, None, piece) for piece in pieces]
        events.append(ResponseCompleted(response))
        return _Answer(response, tuple(events), default_cut, None)


@dataclass(frozen=True, slots=True)
class _Answer:
    response: ModelResponse
    events: tuple[StreamEvent, ...]
    default_cut: int
    error: ModelConnectionError | None  # raised after ``events`` when the stream is cut


class _EventStream:
    """The events of one stream; raises ``error`` after the last one, when set."""

    def __init__(self, events: tuple[StreamEvent, ...], error: ModelConnectionError | None) -> None:
        self._events = events
        self._error = error
        self._next = 0
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closed:
            raise RuntimeError(
                "the stream was read after its `async with model.stream(...)` block ended; "
                "read the events inside the block"
            )
        # Every chunk of a real stream is a chance for other tasks to run and for a
        # cancellation (a caller's timeout) to land.
        await anyio.lowlevel.checkpoint()
        if self._next < len(self._events):
            self._next += 1
            return self._events[self._next - 1]
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopAsyncIteration


def _logprobs(reply: Reply, request: ModelRequest) -> tuple[TokenLogprob, ...] | None:
    """The reply's logprobs as an endpoint sends them: only when asked, at most top_logprobs."""
    if reply.logprobs is None or request.settings.get("logprobs") is not True:
        return None
    top = request.settings.get("top_logprobs")
    keep = top if isinstance(top, int) and top >= 0 else 0
    return tuple(
        TokenLogprob(
            t.token,
            t.logprob,
            (t.top_logprobs or ((t.token, t.logprob),))[:keep] if keep else (),
        )
        for t in reply.logprobs
    )


def _request_id(number: int) -> str:
    return f"scripted-{number}"


def _prompt_tokens(request: ModelRequest) -> int:
    # What the endpoint would count: the messages and the tool entries as they would be sent.
    # sort_keys makes the estimate independent of dict order, so it is the same on every run.
    payload: dict[str, Any] = {
        "messages": [message.model_dump(mode="json") for message in request.messages],
        "tools": [tool.to_openai(request.strict_tools) for tool in request.tools],
    }
    return estimate_tokens(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
