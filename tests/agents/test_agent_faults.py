"""An `Agent` over `OpenAIChatModel` and the real ``openai`` client, against injected faults.

Every test drives the whole stack: the agent loop, the adapter, the SDK (its retries, its
timeouts, its stream parser) and the loopback `FakeOpenAIServer`, on asyncio and trio. Each
fault ends either in success after the SDK's retry or in a typed `ModelError` whose
``transcript`` and ``usage`` hold everything the run did before it; tool failures go back to
the model as structured JSON errors and the model recovers; every request intentflow sent is
checked against the OpenAI spec (when ../shared/openai-spec is at hand; see tests/spec.py).

Not covered, because the fake server cannot produce them (it answers a `Reply` or a
`Fault`, even from a script function): a completion with an empty ``choices`` list, a stream
that stalls after its first chunks (a timeout mid-stream), an error event inside a 200
stream, and a call whose id changes between its deltas.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai
import openai._base_client
import pytest

from intentflow.agents import Agent, AgentEvent, ModelResponded, ToolCallStarted
from intentflow.errors import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimited,
    ModelRefused,
    ModelTimeout,
    OutputValidationError,
    ToolCallFailed,
)
from intentflow.messages import AssistantMessage, Message, ToolMessage, UserMessage
from intentflow.models.openai_chat import Narrowing, OpenAIChatModel
from intentflow.testing.fake_server import FakeOpenAIServer, StreamQuirks
from intentflow.testing.replies import Fault, Reply, ScriptItem
from intentflow.toolsets import ErrorPolicy, OutcomeKind, Tool, tool
from tests.spec import assert_valid, requires_spec, spec_errors

pytestmark = pytest.mark.anyio

QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
RATE_LIMIT_MESSAGE = "Rate limit reached for requests. Please try again later."
FAST = 0.01  # Retry-After for faults, so the SDK's retries take milliseconds
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])


# --------------------------------------------------------------------------- helpers


@dataclass
class ToolLog:
    """Every tool execution, in order: (tool name, arguments)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, name: str | None = None) -> int:
        return sum(1 for n, _ in self.calls if name is None or n == name)


def make_tools(log: ToolLog, *, weather_timeout: float | None = None) -> list[Tool]:
    """``get_weather`` and ``get_time``, which record every execution in ``log``.

    ``get_weather`` raises for "Atlantis" and sleeps for "Slowtown" (past ``weather_timeout``).
    """

    @tool(timeout=weather_timeout)
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        log.calls.append(("get_weather", {"city": city}))
        if city == "Atlantis":
            raise ValueError("no weather station in Atlantis")
        if city == "Slowtown":
            await anyio.sleep(10)
        return f"Sunny in {city}"

    @tool
    async def get_time(city: str) -> str:
        """The local time in a city."""
        log.calls.append(("get_time", {"city": city}))
        return f"12:00 in {city}"

    return [get_weather, get_time]


@asynccontextmanager
async def serving(
    script: Sequence[ScriptItem],
    *,
    max_retries: int = 2,
    model_retries: int | None = None,
    model_timeout: float | None = None,
    **server_options: Any,
) -> AsyncIterator[tuple[FakeOpenAIServer, OpenAIChatModel]]:
    """A fake server running ``script`` and a model on a real SDK client pointed at it."""
    async with (
        FakeOpenAIServer(script, **server_options) as server,
        openai.AsyncOpenAI(
            base_url=server.base_url, api_key="test", max_retries=max_retries, timeout=5.0
        ) as client,
    ):
        model = OpenAIChatModel(
            "gpt-test", client, max_retries=model_retries, timeout=model_timeout
        )
        yield server, model
        # Every request intentflow sent (the SDK's retries included) is a valid request.
        for body in server.chat_requests:
            assert_valid("CreateChatCompletionRequest", body)


def weather_agent(model: OpenAIChatModel, log: ToolLog, **options: Any) -> Agent[str]:
    tools = options.pop("tools", None) or make_tools(log)
    return Agent(
        name="weather",
        instructions="You answer questions about the weather.",
        model=model,
        tools=tools,
        **options,
    )


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the SDK's own backoff (0.5 s and up) for faults that send no Retry-After.

    Dropped connections and timeouts have no response headers, so the SDK waits its
    exponential backoff before retrying; the retry path itself is unchanged.
    """
    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.005)


def roles(messages: Sequence[Message]) -> list[str]:
    return [m.role for m in messages]


def tool_messages(messages: Sequence[Message]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def call_ids(messages: Sequence[Message]) -> list[str]:
    return [c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]


def assert_every_call_answered(messages: Sequence[Message]) -> None:
    """Each tool call of the transcript is answered by exactly one tool message, after it."""
    answered = Counter(m.tool_call_id for m in tool_messages(messages))
    ids = call_ids(messages)
    assert len(ids) == len(set(ids)), f"duplicate tool-call ids: {ids}"
    assert answered == Counter(ids)


def sent_messages(server: FakeOpenAIServer, index: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = server.chat_requests[index]["messages"]
    return messages


def error_json(content: str) -> dict[str, Any]:
    body = json.loads(content)
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


PARIS_CALL = Reply.call("get_weather", {"city": "Paris"})


def script_with_fault(fault: ScriptItem, position: int, *, repeat: int = 1) -> list[ScriptItem]:
    """A tool call then the final answer, with ``fault`` (``repeat`` times) before model call
    number ``position`` (1: before the tool call, 2: after the tool ran)."""
    faults = [fault] * repeat
    if position == 1:
        return [*faults, PARIS_CALL, Reply.text(ANSWER)]
    return [PARIS_CALL, *faults, Reply.text(ANSWER)]


# --------------------------------------------------------------------------- 1. model faults

TRANSIENT = {
    "429": Fault.rate_limit(retry_after=FAST),
    "500": Fault.server_error(retry_after=FAST),
    "502": Fault.server_error(502, "Bad gateway.", retry_after=FAST),
    "503": Fault.server_error(503, "The engine is currently overloaded.", retry_after=FAST),
    "408": Fault.http_error(408, "Request timed out.", retry_after=FAST),
    "409": Fault.http_error(409, "Conflict.", retry_after=FAST),
}


@STREAM
@pytest.mark.parametrize("position", [1, 2])
@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_transient_http_error_then_success(fault: Fault, position: int, stream: bool) -> None:
    log = ToolLog()
    async with serving(script_with_fault(fault, position)) as (server, model):
        result = await weather_agent(model, log, stream=stream).run(QUESTION)

        assert result.output == ANSWER
        assert len(server.chat_requests) == 3  # two model calls, one of them sent twice
        retried = position - 1
        assert server.chat_requests[retried] == server.chat_requests[retried + 1]
        assert server.errors == []
    assert log.calls == [("get_weather", {"city": "Paris"})]  # the tool ran exactly once
    assert result.usage.requests == 2  # successful model calls only
    assert roles(result.transcript) == ["user", "assistant", "tool", "assistant"]
    assert_every_call_answered(result.transcript)


@STREAM
@pytest.mark.parametrize("position", [1, 2])
async def test_rate_limit_past_max_retries_raises_rate_limited(position: int, stream: bool) -> None:
    log = ToolLog()
    script = script_with_fault(Fault.rate_limit(retry_after=FAST), position, repeat=3)
    async with serving(script, max_retries=2) as (server, model):
        with pytest.raises(ModelRateLimited) as info:
            await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position - 1 + 3  # the first try and 2 retries

    exc = info.value
    assert isinstance(exc, ModelAPIError)
    assert exc.status == 429
    assert exc.message == RATE_LIMIT_MESSAGE
    assert exc.code == "rate_limit_exceeded"
    assert exc.type == "requests"
    assert exc.retryable is True
    assert exc.request_id == f"req_fake{position - 1 + 3}"  # the last attempt's
    assert exc.model == "gpt-test"
    assert exc.agent == "weather"
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    transcript = exc.transcript
    assert isinstance(transcript[0], UserMessage)
    assert transcript[0].content == QUESTION
    if position == 1:
        assert len(transcript) == 1
        assert log.calls == []
    else:
        assert roles(transcript) == ["user", "assistant", "tool"]
        assistant = transcript[1]
        assert isinstance(assistant, AssistantMessage)
        assert [(c.name, json.loads(c.arguments)) for c in assistant.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        answer = transcript[2]
        assert isinstance(answer, ToolMessage)
        assert answer.tool_call_id == assistant.tool_calls[0].id
        assert answer.content == "Sunny in Paris"
        assert answer.is_error is False
        assert log.count() == 1


@pytest.mark.parametrize(("client_retries", "model_retries"), [(2, 0), (0, 3), (3, 1)])
async def test_the_models_max_retries_overrides_the_clients(
    client_retries: int, model_retries: int
) -> None:
    log = ToolLog()
    script = [Fault.rate_limit(retry_after=FAST)] * 5
    async with serving(script, max_retries=client_retries, model_retries=model_retries) as (
        server,
        model,
    ):
        with pytest.raises(ModelRateLimited):
            await weather_agent(model, log).run(QUESTION)
        assert len(server.chat_requests) == model_retries + 1


@STREAM
async def test_run_continues_from_the_transcript_of_a_failed_run(stream: bool) -> None:
    """The transcript of a run that failed on its second model call is complete: a new run
    continues from it and answers without executing the tool again."""
    log = ToolLog()
    script: list[ScriptItem] = [
        PARIS_CALL,
        *[Fault.rate_limit(retry_after=FAST)] * 2,
        Reply.text(ANSWER),
    ]
    async with serving(script, max_retries=1) as (server, model):
        agent = weather_agent(model, log, stream=stream)
        with pytest.raises(ModelRateLimited) as info:
            await agent.run(QUESTION)
        result = await agent.run([], history=info.value.transcript)

        assert result.output == ANSWER
        # The continuation sent what the failed request sent: the tool result included.
        assert sent_messages(server, 3) == sent_messages(server, 1)
    assert log.count() == 1
    assert roles(result.transcript) == ["user", "assistant", "tool", "assistant"]


@STREAM
@pytest.mark.parametrize("position", [1, 2])
@pytest.mark.parametrize("status", [500, 503])
async def test_persistent_server_error_raises_api_error(
    status: int, position: int, stream: bool
) -> None:
    log = ToolLog()
    fault = Fault.server_error(status, "The server had an error.", retry_after=FAST)
    async with serving(script_with_fault(fault, position, repeat=3)) as (server, model):
        with pytest.raises(ModelAPIError) as info:
            await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position - 1 + 3

    exc = info.value
    assert type(exc) is ModelAPIError
    assert exc.status == status
    assert exc.message == "The server had an error."
    assert exc.type == "server_error"
    assert exc.code is None
    assert exc.retryable is True
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    assert roles(exc.transcript) == (["user"] if position == 1 else ["user", "assistant", "tool"])
    assert_every_call_answered(exc.transcript)
    assert log.count() == position - 1


CLIENT_ERRORS = {
    "context_length": (400, "context_length_exceeded", "invalid_request_error"),
    "invalid_key": (401, "invalid_api_key", "invalid_request_error"),
    "not_found": (404, "model_not_found", "invalid_request_error"),
    "bad_value": (422, "invalid_value", "invalid_request_error"),
}


@STREAM
@pytest.mark.parametrize("position", [1, 2])
@pytest.mark.parametrize(
    ("status", "code", "error_type"), CLIENT_ERRORS.values(), ids=CLIENT_ERRORS.keys()
)
async def test_client_error_is_not_retried(
    status: int, code: str, error_type: str, position: int, stream: bool
) -> None:
    log = ToolLog()
    message = f"This request failed with {code}."
    fault = Fault.http_error(status, message, error_code=code, error_type=error_type)
    async with serving(script_with_fault(fault, position)) as (server, model):
        with pytest.raises(ModelAPIError) as info:
            await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position  # sent once: a 4xx is not retried

    exc = info.value
    assert type(exc) is ModelAPIError
    assert (exc.status, exc.code, exc.type, exc.message) == (status, code, error_type, message)
    assert exc.retryable is False
    assert exc.request_id == f"req_fake{position}"
    assert code in str(exc)
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    assert roles(exc.transcript) == (["user"] if position == 1 else ["user", "assistant", "tool"])
    assert log.count() == position - 1


@pytest.mark.usefixtures("fast_backoff")
@STREAM
@pytest.mark.parametrize("position", [1, 2])
async def test_dropped_connection_then_success(position: int, stream: bool) -> None:
    log = ToolLog()
    async with serving(script_with_fault(Fault.drop_connection(), position)) as (server, model):
        result = await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == 3
        assert server.chat_requests[position - 1] == server.chat_requests[position]
    assert result.output == ANSWER
    assert log.count() == 1
    assert result.usage.requests == 2
    assert_every_call_answered(result.transcript)


@pytest.mark.usefixtures("fast_backoff")
@STREAM
@pytest.mark.parametrize("position", [1, 2])
async def test_persistent_dropped_connection_raises_connection_error(
    position: int, stream: bool
) -> None:
    log = ToolLog()
    script = script_with_fault(Fault.drop_connection(), position, repeat=3)
    async with serving(script) as (server, model):
        with pytest.raises(ModelConnectionError) as info:
            await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position - 1 + 3

    exc = info.value
    assert type(exc) is ModelConnectionError
    assert exc.model == "gpt-test"
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    assert roles(exc.transcript) == (["user"] if position == 1 else ["user", "assistant", "tool"])
    assert_every_call_answered(exc.transcript)
    assert log.count() == position - 1


CUT_REPLIES = {
    "mid_first_call": Fault.cut_stream(
        Reply.calls(("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"}))
    ),
    # role chunk, the first call whole (name + 4 argument pieces), then the second call's head
    "mid_second_call": Fault.cut_stream(
        Reply.calls(("get_weather", {"city": "Rome"}), ("get_time", {"city": "Paris"})),
        after_chunks=7,
    ),
    "before_finish": Fault.cut_stream(Reply.call("get_weather", {"city": "Paris"}), 6),
    "headers_only": Fault.cut_stream(PARIS_CALL, after_chunks=0),
    "mid_text": Fault.cut_stream(Reply.text("It is sunny in Par... and the rest")),
}


@pytest.mark.parametrize("position", [1, 2])
@pytest.mark.parametrize("cut", CUT_REPLIES.values(), ids=CUT_REPLIES.keys())
async def test_stream_cut_raises_connection_error_and_runs_no_tool(
    cut: Fault, position: int
) -> None:
    """The SDK cannot retry a stream that broke after its 200: the run fails typed, with no
    half message in the transcript and none of the cut reply's calls executed."""
    log = ToolLog()
    script: list[ScriptItem] = [cut, Reply.text(ANSWER)]
    if position == 2:
        script.insert(0, PARIS_CALL)
    events: list[AgentEvent] = []
    async with serving(script) as (server, model):
        with pytest.raises(ModelConnectionError) as info:
            await weather_agent(model, log, stream=True).run(QUESTION, on_event=events.append)
        assert len(server.chat_requests) == position  # not retried

    # The deltas before the cut were reported; no call of the cut turn was started.
    started = [e.turn for e in events if isinstance(e, ToolCallStarted)]
    assert started == [1] * (position - 1)
    assert not any(isinstance(e, ModelResponded) and e.turn == position for e in events)

    exc = info.value
    assert type(exc) is ModelConnectionError
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    if position == 1:
        assert roles(exc.transcript) == ["user"]
        assert log.calls == []
    else:
        assert roles(exc.transcript) == ["user", "assistant", "tool"]
        assert log.calls == [("get_weather", {"city": "Paris"})]  # only the first turn's call
    assert_every_call_answered(exc.transcript)


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("position", [1, 2])
async def test_json_body_cut_is_retried_then_succeeds(position: int) -> None:
    """For a non-streaming request, a body cut short is a connection error the SDK retries."""
    log = ToolLog()
    cut = Fault.cut_stream(Reply.call("get_weather", {"city": "Paris"}))
    async with serving(script_with_fault(cut, position)) as (server, model):
        result = await weather_agent(model, log).run(QUESTION)
        assert len(server.chat_requests) == 3
    assert result.output == ANSWER
    assert log.count() == 1
    assert_every_call_answered(result.transcript)


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("position", [1, 2])
async def test_json_body_cut_persistently_raises_a_model_error(position: int) -> None:
    log = ToolLog()
    cut = Fault.cut_stream(Reply.call("get_weather", {"city": "Paris"}))
    async with serving(script_with_fault(cut, position, repeat=3)) as (server, model):
        with pytest.raises(ModelError) as info:
            await weather_agent(model, log).run(QUESTION)
        assert len(server.chat_requests) == position - 1 + 3

    exc = info.value
    assert isinstance(exc, ModelConnectionError)
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    assert roles(exc.transcript) == (["user"] if position == 1 else ["user", "assistant", "tool"])
    assert log.count() == position - 1


@STREAM
@pytest.mark.parametrize("position", [1, 2])
async def test_slow_reply_past_the_timeout_raises_model_timeout(
    position: int, stream: bool
) -> None:
    log = ToolLog()
    script = script_with_fault(Fault.slow(5), position)
    async with serving(script, model_timeout=0.2, model_retries=0) as (server, model):
        with anyio.fail_after(2):
            with pytest.raises(ModelTimeout) as info:
                await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position

    exc = info.value
    assert isinstance(exc, ModelConnectionError)
    assert "timed out" in str(exc)
    assert exc.usage is not None
    assert exc.usage.requests == position - 1
    assert roles(exc.transcript) == (["user"] if position == 1 else ["user", "assistant", "tool"])
    assert log.count() == position - 1


@pytest.mark.usefixtures("fast_backoff")
@STREAM
async def test_slow_reply_then_success_after_the_sdk_retries(stream: bool) -> None:
    log = ToolLog()
    script: list[ScriptItem] = [PARIS_CALL, Fault.slow(5), Reply.text(ANSWER)]
    async with serving(script, model_timeout=0.2, model_retries=1) as (server, model):
        with anyio.fail_after(2):
            result = await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == 3
        assert server.chat_requests[1] == server.chat_requests[2]
    assert result.output == ANSWER
    assert log.count() == 1


@pytest.mark.usefixtures("fast_backoff")
@STREAM
async def test_retried_model_requests_never_run_a_tool_twice(stream: bool) -> None:
    log = ToolLog()
    script: list[ScriptItem] = [
        Reply.calls(("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"})),
        Fault.server_error(retry_after=FAST),
        Fault.rate_limit(retry_after=FAST),
        Reply.call("get_weather", {"city": "Rome"}),
        Fault.drop_connection(),
        Fault.server_error(502, "Bad gateway.", retry_after=FAST),
        Reply.calls(("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})),
        Fault.rate_limit(retry_after=FAST),
        Reply.text(ANSWER),
    ]
    async with serving(script) as (server, model):
        result = await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == len(script)
        assert server.errors == []
        # The SDK resent each request as it was: no tool result was added or duplicated.
        requests = server.chat_requests
        assert requests[1] == requests[2] == requests[3]
        assert requests[4] == requests[5] == requests[6]
        assert requests[7] == requests[8]

    ids = call_ids(result.transcript)
    assert len(ids) == len(set(ids)) == 5
    assert log.count() == len(ids)
    assert Counter(c["city"] for _, c in log.calls) == Counter(
        ["Paris", "Paris", "Rome", "Oslo", "Lima"]
    )
    assert_every_call_answered(result.transcript)
    assert result.usage.requests == 4
    assert result.output == ANSWER


# --------------------------------------------------------------------------- 2. stream quirks

QUIRKS = {
    "openai": StreamQuirks(),
    "omit_index": StreamQuirks(omit_index=True),
    "index_always_zero": StreamQuirks(index_always_zero=True),
    "repeat_id": StreamQuirks(repeat_id=True),
    "whole_call_per_chunk": StreamQuirks(whole_call_per_chunk=True),
    "omit_id": StreamQuirks(omit_id=True),
    "index_zero+omit_id": StreamQuirks(index_always_zero=True, omit_id=True),
    "index_zero+repeat_id": StreamQuirks(index_always_zero=True, repeat_id=True),
    "index_zero+omit_id+repeat_id": StreamQuirks(
        index_always_zero=True, omit_id=True, repeat_id=True
    ),
    "omit_index+repeat_id": StreamQuirks(omit_index=True, repeat_id=True),
    "omit_index+omit_id": StreamQuirks(omit_index=True, omit_id=True),
    "omit_index+omit_id+repeat_id": StreamQuirks(omit_index=True, omit_id=True, repeat_id=True),
    "omit_index+omit_id+whole": StreamQuirks(
        omit_index=True, omit_id=True, whole_call_per_chunk=True
    ),
    "index_zero+omit_id+whole": StreamQuirks(
        index_always_zero=True, omit_id=True, whole_call_per_chunk=True
    ),
}
PARALLEL = [
    ("get_weather", {"city": "Paris"}),
    ("get_weather", {"city": "São Paulo"}),
    ("get_time", {"city": "Tokyo"}),
]


@pytest.mark.parametrize("chunk_chars", [1, 4])
@pytest.mark.parametrize("quirks", QUIRKS.values(), ids=QUIRKS.keys())
async def test_parallel_calls_survive_stream_quirks(quirks: StreamQuirks, chunk_chars: int) -> None:
    log = ToolLog()
    script = [Reply.calls(*PARALLEL, content="Let me look."), Reply.text(ANSWER)]
    async with serving(script, stream_quirks=quirks, chunk_chars=chunk_chars) as (server, model):
        result = await weather_agent(model, log, stream=True).run(QUESTION)

        assert result.output == ANSWER
        assert len(server.chat_requests) == 2
        # What the model received on its second call: its calls, then one answer to each.
        sent = sent_messages(server, 1)
        assistant = sent[-4]
        assert assistant["role"] == "assistant"
        assert assistant["content"] == "Let me look."
        sent_calls = assistant["tool_calls"]
        assert [
            (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in sent_calls
        ] == PARALLEL
        sent_ids = [c["id"] for c in sent_calls]
        assert len(set(sent_ids)) == 3
        answers = {m["tool_call_id"]: m["content"] for m in sent[-3:] if m["role"] == "tool"}
        assert answers == {
            sent_ids[0]: "Sunny in Paris",
            sent_ids[1]: "Sunny in São Paulo",
            sent_ids[2]: "12:00 in Tokyo",
        }

    # Each call executed exactly once, with its own arguments.
    assert sorted(log.calls, key=repr) == sorted(PARALLEL, key=repr)
    assert_every_call_answered(result.transcript)
    if not quirks.omit_id:
        assert call_ids(result.transcript) == ["call_1", "call_2", "call_3"]
    assert roles(result.transcript) == ["user", "assistant", "tool", "tool", "tool", "assistant"]


@pytest.mark.parametrize(
    ("stream", "quirks"),
    [
        pytest.param(False, StreamQuirks(), id="json"),
        pytest.param(True, StreamQuirks(), id="sse"),
        pytest.param(True, StreamQuirks(repeat_id=True), id="sse-repeat_id"),
    ],
)
async def test_parallel_calls_that_reuse_one_id_run_separately(
    stream: bool, quirks: StreamQuirks
) -> None:
    """Providers that give every parallel call of a reply the same id (reported against
    DeepSeek, GLM and Kimi): each call still runs once and gets an answer of its own."""
    log = ToolLog()
    script = [
        Reply.calls(
            ("get_weather", {"city": "Paris"}, "call_dup"),
            ("get_weather", {"city": "Rome"}, "call_dup"),
        ),
        Reply.text(ANSWER),
    ]
    async with serving(script, stream_quirks=quirks) as (server, model):
        result = await weather_agent(model, log, stream=stream).run(QUESTION)
        sent = sent_messages(server, 1)
        sent_ids = [c["id"] for c in sent[-3]["tool_calls"]]
        assert len(set(sent_ids)) == 2
        assert {m["tool_call_id"] for m in sent[-2:]} == set(sent_ids)

    assert sorted(c["city"] for _, c in log.calls) == ["Paris", "Rome"]
    assert_every_call_answered(result.transcript)
    assert result.output == ANSWER


# --------------------------------------------------------------------------- 3. tool failures


@dataclass(frozen=True)
class ToolFailure:
    bad: Reply
    kind: OutcomeKind  # the outcome's kind
    shown: str  # the kind the model reads
    executed: list[tuple[str, dict[str, Any]]]  # tool executions the bad call caused
    allowed: tuple[str, ...] | None = None
    weather_timeout: float | None = None
    narrowing: Narrowing | None = None


TOOL_FAILURES = {
    "unknown_tool": ToolFailure(
        Reply.call("get_forecast", {"city": "Paris"}), OutcomeKind.UNKNOWN_TOOL, "unknown_tool", []
    ),
    "permission_denied": ToolFailure(
        Reply.call("get_time", {"city": "Paris"}),
        OutcomeKind.PERMISSION_DENIED,
        "unknown_tool",
        [],
        allowed=("get_weather",),
    ),
    "permission_denied_allowed_tools": ToolFailure(
        Reply.call("get_time", {"city": "Paris"}),
        OutcomeKind.PERMISSION_DENIED,
        "unknown_tool",
        [],
        allowed=("get_weather",),
        narrowing="allowed_tools",
    ),
    "invalid_json": ToolFailure(
        Reply.call("get_weather", '{"city": "Par'), OutcomeKind.INVALID_JSON, "invalid_json", []
    ),
    "wrong_type": ToolFailure(
        Reply.call("get_weather", {"city": 75001}),
        OutcomeKind.INVALID_ARGUMENTS,
        "invalid_arguments",
        [],
    ),
    "missing_field": ToolFailure(
        Reply.call("get_weather", {"town": "Paris"}),
        OutcomeKind.INVALID_ARGUMENTS,
        "invalid_arguments",
        [],
    ),
    "tool_raises": ToolFailure(
        Reply.call("get_weather", {"city": "Atlantis"}),
        OutcomeKind.TOOL_ERROR,
        "tool_error",
        [("get_weather", {"city": "Atlantis"})],
    ),
    "tool_timeout": ToolFailure(
        Reply.call("get_weather", {"city": "Slowtown"}),
        OutcomeKind.TIMEOUT,
        "timeout",
        [("get_weather", {"city": "Slowtown"})],
        weather_timeout=0.05,
    ),
}


@STREAM
@pytest.mark.parametrize("case", TOOL_FAILURES.values(), ids=TOOL_FAILURES.keys())
async def test_tool_failure_goes_back_to_the_model_which_recovers(
    case: ToolFailure, stream: bool
) -> None:
    log = ToolLog()
    script = [case.bad, PARIS_CALL, Reply.text(ANSWER)]
    tools = make_tools(log, weather_timeout=case.weather_timeout)
    async with serving(script) as (server, model):
        agent = weather_agent(model, log, stream=stream, tools=tools, narrowing=case.narrowing)
        with anyio.fail_after(2):
            result = await agent.run(QUESTION, allowed=case.allowed)

        assert result.output == ANSWER
        assert len(server.chat_requests) == 3
        if case.allowed is not None:  # only the allowed tools were offered
            for body in server.chat_requests:
                if case.narrowing == "allowed_tools":  # every tool sent, the choice narrowed
                    assert [t["function"]["name"] for t in body["tools"]] == [
                        "get_weather",
                        "get_time",
                    ]
                    assert body["tool_choice"]["type"] == "allowed_tools"
                    offered = body["tool_choice"]["allowed_tools"]["tools"]
                    assert [t["function"]["name"] for t in offered] == list(case.allowed)
                else:
                    assert [t["function"]["name"] for t in body["tools"]] == list(case.allowed)
        # The model read the structured error as the bad call's result.
        sent = sent_messages(server, 1)
        assert sent[-2]["role"] == "assistant"
        bad_id = sent[-2]["tool_calls"][0]["id"]
        assert sent[-1]["role"] == "tool"
        assert sent[-1]["tool_call_id"] == bad_id
        assert set(sent[-1]) == {"role", "tool_call_id", "content"}
        error = error_json(sent[-1]["content"])
        assert error["kind"] == case.shown
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["retryable"], bool)
        # ...and the fixed call's result on the next turn.
        sent = sent_messages(server, 2)
        assert sent[-1] == {
            "role": "tool",
            "tool_call_id": sent[-2]["tool_calls"][0]["id"],
            "content": "Sunny in Paris",
        }

    assert log.calls == [*case.executed, ("get_weather", {"city": "Paris"})]
    assert roles(result.transcript) == [
        "user", "assistant", "tool", "assistant", "tool", "assistant",
    ]  # fmt: skip
    failed, fixed = tool_messages(result.transcript)
    assert failed.is_error is True
    assert failed.tool_call_id == bad_id
    assert error_json(failed.content) == error
    assert fixed.is_error is False
    outcome = result.turns[0].outcomes[0]
    assert outcome.kind is case.kind
    assert result.turns[1].outcomes[0].kind is OutcomeKind.SUCCESS
    assert_every_call_answered(result.transcript)


async def test_tool_failure_details_the_model_reads() -> None:
    """The error JSON says what is wrong in terms the model can act on."""
    log = ToolLog()
    script = [
        Reply.calls(
            ("get_forecast", {"city": "Paris"}),
            ("get_time", {"city": "Paris"}),
            ("get_weather", {"city": 75001}),
            ("get_weather", {"town": "Paris"}),
            ("get_weather", '{"city": "Par'),
            ("get_weather", {"city": "Atlantis"}),
        ),
        Reply.text(ANSWER),
    ]
    async with serving(script) as (server, model):
        agent = weather_agent(model, log, error_policy=ErrorPolicy(max_errors_per_tool=10))
        result = await agent.run(QUESTION, allowed=["get_weather"])
        errors = [error_json(m["content"]) for m in sent_messages(server, 1)[-6:]]

    unknown, denied, wrong_type, missing, bad_json, raised = errors
    # A tool outside the allowed set reads exactly like one that does not exist.
    assert unknown["kind"] == denied["kind"] == "unknown_tool"
    assert unknown["message"] == "tool 'get_forecast' is not available"
    assert denied["message"] == "tool 'get_time' is not available"
    assert unknown["hint"] == denied["hint"] == "Call one of: get_weather."
    assert "get_time" not in unknown["hint"]
    assert [(f["field"], f["type"]) for f in wrong_type["fields"]] == [("city", "string_type")]
    assert ("city", "missing") in [(f["field"], f["type"]) for f in missing["fields"]]
    assert wrong_type["retryable"] is missing["retryable"] is bad_json["retryable"] is True
    assert bad_json["kind"] == "invalid_json"
    assert raised["kind"] == "tool_error"
    assert "ValueError: no weather station in Atlantis" in raised["message"]
    assert [o.kind for o in result.turns[0].outcomes] == [
        OutcomeKind.UNKNOWN_TOOL,
        OutcomeKind.PERMISSION_DENIED,
        OutcomeKind.INVALID_ARGUMENTS,
        OutcomeKind.INVALID_ARGUMENTS,
        OutcomeKind.INVALID_JSON,
        OutcomeKind.TOOL_ERROR,
    ]
    assert log.calls == [("get_weather", {"city": "Atlantis"})]
    assert result.output == ANSWER


@STREAM
async def test_tool_failure_raised_by_policy_keeps_the_transcript(stream: bool) -> None:
    log = ToolLog()
    script = [
        Reply.calls(("get_weather", {"city": "Atlantis"}), ("get_time", {"city": "Paris"})),
        Reply.text(ANSWER),
    ]
    async with serving(script) as (server, model):
        agent = weather_agent(model, log, stream=stream, error_policy=ErrorPolicy.raise_all())
        with pytest.raises(ToolCallFailed) as info:
            await agent.run(QUESTION)
        assert len(server.chat_requests) == 1

    exc = info.value
    assert exc.outcome.kind is OutcomeKind.TOOL_ERROR
    assert [o.kind for o in exc.outcomes] == [OutcomeKind.TOOL_ERROR, OutcomeKind.SUCCESS]
    assert roles(exc.transcript) == ["user", "assistant", "tool", "tool"]
    assert [m.is_error for m in tool_messages(exc.transcript)] == [True, False]
    assert_every_call_answered(exc.transcript)
    assert exc.usage is not None
    assert exc.usage.requests == 1
    assert log.count() == 2  # the sibling call still ran


async def test_repeated_tool_failures_exhaust_the_error_budget() -> None:
    log = ToolLog()
    bad = Reply.call("get_weather", '{"city": "Par')
    async with serving([bad] * 4 + [Reply.text(ANSWER)]) as (server, model):
        agent = weather_agent(model, log, error_policy=ErrorPolicy(max_errors_per_tool=3))
        with pytest.raises(ToolCallFailed) as info:
            await agent.run(QUESTION)
        assert len(server.chat_requests) == 4

    exc = info.value
    assert exc.outcome.kind is OutcomeKind.BUDGET_EXCEEDED
    assert roles(exc.transcript) == ["user"] + ["assistant", "tool"] * 4
    assert_every_call_answered(exc.transcript)
    last = exc.transcript[-1]
    assert isinstance(last, ToolMessage)
    assert last.is_error is True
    assert error_json(last.content)["kind"] == "budget_exceeded"
    assert log.calls == []


# --------------------------------------------------------------------------- 4. malformed output

EMPTY = Reply(content=None)


@STREAM
async def test_empty_reply_gets_a_correction_then_succeeds(stream: bool) -> None:
    log = ToolLog()
    async with serving([EMPTY, Reply.text(ANSWER)]) as (server, model):
        result = await weather_agent(model, log, stream=stream).run(QUESTION)
        correction = sent_messages(server, 1)[-2:]

    assert result.output == ANSWER
    # An empty reply goes back as empty text (the API wants content without tool calls).
    assert correction[0] == {"role": "assistant", "content": ""}
    assert correction[1]["role"] == "user"
    assert "empty" in correction[1]["content"]
    assert roles(result.transcript) == ["user", "assistant", "user", "assistant"]
    assert result.usage.requests == 2


@STREAM
@pytest.mark.parametrize("output_retries", [0, 1, 2])
async def test_reply_empty_past_output_retries_raises(output_retries: int, stream: bool) -> None:
    log = ToolLog()
    script = [EMPTY] * (output_retries + 1) + [Reply.text(ANSWER)]
    async with serving(script) as (server, model):
        agent = weather_agent(model, log, stream=stream, output_retries=output_retries)
        with pytest.raises(OutputValidationError) as info:
            await agent.run(QUESTION)
        assert len(server.chat_requests) == output_retries + 1

    exc = info.value
    assert exc.attempts == output_retries + 1
    assert exc.raw == ""
    assert roles(exc.transcript) == ["user", "assistant"] + ["user", "assistant"] * output_retries
    assert exc.usage is not None
    assert exc.usage.requests == output_retries + 1


@STREAM
async def test_empty_reply_after_a_tool_ran_keeps_the_tool_result(stream: bool) -> None:
    log = ToolLog()
    async with serving([PARIS_CALL, EMPTY]) as (_, model):
        agent = weather_agent(model, log, stream=stream, output_retries=0)
        with pytest.raises(OutputValidationError) as info:
            await agent.run(QUESTION)
    assert roles(info.value.transcript) == ["user", "assistant", "tool", "assistant"]
    assert_every_call_answered(info.value.transcript)
    assert log.count() == 1


# --------------------------------------------------------------------------- 5. refusals

REFUSAL = "I can't help with that."


@STREAM
@pytest.mark.parametrize("position", [1, 2])
async def test_refusal_raises_model_refused(position: int, stream: bool) -> None:
    log = ToolLog()
    script: list[ScriptItem] = [Reply.refused(REFUSAL)]
    if position == 2:
        script.insert(0, PARIS_CALL)
    async with serving(script) as (server, model):
        with pytest.raises(ModelRefused) as info:
            await weather_agent(model, log, stream=stream).run(QUESTION)
        assert len(server.chat_requests) == position

    exc = info.value
    assert exc.refusal == REFUSAL
    assert exc.agent == "weather"
    assert exc.usage is not None
    assert exc.usage.requests == position
    refusal = exc.transcript[-1]
    assert isinstance(refusal, AssistantMessage)
    assert refusal.refusal == REFUSAL
    assert refusal.content is None
    expected = (
        ["user", "assistant"] if position == 1 else ["user", "assistant", "tool", "assistant"]
    )
    assert roles(exc.transcript) == expected
    assert log.count() == position - 1


@requires_spec
async def test_refusal_transcript_continues_into_a_valid_request() -> None:
    """A refused transcript, sent again as history, is still a valid request."""
    log = ToolLog()
    async with serving([Reply.refused(REFUSAL), Reply.text(ANSWER)]) as (server, model):
        agent = weather_agent(model, log)
        with pytest.raises(ModelRefused) as info:
            await agent.run(QUESTION)
        result = await agent.run(
            "Please, it is for a school project.", history=info.value.transcript
        )
        body = server.chat_requests[1]
    assert spec_errors("CreateChatCompletionRequest", body) == []
    # A refusal without content goes back as the assistant's text.
    assert body["messages"][2] == {"role": "assistant", "content": REFUSAL}
    assert result.output == ANSWER
