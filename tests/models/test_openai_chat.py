"""OpenAIChatModel: the request bodies it builds and the replies it accepts.

Replies come from an in-process transport so each test can send exactly the JSON a real
endpoint sent, including the real API's known deviations from its own specification.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from intentflow import Toolset
from intentflow.errors import (
    ModelAPIError,
    ModelConnectionError,
    ModelRateLimited,
    ModelResponseError,
)
from intentflow.messages import (
    AssistantMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from intentflow.models import (
    FinishReason,
    ForcedTool,
    ModelRequest,
    OpenAIChatModel,
    OutputSchema,
    ResponseCompleted,
    TextDelta,
)
from tests.spec import assert_valid

try:
    import httpx2 as httpx
except ImportError:  # openai < 3 uses httpx
    import httpx  # type: ignore[no-redef]

TOOLS = Toolset("t")


@TOOLS.tool
def get_weather(city: str, unit: str = "c") -> str:
    """Weather."""
    return city


@TOOLS.tool
def get_time(zone: str) -> str:
    """Time."""
    return zone


USER = (UserMessage(content="hi"),)


def body_for(request: ModelRequest, **model_kwargs: Any) -> dict[str, Any]:
    body = OpenAIChatModel("gpt-test", **model_kwargs).request_body(request)
    assert_valid("CreateChatCompletionRequest", body)
    return body


# --------------------------------------------------------------------------- requests


def test_every_message_kind_maps_to_the_wire_format() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris","unit":null}')
    messages = (
        SystemMessage(content="Be brief."),
        UserMessage(content="hi", name="ada"),
        AssistantMessage(content=None, tool_calls=(call,), agent="support"),
        ToolMessage(tool_call_id="call_1", content='{"temp":18}', name="get_weather"),
        AssistantMessage(content="Sunny."),
    )
    body = body_for(ModelRequest(messages=messages))
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi", "name": "ada"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":18}'},
        {"role": "assistant", "content": "Sunny."},
    ]


def test_developer_role_and_empty_or_refused_replies_stay_valid() -> None:
    messages = (
        SystemMessage(content="rules"),
        UserMessage(content="hi"),
        AssistantMessage(content=None),  # an empty reply kept in the transcript
        UserMessage(content="again"),
        AssistantMessage(refusal="I can't."),
    )
    body = body_for(ModelRequest(messages=messages), system_role="developer")
    assert body["messages"][0] == {"role": "developer", "content": "rules"}
    assert body["messages"][2] == {"role": "assistant", "content": ""}
    assert body["messages"][4] == {"role": "assistant", "content": "I can't."}


@pytest.mark.parametrize(
    ("choice", "allowed", "expected"),
    [
        ("auto", None, None),
        ("required", None, "required"),
        ("none", None, "none"),
        (ForcedTool("get_time"), None, {"type": "function", "function": {"name": "get_time"}}),
        (
            "auto",
            ("get_time",),
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}],
                },
            },
        ),
        (
            "required",
            ("get_time",),
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}],
                },
            },
        ),
        ("none", ("get_time",), "none"),
        (
            ForcedTool("get_time"),
            ("get_time",),
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_mapping(choice: Any, allowed: Any, expected: Any) -> None:
    request = ModelRequest(
        messages=USER,
        tools=tuple(TOOLS),
        tool_choice=choice,
        allowed_tools=allowed,
        parallel_tool_calls=True,
    )
    body = body_for(request)
    assert body.get("tool_choice") == expected
    assert body["parallel_tool_calls"] is True
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    assert body["tools"][0]["function"]["strict"] is True


def test_without_tools_no_tool_fields_are_sent_and_forcing_is_an_error() -> None:
    body = body_for(ModelRequest(messages=USER, tool_choice="none", parallel_tool_calls=True))
    assert set(body) == {"model", "messages"}
    with pytest.raises(ValueError, match="needs tools"):
        OpenAIChatModel("m").request_body(ModelRequest(messages=USER, tool_choice="required"))


def test_tool_entries_are_cached_and_strictness_is_selectable() -> None:
    model = OpenAIChatModel("m")
    tools = tuple(TOOLS)
    first = model.request_body(ModelRequest(messages=USER, tools=tools))["tools"]
    again = model.request_body(ModelRequest(messages=USER, tools=tools))["tools"]
    assert first is again  # built once per tools tuple
    plain = model.request_body(ModelRequest(messages=USER, tools=tools, strict_tools=False))
    assert "strict" not in plain["tools"][0]["function"]


def test_settings_output_schema_and_stream_options() -> None:
    request = ModelRequest(
        messages=USER,
        output=OutputSchema("Answer", {"type": "object"}, strict=False, description="An answer"),
        settings={"temperature": 0.5},
    )
    model = OpenAIChatModel("m", temperature=0, seed=7)
    body = model.request_body(request, stream=True)
    assert body["temperature"] == 0.5  # the request's setting wins over the model's
    assert body["seed"] == 7
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "Answer",
            "schema": {"type": "object"},
            "strict": False,
            "description": "An answer",
        },
    }
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    quiet = OpenAIChatModel("m", stream_usage=False).request_body(request, stream=True)
    assert "stream_options" not in quiet
    assert_valid("CreateChatCompletionRequest", body)


def test_no_client_is_built_until_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIChatModel("m")  # no key needed to declare a model
    with pytest.raises(openai.OpenAIError):
        _ = model.client
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert str(model.client.base_url) == "http://127.0.0.1:9/v1/"


@pytest.mark.anyio
async def test_aclose_closes_only_a_client_the_model_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    built = OpenAIChatModel("m")
    client = built.client
    await built.aclose()
    assert client.is_closed()
    given = openai.AsyncOpenAI(api_key="k")
    await OpenAIChatModel("m", given).aclose()
    assert not given.is_closed()
    await given.close()


# --------------------------------------------------------------------------- replies


def mock_model(
    handler: Callable[[Any], Any], **kwargs: Any
) -> tuple[OpenAIChatModel, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def record(request: Any) -> Any:
        seen.append(json.loads(request.content))
        return handler(request)

    client = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://mock/v1",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(record)),
    )
    return OpenAIChatModel("gpt-test", client, **kwargs), seen


def json_reply(payload: dict[str, Any], status: int = 200, **headers: str) -> Callable[[Any], Any]:
    data = json.dumps(payload).encode()
    return lambda _request: httpx.Response(
        status, content=data, headers={"content-type": "application/json", **headers}
    )


def completion(
    message: dict[str, Any], finish_reason: Any = "stop", **extra: Any
) -> dict[str, Any]:
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test-2026",
        "choices": [choice],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
        **extra,
    }


@pytest.mark.anyio
async def test_a_tool_call_reply_is_mapped_with_usage_and_finish_reason() -> None:
    reply = completion(
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"zone":"CET"}'},
                }
            ],
        },
        finish_reason="tool_calls",
    )
    assert_valid("CreateChatCompletionResponse", reply)
    model, seen = mock_model(json_reply(reply))

    response = await model.complete(ModelRequest(messages=USER, tools=tuple(TOOLS)))

    assert response.message.tool_calls == (
        ToolCall(id="call_9", name="get_time", arguments='{"zone":"CET"}'),
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 3)
    assert response.usage.cached_tokens == 8
    assert response.usage.requests == 1
    assert (response.model, response.id) == ("gpt-test-2026", "chatcmpl-1")
    assert seen[0]["model"] == "gpt-test"


@pytest.mark.anyio
async def test_the_real_apis_known_deviations_are_accepted() -> None:
    # system_fingerprint null, no choices[].logprobs (gpt-5), no message.refusal (pre-2024),
    # plus what compatible servers do: finish_reason null, no usage, no tool call id.
    reply = completion(
        {
            "role": "assistant",
            "content": "ok",
            "tool_calls": [{"type": "function", "function": {"name": "get_time", "arguments": ""}}],
        },
        finish_reason=None,
        system_fingerprint=None,
    )
    del reply["choices"][0]["logprobs"]
    del reply["usage"]
    model, _ = mock_model(json_reply(reply))

    response = await model.complete(ModelRequest(messages=USER))

    assert response.message.content == "ok"
    assert response.message.refusal is None
    [call] = response.message.tool_calls
    assert call.id.startswith("call_")  # made up, so the tool result can answer it
    assert call.arguments == "{}"
    assert response.finish_reason is FinishReason.OTHER
    assert response.raw_finish_reason is None
    assert response.usage.requests == 1
    assert response.usage.total_tokens == 0


@pytest.mark.anyio
async def test_a_refusal_is_mapped() -> None:
    reply = completion({"role": "assistant", "content": None, "refusal": "No."})
    model, _ = mock_model(json_reply(reply))
    response = await model.complete(ModelRequest(messages=USER))
    assert response.message.refusal == "No."
    assert response.message.content is None


@pytest.mark.anyio
async def test_no_choices_is_a_response_error() -> None:
    model, _ = mock_model(json_reply({**completion({"role": "assistant"}), "choices": []}))
    with pytest.raises(ModelResponseError, match="no choices"):
        await model.complete(ModelRequest(messages=USER))


@pytest.mark.anyio
async def test_a_body_that_is_not_a_completion_is_a_response_error() -> None:
    model, _ = mock_model(json_reply({"choices": [{"message": None}]}))
    with pytest.raises(ModelResponseError, match="unexpected shape"):
        await model.complete(ModelRequest(messages=USER))


@pytest.mark.anyio
async def test_http_errors_keep_status_message_code_and_request_id() -> None:
    error = {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    model, _ = mock_model(json_reply(error, 400, **{"x-request-id": "req_42"}))
    with pytest.raises(ModelAPIError) as info:
        await model.complete(ModelRequest(messages=USER))
    exc = info.value
    assert (exc.status, exc.code, exc.type, exc.request_id) == (
        400,
        "context_length_exceeded",
        "invalid_request_error",
        "req_42",
    )
    assert exc.message == "This model's maximum context length is 128000 tokens."
    assert not exc.retryable
    assert exc.model == "gpt-test"
    assert "HTTP 400: context_length_exceeded: This model's maximum" in str(exc)
    assert isinstance(exc.__cause__, openai.BadRequestError)


@pytest.mark.anyio
async def test_429_is_rate_limited_and_a_plain_text_error_body_is_kept() -> None:
    model, _ = mock_model(
        lambda _r: httpx.Response(429, content=b"slow down", headers={"retry-after": "0"})
    )
    with pytest.raises(ModelRateLimited) as info:
        await model.complete(ModelRequest(messages=USER))
    assert info.value.status == 429
    assert info.value.retryable
    assert "slow down" in info.value.message


def test_which_model_errors_are_retryable() -> None:
    assert ModelConnectionError("x").retryable
    assert not ModelResponseError("x").retryable
    assert ModelAPIError(503, "x").retryable
    assert not ModelAPIError(400, "x").retryable


@pytest.mark.anyio
async def test_a_transport_failure_is_a_connection_error() -> None:
    def fail(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    model, _ = mock_model(fail)
    with pytest.raises(ModelConnectionError, match="ConnectError"):
        await model.complete(ModelRequest(messages=USER))


def sse(*chunks: dict[str, Any] | str) -> Callable[[Any], Any]:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    data = "".join(lines).encode()
    return lambda _r: httpx.Response(
        200, content=data, headers={"content-type": "text/event-stream"}
    )


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


@pytest.mark.anyio
async def test_a_stream_yields_deltas_then_the_whole_response() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    model, seen = mock_model(
        sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            {**chunk({}), "choices": [], "usage": usage},
            "[DONE]",
        )
    )
    async with model.stream(ModelRequest(messages=USER)) as events:
        collected = [e async for e in events]

    assert collected[:2] == [TextDelta("Hel"), TextDelta("lo")]
    done = collected[-1]
    assert isinstance(done, ResponseCompleted)
    assert done.response.message.content == "Hello"
    assert done.response.finish_reason is FinishReason.STOP
    assert done.response.usage.total_tokens == 7
    assert seen[0]["stream"] is True


async def drain(model: OpenAIChatModel) -> None:
    async with model.stream(ModelRequest(messages=USER)) as events:
        async for _ in events:
            pass


@pytest.mark.anyio
async def test_an_error_event_inside_a_stream_is_typed() -> None:
    model, _ = mock_model(
        sse(chunk({"content": "Hel"}), {"error": {"message": "overloaded", "code": "busy"}})
    )
    with pytest.raises(ModelResponseError, match="busy: overloaded"):
        await drain(model)


@pytest.mark.anyio
async def test_a_malformed_stream_chunk_is_typed() -> None:
    model, _ = mock_model(sse(chunk({"content": "a"}), "{not json"))
    with pytest.raises(ModelResponseError, match="unexpected shape"):
        await drain(model)


@pytest.mark.anyio
async def test_leaving_a_stream_early_closes_it() -> None:
    model, _ = mock_model(sse(chunk({"content": "a"}), chunk({"content": "b"}), "[DONE]"))
    async with model.stream(ModelRequest(messages=USER)) as events:
        async for event in events:
            assert event == TextDelta("a")
            break
    # Nothing left to finalize: the generator is closed.
    with pytest.raises(StopAsyncIteration):
        await events.__anext__()
