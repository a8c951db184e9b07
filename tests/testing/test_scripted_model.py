"""ScriptedModel: the in-process Model that answers from a Reply/Fault script."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from intentflow.errors import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
)
from intentflow.messages import AssistantMessage, SystemMessage, ToolCall, Usage, UserMessage
from intentflow.models.base import (
    FinishReason,
    ForcedTool,
    Model,
    ModelRequest,
    ModelResponse,
    RefusalDelta,
    ResponseCompleted,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)
from intentflow.testing import ScriptedModel
from intentflow.testing.replies import Fault, FaultKind, Reply
from intentflow.toolsets import Toolset

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: City name, e.g. "Paris".
    """
    return f"sunny in {city}"


def get_time(city: str) -> str:
    """The local time in a city."""
    return f"noon in {city}"


TOOLS = Toolset("travel", [get_weather, get_time])
REQUEST = ModelRequest(
    messages=(
        SystemMessage(content="You are a travel assistant."),
        UserMessage(content="Weather in Paris?"),
    ),
    tools=tuple(TOOLS),
    tool_choice=ForcedTool("get_weather"),
)
BARE = ModelRequest(messages=(UserMessage(content="hi"),))
PARIS_AND_ROME = Reply.calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"}))


# --------------------------------------------------------------------------- helpers


async def read_all(model: ScriptedModel, request: ModelRequest = BARE) -> list[StreamEvent]:
    async with model.stream(request) as events:
        return [event async for event in events]


async def read_until_error(
    model: ScriptedModel, request: ModelRequest = BARE
) -> tuple[list[StreamEvent], BaseException]:
    seen: list[StreamEvent] = []
    async with model.stream(request) as events:
        try:
            async for event in events:
                seen.append(event)
        except ModelError as exc:
            return seen, exc
    raise AssertionError(f"the stream ended without an error after {seen!r}")


def reassemble(events: list[StreamEvent]) -> AssistantMessage:
    """The message the deltas describe, built the way a stream consumer would."""
    text: list[str] = []
    refusal: list[str] = []
    calls: dict[int, list[str]] = {}
    heads: dict[int, tuple[str, str]] = {}
    for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, RefusalDelta):
            refusal.append(event.text)
        elif isinstance(event, ToolCallDelta):
            if event.id is not None:
                assert event.name is not None
                assert event.position not in heads, "a call's head is sent once"
                heads[event.position] = (event.id, event.name)
            else:
                assert event.position in heads, "argument pieces follow their call's head"
            calls.setdefault(event.position, []).append(event.arguments)
    return AssistantMessage(
        content="".join(text) if text else None,
        refusal="".join(refusal) if refusal else None,
        tool_calls=tuple(
            ToolCall(id=heads[p][0], name=heads[p][1], arguments="".join(calls[p]))
            for p in sorted(calls)
        ),
    )


def completed(events: list[StreamEvent]) -> ModelResponse:
    finals = [e for e in events if isinstance(e, ResponseCompleted)]
    assert len(finals) == 1, "exactly one ResponseCompleted"
    assert events[-1] is finals[0], "ResponseCompleted comes last"
    return finals[0].response


async def call(model: ScriptedModel, streaming: bool) -> ModelResponse:
    if streaming:
        return completed(await read_all(model))
    return await model.complete(BARE)


# --------------------------------------------------------------------------- the protocol


def test_is_a_model() -> None:
    model = ScriptedModel(name="m")
    assert isinstance(model, Model)
    assert model.name == "m"
    assert model.requests == []
    assert "ScriptedModel(name='m'" in repr(model)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="chunk_chars"):
        ScriptedModel(chunk_chars=0)
    with pytest.raises(TypeError, match="Reply or a Fault"):
        ScriptedModel(["hello"])  # type: ignore[list-item]


# --------------------------------------------------------------------------- list scripts


@pytest.mark.anyio
async def test_list_script_answers_in_order_and_records_requests() -> None:
    model = ScriptedModel([Reply.call("get_weather", {"city": "Paris"}), Reply.text("Sunny.")])
    assert model.remaining == 2

    first = await model.complete(REQUEST)
    assert model.remaining == 1
    second = await model.complete(BARE)
    assert model.remaining == 0

    assert first.message == AssistantMessage(
        tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),)
    )
    assert first.finish_reason is FinishReason.TOOL_CALLS
    assert second.message == AssistantMessage(content="Sunny.")
    assert second.finish_reason is FinishReason.STOP

    assert model.requests == [REQUEST, BARE]
    recorded = model.requests[0]
    assert recorded.messages[1] == UserMessage(content="Weather in Paris?")
    assert recorded.tool_names == ("get_weather", "get_time")
    assert recorded.tool_choice == ForcedTool("get_weather")
    assert model.last_request is BARE


def test_last_request_before_any_request() -> None:
    with pytest.raises(LookupError, match="not received a request"):
        _ = ScriptedModel().last_request


@pytest.mark.anyio
async def test_push_extends_the_script() -> None:
    model = ScriptedModel()
    assert model.remaining == 0
    model.push(Reply.text("one"), Reply.text("two"))
    assert model.remaining == 2
    assert (await model.complete(BARE)).message.content == "one"
    model.push(Fault.drop_connection())
    assert (await model.complete(BARE)).message.content == "two"
    with pytest.raises(ModelConnectionError):
        await model.complete(BARE)
    with pytest.raises(TypeError, match="Reply or a Fault"):
        model.push("three")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_exhausted_script_says_so() -> None:
    model = ScriptedModel([Reply.text("only one")], name="m")
    await model.complete(BARE)
    with pytest.raises(ModelAPIError) as info:
        await model.complete(REQUEST)
    error = info.value
    assert error.status == 400
    assert error.code == "script_exhausted"
    assert not error.retryable
    assert error.model == "m"
    assert "request #2" in error.message
    assert "1 scripted" in error.message
    assert "push" in error.message
    assert model.requests == [BARE, REQUEST]  # recorded although unanswered

    with pytest.raises(ModelAPIError, match="script_exhausted"):
        async with model.stream(BARE):
            pass  # pragma: no cover - entering raises
    assert len(model.requests) == 3

    model.push(Reply.text("more"))
    assert (await model.complete(BARE)).message.content == "more"


# --------------------------------------------------------------------------- function scripts


@pytest.mark.anyio
async def test_sync_function_script_sees_the_request() -> None:
    seen: list[ModelRequest] = []

    def script(request: ModelRequest) -> Reply:
        seen.append(request)
        if request.tools:
            return Reply.call(request.tool_names[0], {"city": "Paris"})
        return Reply.text(f"{len(request.messages)} message(s)")

    model = ScriptedModel(script)
    with_tools = await model.complete(REQUEST)
    assert with_tools.message.tool_calls[0].name == "get_weather"
    assert (await model.complete(BARE)).message.content == "1 message(s)"
    assert seen == [REQUEST, BARE]
    assert model.requests == [REQUEST, BARE]


@pytest.mark.anyio
async def test_async_function_script() -> None:
    async def script(request: ModelRequest) -> Reply | Fault:
        await anyio.lowlevel.checkpoint()
        if request.tool_choice == "none":
            return Fault.server_error(503)
        return Reply.text("async answer")

    model = ScriptedModel(script)
    assert (await model.complete(BARE)).message.content == "async answer"
    async with model.stream(BARE) as events:
        assert await anext(events) == TextDelta("async an")
    with pytest.raises(ModelAPIError) as info:
        await model.complete(ModelRequest(messages=BARE.messages, tool_choice="none"))
    assert info.value.status == 503
    assert len(model.requests) == 3


def test_function_script_has_no_push_or_remaining() -> None:
    model = ScriptedModel(lambda request: Reply.text("x"))
    with pytest.raises(TypeError, match="function"):
        model.push(Reply.text("y"))
    with pytest.raises(TypeError, match="function"):
        _ = model.remaining


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_function_script_that_raises(streaming: bool) -> None:
    bug = KeyError("city")

    def script(request: ModelRequest) -> Reply:
        raise bug

    model = ScriptedModel(script, name="m")
    with pytest.raises(ModelAPIError) as info:
        await call(model, streaming)
    error = info.value
    assert error.status == 500
    assert error.code == "script_error"
    assert error.__cause__ is bug
    assert "raised on request #1" in error.message
    assert "KeyError" in error.message
    assert len(model.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_function_script_with_a_bad_return(streaming: bool) -> None:
    async def script(request: ModelRequest) -> str:
        return "just a string"

    model = ScriptedModel(script)  # type: ignore[arg-type]
    with pytest.raises(ModelAPIError) as info:
        await call(model, streaming)
    assert info.value.code == "script_error"
    assert info.value.status == 500
    assert "'just a string'" in info.value.message
    assert "must return a Reply or a Fault" in info.value.message


# --------------------------------------------------------------------------- responses


@pytest.mark.anyio
async def test_call_ids_are_numbered_per_model_and_deterministic() -> None:
    def script() -> list[Reply | Fault]:
        return [
            PARIS_AND_ROME,
            Reply.calls(("get_time", {"city": "Oslo"}, "my_id"), ("get_time", {"city": "Rome"})),
            Reply.call("get_weather", {"city": "Lima"}),
        ]

    async def ids(model: ScriptedModel) -> list[str]:
        first = await model.complete(REQUEST)
        second = completed(await read_all(model, REQUEST))  # a stream shares the numbering
        third = await model.complete(REQUEST)
        return [c.id for r in (first, second, third) for c in r.message.tool_calls]

    assert await ids(ScriptedModel(script())) == ["call_1", "call_2", "my_id", "call_3", "call_4"]
    assert await ids(ScriptedModel(script())) == ["call_1", "call_2", "my_id", "call_3", "call_4"]


@pytest.mark.anyio
async def test_response_envelope() -> None:
    model = ScriptedModel([Reply.text("a"), Reply.text("b")], name="gpt-test")
    first = await model.complete(BARE)
    second = completed(await read_all(model))
    assert (first.model, first.id) == ("gpt-test", "scripted-1")
    assert (second.model, second.id) == ("gpt-test", "scripted-2")


@pytest.mark.anyio
async def test_usage_is_a_deterministic_estimate() -> None:
    reply = Reply.call("get_weather", {"city": "Paris"}, content="Let me check.")
    a = await ScriptedModel([reply, reply]).complete(REQUEST)
    b = await ScriptedModel([reply]).complete(REQUEST)
    assert a.usage == b.usage
    assert a.usage.requests == 1
    assert a.usage.completion_tokens == reply.completion_tokens > 0

    bare = await ScriptedModel([reply]).complete(BARE)
    assert 0 < bare.usage.prompt_tokens < a.usage.prompt_tokens  # messages and tools count
    no_tools = ModelRequest(messages=REQUEST.messages)
    without_tools = await ScriptedModel([reply]).complete(no_tools)
    assert without_tools.usage.prompt_tokens < a.usage.prompt_tokens


@pytest.mark.anyio
async def test_scripted_usage_is_reported_as_given() -> None:
    usage = Usage(requests=1, prompt_tokens=1000, completion_tokens=7, cached_tokens=900)
    model = ScriptedModel([Reply.text("hi", usage=usage), Reply.text("hi", usage=usage)])
    assert (await model.complete(BARE)).usage == usage
    assert completed(await read_all(model)).usage == usage


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.text("done"), FinishReason.STOP),
        (Reply.call("get_weather", {"city": "Paris"}), FinishReason.TOOL_CALLS),
        (Reply.text("cut sh", finish_reason="length"), FinishReason.LENGTH),
        (Reply.text("", finish_reason="content_filter"), FinishReason.CONTENT_FILTER),
        (Reply.text("legacy", finish_reason="function_call"), FinishReason.TOOL_CALLS),
        (Reply.text("odd", finish_reason="eos_token"), FinishReason.OTHER),
        (Reply.refused("I can't help with that."), FinishReason.STOP),
    ],
)
async def test_finish_reasons(reply: Reply, expected: FinishReason) -> None:
    response = await ScriptedModel([reply]).complete(BARE)
    assert response.finish_reason is expected
    assert response.raw_finish_reason == reply.resolved_finish_reason


@pytest.mark.anyio
async def test_refusal() -> None:
    response = await ScriptedModel([Reply.refused("I can't help with that.")]).complete(BARE)
    assert response.message == AssistantMessage(refusal="I can't help with that.")


@pytest.mark.anyio
async def test_reply_delay() -> None:
    model = ScriptedModel([Reply.text("late", delay=10), Reply.text("soon", delay=0.01)])
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await model.complete(BARE)
    start = anyio.current_time()
    assert (await model.complete(BARE)).message.content == "soon"
    assert anyio.current_time() - start >= 0.01


# --------------------------------------------------------------------------- streams


@pytest.mark.anyio
async def test_stream_events_in_order() -> None:
    reply = Reply.calls(
        ("get_weather", {"city": "Paris"}), ("get_time", "{}"), content="Checking both."
    )
    model = ScriptedModel([reply], chunk_chars=6)
    events = await read_all(model, REQUEST)
    response = completed(events)
    assert events[:-1] == [
        TextDelta("Checki"),
        TextDelta("ng bot"),
        TextDelta("h."),
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city'),
        ToolCallDelta(0, None, None, '":"Par'),
        ToolCallDelta(0, None, None, 'is"}'),
        ToolCallDelta(1, "call_2", "get_time", ""),
        ToolCallDelta(1, None, None, "{}"),
    ]
    assert response.finish_reason is FinishReason.TOOL_CALLS


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        Reply.text("The weather in Paris is sunny, 18 degrees."),
        Reply.text("x"),
        PARIS_AND_ROME,
        Reply.call("get_weather", {"city": "Paris"}, content="Let me look that up."),
        Reply.refused("I can't help with that request, sorry."),
        Reply.call("get_weather", "{}"),
        Reply.call("get_weather", ""),
        Reply.text("billing", logprobs=[("bill", -0.1), ("ing", -0.01)]),
    ],
    ids=["text", "short", "parallel", "text+call", "refusal", "empty-args", "no-args", "logprobs"],
)
async def test_stream_reassembles_into_the_completed_response(reply: Reply) -> None:
    streamed = ScriptedModel([reply], chunk_chars=5)
    events = await read_all(streamed, REQUEST)
    response = completed(events)
    assert reassemble(events) == response.message
    # ...and the completed response is exactly what complete() answers.
    assert response == await ScriptedModel([reply], chunk_chars=5).complete(REQUEST)


@pytest.mark.anyio
async def test_stream_of_a_reply_with_logprobs_sends_one_token_per_delta() -> None:
    reply = Reply.text("billing", logprobs=[("bill", -0.1), ("ing", -0.01)])
    events = await read_all(ScriptedModel([reply], chunk_chars=100))
    assert events[:-1] == [TextDelta("bill"), TextDelta("ing")]


@pytest.mark.anyio
async def test_stream_records_the_request_on_entering() -> None:
    model = ScriptedModel([Reply.text("hi")])
    context = model.stream(REQUEST)
    assert model.requests == []
    async with context as events:
        assert model.requests == [REQUEST]
        assert model.remaining == 0
        assert await anext(events) == TextDelta("hi")


@pytest.mark.anyio
async def test_stream_read_after_its_block_ends() -> None:
    model = ScriptedModel([Reply.text("hello")])
    async with model.stream(BARE) as events:
        pass
    with pytest.raises(RuntimeError, match="after its `async with"):
        await events.__anext__()


@pytest.mark.anyio
async def test_stream_stopped_early_leaves_the_model_usable() -> None:
    model = ScriptedModel([Reply.text("a long answer " * 5), Reply.text("next")])
    async with model.stream(BARE) as events:
        async for _ in events:
            break
    assert (await model.complete(BARE)).message.content == "next"


# --------------------------------------------------------------------------- faults


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_rate_limit(streaming: bool) -> None:
    model = ScriptedModel([Fault.rate_limit(retry_after=5), Reply.text("ok")], name="m")
    with anyio.fail_after(1):  # no retry, no waiting for retry_after: raised at once
        with pytest.raises(ModelRateLimited) as info:
            await call(model, streaming)
    error = info.value
    assert (error.status, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    assert error.retryable
    assert error.model == "m"
    assert error.request_id == "scripted-1"
    assert "Rate limit reached" in error.message
    assert len(model.requests) == 1
    assert (await call(model, streaming)).message.content == "ok"  # the caller's retry


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("fault", "status", "code", "kind", "retryable"),
    [
        (Fault.server_error(), 500, None, "server_error", True),
        (Fault.server_error(502), 502, None, "server_error", True),
        (
            Fault.http_error(
                400, "maximum context length exceeded", error_code="context_length_exceeded"
            ),
            400,
            "context_length_exceeded",
            "invalid_request_error",
            False,
        ),
        (Fault.http_error(401, "bad key", error_type=""), 401, None, None, False),
        (Fault.http_error(429, "slow down", error_type="tokens"), 429, None, "tokens", True),
    ],
)
async def test_http_errors(
    streaming: bool, fault: Fault, status: int, code: str | None, kind: str | None, retryable: bool
) -> None:
    model = ScriptedModel([fault])
    with pytest.raises(ModelAPIError) as info:
        await call(model, streaming)
    error = info.value
    assert isinstance(error, ModelRateLimited) is (status == 429)
    assert (error.status, error.code, error.type, error.retryable) == (
        status,
        code,
        kind,
        retryable,
    )
    assert error.message == fault.message
    assert len(model.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_drop_connection(streaming: bool) -> None:
    model = ScriptedModel([Fault.drop_connection()], name="m")
    with pytest.raises(ModelConnectionError, match="drop_connection") as info:
        await call(model, streaming)
    assert not isinstance(info.value, ModelTimeout)
    assert info.value.model == "m"
    assert len(model.requests) == 1


@pytest.mark.anyio
async def test_drop_connection_on_a_stream_raises_on_entering() -> None:
    model = ScriptedModel([Fault.drop_connection()])
    entered = False
    with pytest.raises(ModelConnectionError):
        async with model.stream(BARE):
            entered = True  # pragma: no cover
    assert not entered


@pytest.mark.anyio
async def test_cut_stream_on_complete() -> None:
    model = ScriptedModel([Fault.cut_stream(PARIS_AND_ROME)])
    with pytest.raises(ModelConnectionError, match="cut_stream"):
        await model.complete(BARE)
    assert len(model.requests) == 1


@pytest.mark.anyio
async def test_cut_stream_cuts_mid_arguments_by_default() -> None:
    reply = Reply.call("get_weather", {"city": "Paris"}, content="Checking.")
    model = ScriptedModel([Fault.cut_stream(reply)], chunk_chars=4)
    seen, error = await read_until_error(model)
    assert isinstance(error, ModelConnectionError)
    # "Checking." is 3 text pieces; '{"city":"Paris"}' is 4 argument pieces: the cut is
    # after the call's head and 2 of them.
    assert seen == [
        TextDelta("Chec"),
        TextDelta("king"),
        TextDelta("."),
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"ci'),
        ToolCallDelta(0, None, None, 'ty":'),
    ]


@pytest.mark.anyio
async def test_cut_stream_cuts_mid_text_by_default() -> None:
    model = ScriptedModel([Fault.cut_stream(Reply.text("abcdefghijkl"))], chunk_chars=2)
    seen, error = await read_until_error(model)
    assert isinstance(error, ModelConnectionError)
    assert seen == [TextDelta("ab"), TextDelta("cd"), TextDelta("ef")]


@pytest.mark.anyio
@pytest.mark.parametrize(("after", "expected"), [(0, 0), (3, 3), (100, 6)])
async def test_cut_stream_after_chunks(after: int, expected: int) -> None:
    # PARIS_AND_ROME with chunk_chars=8: per call a head and 2 argument pieces.
    model = ScriptedModel([Fault.cut_stream(PARIS_AND_ROME, after_chunks=after)])
    seen, error = await read_until_error(model)
    assert isinstance(error, ModelConnectionError)
    assert len(seen) == expected
    assert not any(isinstance(e, ResponseCompleted) for e in seen)
    full = await read_all(ScriptedModel([PARIS_AND_ROME]))
    assert seen == full[:expected]


@pytest.mark.anyio
async def test_cut_stream_raises_only_once() -> None:
    model = ScriptedModel([Fault.cut_stream(Reply.text("abc"), after_chunks=1)])
    async with model.stream(BARE) as events:
        assert await events.__anext__() == TextDelta("abc")
        with pytest.raises(ModelConnectionError):
            await events.__anext__()
        with pytest.raises(StopAsyncIteration):
            await events.__anext__()


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True])
async def test_slow_reply_lets_the_callers_timeout_fire(streaming: bool) -> None:
    model = ScriptedModel([Fault.slow(30), Fault.slow(0.01, Reply.text("worth the wait"))])
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await call(model, streaming)
    with anyio.fail_after(5):
        assert (await call(model, streaming)).message.content == "worth the wait"
    assert len(model.requests) == 2


@pytest.mark.anyio
async def test_slow_stream_waits_before_entering() -> None:
    model = ScriptedModel([Fault.slow(30)])
    entered = False
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        async with model.stream(BARE):
            entered = True  # pragma: no cover
    assert not entered


@pytest.mark.anyio
@pytest.mark.parametrize("kind", [FaultKind.SLOW, FaultKind.CUT_STREAM])
async def test_fault_without_its_reply_is_a_script_error(kind: FaultKind) -> None:
    model = ScriptedModel([Fault(kind)])
    with pytest.raises(ModelAPIError, match="carries no reply") as info:
        await model.complete(BARE)
    assert info.value.code == "script_error"


@pytest.mark.anyio
async def test_a_caller_can_cancel_while_reading() -> None:
    model = ScriptedModel([Reply.text("x" * 1000)], chunk_chars=1)
    read = 0
    with anyio.move_on_after(0.05) as scope:
        async with model.stream(BARE) as events:
            async for _ in events:
                read += 1
                await anyio.sleep(0.001)
    assert scope.cancelled_caught
    assert 0 < read < 1000


@pytest.mark.anyio
async def test_stream_is_an_async_context_manager_of_an_async_iterator() -> None:
    expected = await ScriptedModel([Reply.text("hi")]).complete(BARE)
    model = ScriptedModel([Reply.text("hi")])
    async with model.stream(BARE) as events:
        iterator: AsyncIterator[StreamEvent] = events
        assert aiter(iterator) is iterator
        assert [e async for e in iterator] == [TextDelta("hi"), ResponseCompleted(expected)]
    assert expected == ModelResponse(
        message=AssistantMessage(content="hi"),
        finish_reason=FinishReason.STOP,
        usage=Usage(requests=1, prompt_tokens=expected.usage.prompt_tokens, completion_tokens=1),
        model="scripted-model",
        id="scripted-1",
        raw_finish_reason="stop",
    )
