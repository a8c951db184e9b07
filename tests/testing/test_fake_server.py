"""FakeOpenAIServer, as the real ``openai`` SDK client sees it.

Every reply body and stream chunk a test receives is checked against the official OpenAI
spec, and so is every chat-completions request the SDK sent (when ../shared/openai-spec is
at hand; see tests/spec.py).
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
import openai
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from intentflow.messages import Usage
from intentflow.testing.embeddings import cosine_similarity, hashed_ngram_embedding
from intentflow.testing.fake_server import FakeOpenAIServer, StreamQuirks
from intentflow.testing.replies import CallIdSequence, Fault, Reply, TokenLogprob
from tests.spec import assert_valid, requires_spec, spec_errors

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from openai.types.chat import ChatCompletion

MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
PARIS_AND_ROME = Reply.calls(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"}))


# --------------------------------------------------------------------------- helpers


def client_for(
    server: FakeOpenAIServer, *, max_retries: int = 0, timeout: float = 5.0
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=max_retries, timeout=timeout
    )


def assert_sent_requests_valid(server: FakeOpenAIServer) -> None:
    for body in server.chat_requests:
        assert_valid("CreateChatCompletionRequest", body)


async def complete(
    server: FakeOpenAIServer, *, max_retries: int = 0, client_timeout: float = 5.0, **params: Any
) -> ChatCompletion:
    """One non-streaming request through the SDK; the reply and request are spec-checked."""
    params = {"model": "gpt-4o", "messages": MESSAGES, **params}
    async with client_for(server, max_retries=max_retries, timeout=client_timeout) as client:
        try:
            completion = await client.chat.completions.create(**params)
        finally:
            assert_sent_requests_valid(server)
    assert_valid("CreateChatCompletionResponse", completion.to_dict())
    return completion


async def stream(
    server: FakeOpenAIServer, *, spec_check: bool = True, **params: Any
) -> list[dict[str, Any]]:
    """One streaming request through the SDK; the chunks it yielded, as JSON objects.

    The SDK builds chunks without validating them and ``to_dict()`` keeps exactly the keys
    that were sent, so these are the chunks as they came over the wire.
    """
    params = {"model": "gpt-4o", "messages": MESSAGES, "tools": [WEATHER_TOOL], **params}
    async with client_for(server) as client:
        chunks = [
            c.to_dict() async for c in await client.chat.completions.create(**params, stream=True)
        ]
    assert_sent_requests_valid(server)
    if spec_check:
        for chunk in chunks:
            assert_valid("CreateChatCompletionStreamResponse", chunk)
    return chunks


async def read_into(received: list[dict[str, Any]], chunks: AsyncIterable[Any]) -> None:
    """Append each chunk of a stream to ``received`` as it arrives (kept if the stream fails)."""
    async for chunk in chunks:
        received.append(chunk.to_dict())


def call_deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool-call delta of a stream, in order."""
    return [
        d for c in chunks for choice in c["choices"] for d in choice["delta"].get("tool_calls", [])
    ]


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Accumulate a stream the way OpenAI documents it: text appended, calls keyed by index."""
    content, refusal, finish_reason = "", "", None
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            refusal += delta.get("refusal") or ""
            for part in delta.get("tool_calls", []):
                call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = part.get("id", call["id"])
                call["name"] += part.get("function", {}).get("name") or ""
                call["arguments"] += part.get("function", {}).get("arguments") or ""
            finish_reason = choice["finish_reason"] or finish_reason
    return {
        "content": content,
        "refusal": refusal,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish_reason,
    }


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


async def raw_exchange(server: FakeOpenAIServer, *requests: bytes) -> list[tuple[bytes, bytes]]:
    """Send raw HTTP requests on one connection; the (head, body) of each response."""
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    responses = []
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        reader = BufferedByteReceiveStream(sock)
        for request in requests:
            await sock.send(request)
            head = await reader.receive_until(b"\r\n\r\n", 65536)
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            responses.append((head, await reader.receive_exactly(length)))
    return responses


# --------------------------------------------------------------------------- plain replies


@pytest.mark.anyio
async def test_a_text_reply_arrives_as_a_chat_completion() -> None:
    async with FakeOpenAIServer([Reply.text("It is sunny.")]) as server:
        completion = await complete(server)

    choice = completion.choices[0]
    assert choice.message.content == "It is sunny."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"  # the request's model is echoed
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3  # "It is sunny." is 12 characters / 4


@pytest.mark.anyio
async def test_a_tool_call_arrives_with_a_numbered_id_and_json_arguments() -> None:
    async with FakeOpenAIServer([Reply.call("get_weather", {"city": "Paris"})]) as server:
        completion = await complete(server, tools=[WEATHER_TOOL])

    (call,) = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.anyio
async def test_parallel_tool_calls_keep_their_order_and_string_arguments_go_verbatim() -> None:
    reply = Reply.calls(("get_weather", {"city": "Paris"}), ("get_weather", '{"city": "Ro'))
    async with FakeOpenAIServer([reply]) as server:
        completion = await complete(server, tools=[WEATHER_TOOL])

    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [
        ("call_1", '{"city":"Paris"}'),
        ("call_2", '{"city": "Ro'),  # malformed on purpose, sent as given
    ]


@pytest.mark.anyio
async def test_a_refusal_arrives_in_message_refusal() -> None:
    async with FakeOpenAIServer([Reply.refused("I can't help with that.")]) as server:
        completion = await complete(server)

    message = completion.choices[0].message
    assert (message.content, message.refusal) == (None, "I can't help with that.")


@pytest.mark.anyio
async def test_scripted_usage_is_reported_as_given() -> None:
    usage = Usage(prompt_tokens=120, completion_tokens=7, cached_tokens=100)
    async with FakeOpenAIServer([Reply(content="ok", usage=usage)]) as server:
        completion = await complete(server)

    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (120, 127)
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 100


@pytest.mark.anyio
async def test_logprobs_are_sent_only_when_the_request_asks_for_them() -> None:
    reply = Reply.text(
        "billing",
        logprobs=[TokenLogprob("bill", -0.1, (("bill", -0.1), ("ship", -2.4))), ("ing", -0.01)],
    )
    async with FakeOpenAIServer([reply, reply]) as server:
        asked = await complete(server, logprobs=True, top_logprobs=1)
        not_asked = await complete(server)

    logprobs = asked.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert [(t.token, t.logprob) for t in logprobs.content] == [("bill", -0.1), ("ing", -0.01)]
    assert [[a.token for a in t.top_logprobs] for t in logprobs.content] == [["bill"], ["ing"]]
    assert not_asked.choices[0].logprobs is None


# --------------------------------------------------------------------------- streaming


@pytest.mark.anyio
async def test_streamed_text_starts_with_the_role_and_comes_in_chunk_chars_pieces() -> None:
    async with FakeOpenAIServer([Reply.text("Sunny in Paris.")], chunk_chars=5) as server:
        chunks = await stream(server)

    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert [d.get("content") for d in deltas[1:-1]] == ["Sunny", " in P", "aris."]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert reassemble(chunks)["content"] == "Sunny in Paris."


@pytest.mark.anyio
async def test_a_streamed_tool_call_opens_with_its_name_then_sends_argument_pieces() -> None:
    async with FakeOpenAIServer([Reply.call("get_weather", {"city": "Paris"})]) as server:
        chunks = await stream(server)

    first, *rest = call_deltas(chunks)
    assert first == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert rest == [
        {"index": 0, "function": {"arguments": piece}} for piece in ['{"ci', 'ty":', '"Par', 'is"}']
    ]
    assert reassemble(chunks) == {
        "content": "",
        "refusal": "",
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}],
        "finish_reason": "tool_calls",
    }


@pytest.mark.anyio
async def test_streamed_parallel_tool_calls_use_one_index_each() -> None:
    async with FakeOpenAIServer([PARIS_AND_ROME]) as server:
        chunks = await stream(server)

    assert [d["index"] for d in call_deltas(chunks)] == [0] * 5 + [1] * 5
    assert [(c["id"], c["arguments"]) for c in reassemble(chunks)["tool_calls"]] == [
        ("call_1", '{"city":"Paris"}'),
        ("call_2", '{"city":"Rome"}'),
    ]


@pytest.mark.anyio
async def test_streamed_logprobs_come_one_token_per_chunk() -> None:
    reply = Reply.text("billing", logprobs=[("bill", -0.1), ("ing", -0.01)])
    async with FakeOpenAIServer([reply]) as server:
        chunks = await stream(server, logprobs=True)

    content_chunks = [c["choices"][0] for c in chunks if c["choices"][0]["delta"].get("content")]
    assert [
        (c["delta"]["content"], c["logprobs"]["content"][0]["logprob"]) for c in content_chunks
    ] == [
        ("bill", -0.1),
        ("ing", -0.01),
    ]


@pytest.mark.anyio
async def test_usage_comes_in_a_last_chunk_without_choices_when_asked_for() -> None:
    usage = Usage(prompt_tokens=11, completion_tokens=2)
    async with FakeOpenAIServer([Reply(content="ok", usage=usage)]) as server:
        chunks = await stream(server, stream_options={"include_usage": True})

    *body, last = chunks
    assert last["choices"] == []
    assert (last["usage"]["prompt_tokens"], last["usage"]["total_tokens"]) == (11, 13)
    assert all(c["usage"] is None for c in body)


@pytest.mark.anyio
async def test_no_usage_chunk_is_sent_unless_asked_for() -> None:
    async with FakeOpenAIServer([Reply.text("ok")]) as server:
        chunks = await stream(server)

    assert all(c["choices"] and "usage" not in c for c in chunks)


# --------------------------------------------------------------------------- stream quirks


@pytest.mark.anyio
async def test_quirk_omit_index_sends_tool_call_deltas_without_index() -> None:
    quirks = StreamQuirks(omit_index=True)
    async with FakeOpenAIServer([PARIS_AND_ROME], stream_quirks=quirks) as server:
        chunks = await stream(server, spec_check=False)  # the spec requires index

    deltas = call_deltas(chunks)
    assert len(deltas) == 10
    assert all("index" not in d for d in deltas)
    assert [d["id"] for d in deltas if "id" in d] == ["call_1", "call_2"]


@requires_spec
@pytest.mark.anyio
async def test_quirk_omit_index_chunks_are_rejected_by_the_spec() -> None:
    quirks = StreamQuirks(omit_index=True)
    async with FakeOpenAIServer([Reply.call("f", {})], stream_quirks=quirks) as server:
        chunks = await stream(server, spec_check=False)

    tool_chunk = next(c for c in chunks if c["choices"][0]["delta"].get("tool_calls"))
    assert any(
        "'index' is a required property" in e
        for e in spec_errors("CreateChatCompletionStreamResponse", tool_chunk)
    )


@pytest.mark.anyio
async def test_quirk_index_always_zero_tells_parallel_calls_apart_only_by_id() -> None:
    quirks = StreamQuirks(index_always_zero=True)
    async with FakeOpenAIServer([PARIS_AND_ROME], stream_quirks=quirks) as server:
        chunks = await stream(server)

    deltas = call_deltas(chunks)
    assert {d["index"] for d in deltas} == {0}
    assert [d["id"] for d in deltas if "id" in d] == ["call_1", "call_2"]
    # Accumulating by index alone merges the two calls: the failure this quirk exists to catch.
    assert reassemble(chunks)["tool_calls"] == [
        {
            "id": "call_2",
            "name": "get_weatherget_weather",
            "arguments": '{"city":"Paris"}{"city":"Rome"}',
        }
    ]


@pytest.mark.anyio
async def test_quirk_repeat_id_puts_id_type_and_name_on_every_delta() -> None:
    quirks = StreamQuirks(repeat_id=True)
    async with FakeOpenAIServer([PARIS_AND_ROME], stream_quirks=quirks) as server:
        chunks = await stream(server)

    deltas = call_deltas(chunks)
    assert all(
        {"id", "type"} <= d.keys() and d["function"]["name"] == "get_weather" for d in deltas
    )
    assert [d["id"] for d in deltas] == ["call_1"] * 5 + ["call_2"] * 5
    assert "".join(d["function"]["arguments"] for d in deltas[:5]) == '{"city":"Paris"}'


@pytest.mark.anyio
async def test_quirk_whole_call_per_chunk_sends_each_call_complete_in_one_delta() -> None:
    quirks = StreamQuirks(whole_call_per_chunk=True)
    async with FakeOpenAIServer([PARIS_AND_ROME], stream_quirks=quirks) as server:
        chunks = await stream(server)

    assert call_deltas(chunks) == [
        {
            "index": i,
            "id": f"call_{i + 1}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": f'{{"city":"{city}"}}'},
        }
        for i, city in enumerate(["Paris", "Rome"])
    ]


@pytest.mark.anyio
async def test_quirk_omit_id_sends_no_id_at_all() -> None:
    quirks = StreamQuirks(omit_id=True)
    async with FakeOpenAIServer([PARIS_AND_ROME], stream_quirks=quirks) as server:
        chunks = await stream(server)

    deltas = call_deltas(chunks)
    assert all("id" not in d for d in deltas)
    assert [d["index"] for d in deltas if "type" in d] == [0, 1]  # calls still start visibly


def test_contradictory_quirks_are_refused() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        StreamQuirks(omit_index=True, index_always_zero=True)


# --------------------------------------------------------------------------- faults


@pytest.mark.anyio
async def test_a_rate_limit_is_retried_by_the_sdk_after_retry_after() -> None:
    script = [Fault.rate_limit(retry_after=0.01), Reply.text("ok")]
    async with FakeOpenAIServer(script) as server:
        completion = await complete(server, max_retries=2)

    assert completion.choices[0].message.content == "ok"
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


@pytest.mark.anyio
async def test_a_rate_limit_without_retries_is_a_rate_limit_error_with_retry_after() -> None:
    async with FakeOpenAIServer([Fault.rate_limit(retry_after=1.5)]) as server:
        with pytest.raises(openai.RateLimitError) as caught:
            await complete(server)

    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert (error.response.headers["retry-after"], error.response.headers["retry-after-ms"]) == (
        "2",
        "1500",
    )


@requires_spec
@pytest.mark.anyio
async def test_error_bodies_match_the_spec() -> None:
    script = [Fault.rate_limit(), Fault.server_error(503), Fault.http_error(400, "too long")]
    async with FakeOpenAIServer(script) as server:
        for _ in script:
            with pytest.raises(openai.APIStatusError) as caught:
                await complete(server)
            assert spec_errors("ErrorResponse", caught.value.response.json()) == []


@pytest.mark.anyio
async def test_a_server_error_is_retried_by_the_sdk() -> None:
    script = [Fault.server_error(retry_after=0.01), Reply.text("ok")]
    async with FakeOpenAIServer(script) as server:
        completion = await complete(server, max_retries=1)

    assert completion.choices[0].message.content == "ok"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_server_errors_beyond_the_retries_raise_internal_server_error() -> None:
    async with FakeOpenAIServer([Fault.server_error(retry_after=0.01)] * 3) as server:
        with pytest.raises(openai.InternalServerError) as caught:
            await complete(server, max_retries=2)

    assert caught.value.status_code == 500
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_a_dropped_connection_is_an_api_connection_error_without_retries() -> None:
    async with FakeOpenAIServer([Fault.drop_connection()]) as server:
        with pytest.raises(openai.APIConnectionError) as caught:
            await complete(server)

    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


@pytest.mark.anyio
async def test_a_dropped_connection_is_retried_by_the_sdk() -> None:
    # No response means no Retry-After: this waits the SDK's own first backoff (<= 0.5 s).
    async with FakeOpenAIServer([Fault.drop_connection(), Reply.text("ok")]) as server:
        completion = await complete(server, max_retries=1)

    assert completion.choices[0].message.content == "ok"
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_stream_cut_mid_tool_call_raises_after_intact_chunks() -> None:
    cut = Fault.cut_stream(Reply.call("get_weather", {"city": "Paris"}))
    received: list[dict[str, Any]] = []
    async with FakeOpenAIServer([cut]) as server, client_for(server) as client:
        chunks = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIConnectionError) as caught:
            await read_into(received, chunks)

    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert_sent_requests_valid(server)
    for chunk in received:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    so_far = reassemble(received)
    assert so_far["finish_reason"] is None
    assert so_far["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city":'}
    ]


@pytest.mark.anyio
async def test_a_stream_cut_after_n_chunks_delivers_exactly_n() -> None:
    cut = Fault.cut_stream(Reply.text("a long answer"), after_chunks=2)
    received: list[dict[str, Any]] = []
    async with FakeOpenAIServer([cut]) as server, client_for(server) as client:
        chunks = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIConnectionError):
            await read_into(received, chunks)

    assert reassemble(received)["content"] == "a lo"  # the role chunk, then one piece


@pytest.mark.anyio
async def test_a_cut_non_streaming_reply_is_an_api_connection_error() -> None:
    async with FakeOpenAIServer([Fault.cut_stream(Reply.text("never whole"))]) as server:
        with pytest.raises(openai.APIConnectionError):
            await complete(server)


@pytest.mark.anyio
async def test_a_reply_slower_than_the_client_timeout_is_an_api_timeout_error() -> None:
    async with FakeOpenAIServer([Fault.slow(10)]) as server:
        with anyio.fail_after(3), pytest.raises(openai.APITimeoutError):
            await complete(server, client_timeout=0.2)


@pytest.mark.anyio
async def test_an_exhausted_script_answers_400_saying_so_and_is_not_retried() -> None:
    async with FakeOpenAIServer([Reply.text("only one")]) as server:
        await complete(server)
        with pytest.raises(openai.BadRequestError, match="script is exhausted") as caught:
            await complete(server, max_retries=2)

    assert caught.value.code == "script_exhausted"
    assert len(server.requests) == 2
    assert len(server.errors) == 1
    assert "request #2 has no scripted reply left (1 scripted)" in server.errors[0]


# --------------------------------------------------------------------------- scripts


@pytest.mark.anyio
async def test_a_sync_script_function_answers_from_the_request() -> None:
    def echo(request: dict[str, Any]) -> Reply:
        return Reply.text(f"you said: {request['messages'][-1]['content']}")

    async with FakeOpenAIServer(echo) as server:
        completion = await complete(server, messages=[{"role": "user", "content": "hello"}])

    assert completion.choices[0].message.content == "you said: hello"


@pytest.mark.anyio
async def test_an_async_script_function_answers_from_the_request() -> None:
    async def call_the_offered_tool(request: dict[str, Any]) -> Reply:
        await anyio.lowlevel.checkpoint()
        return Reply.call(request["tools"][0]["function"]["name"], {"city": "Paris"})

    async with FakeOpenAIServer(call_the_offered_tool) as server:
        completion = await complete(server, tools=[WEATHER_TOOL])

    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


@pytest.mark.anyio
async def test_a_script_function_that_raises_is_reported_and_not_retried() -> None:
    def broken(request: dict[str, Any]) -> Reply:
        raise KeyError("oops")

    async with FakeOpenAIServer(broken) as server:
        with pytest.raises(openai.InternalServerError, match="script function raised"):
            await complete(server, max_retries=2)

    assert len(server.requests) == 1
    assert server.errors == [
        "FakeOpenAIServer: the script function raised on request #1: KeyError: 'oops'"
    ]


@pytest.mark.anyio
async def test_push_extends_a_running_script() -> None:
    async with FakeOpenAIServer([Reply.text("one")]) as server:
        first = await complete(server)
        server.push(Reply.text("two"))
        second = await complete(server)

    assert [first.choices[0].message.content, second.choices[0].message.content] == ["one", "two"]


def test_push_is_refused_for_a_script_function() -> None:
    server = FakeOpenAIServer(lambda request: Reply.text("x"))
    with pytest.raises(TypeError, match="function"):
        server.push(Reply.text("y"))


@pytest.mark.anyio
async def test_tool_call_ids_are_numbered_across_the_whole_script() -> None:
    script = [Reply.call("a"), Reply.calls(("b", {}), ("c", {}, "mine")), Reply.call("d")]
    async with FakeOpenAIServer(script) as server:
        ids = [
            [c.id for c in (await complete(server)).choices[0].message.tool_calls or []]
            for _ in script
        ]

    assert ids == [["call_1"], ["call_2", "mine"], ["call_3"]]


# --------------------------------------------------------------------------- recording


@pytest.mark.anyio
async def test_requests_are_recorded_with_method_path_headers_and_body() -> None:
    async with FakeOpenAIServer([Reply.text("ok")]) as server:
        await complete(server, tools=[WEATHER_TOOL], tool_choice="required")

    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer test"
    assert request.headers["content-type"] == "application/json"
    assert request.body["messages"] == MESSAGES
    assert request.body["tool_choice"] == "required"
    assert server.chat_requests == [request.body]
    assert server.errors == []


@pytest.mark.anyio
async def test_several_requests_share_one_keep_alive_connection() -> None:
    get_models = b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"
    async with FakeOpenAIServer(model="my-model") as server:
        responses = await raw_exchange(server, get_models, get_models)

    assert [head.split(b"\r\n")[0] for head, _ in responses] == [b"HTTP/1.1 200 OK"] * 2
    assert all(b"connection: keep-alive" in head for head, _ in responses)
    assert all(b'"id":"my-model"' in body for _, body in responses)


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_a_400_and_recorded_as_an_error() -> None:
    bad = b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 8\r\n\r\nnot json"
    async with FakeOpenAIServer([Reply.text("unused")]) as server:
        ((head, body),) = await raw_exchange(server, bad)

    assert head.startswith(b"HTTP/1.1 400")
    assert b"could not parse the JSON body" in body
    assert server.errors[0].startswith("POST /v1/chat/completions: body is not JSON")
    assert server.requests[0].body is None


@pytest.mark.anyio
async def test_an_unknown_endpoint_is_a_404_and_recorded_as_an_error() -> None:
    async with FakeOpenAIServer() as server, client_for(server) as client:
        with pytest.raises(openai.NotFoundError):
            await client.files.list()

    assert server.errors == ["GET /v1/files: no such endpoint"]


# --------------------------------------------------------------------------- embeddings


@pytest.mark.anyio
async def test_embeddings_come_as_base64_by_default_and_the_sdk_decodes_them() -> None:
    texts = ["book a flight", "cancel my order"]
    async with FakeOpenAIServer() as server, client_for(server) as client:
        result = await client.embeddings.create(model="text-embedding-3-small", input=texts)

    assert server.requests[0].body["encoding_format"] == "base64"  # the SDK's own choice
    assert [d.embedding for d in result.data] == [
        as_float32(hashed_ngram_embedding(t)) for t in texts
    ]
    assert_valid("CreateEmbeddingResponse", result.to_dict())


@pytest.mark.anyio
async def test_embeddings_come_as_floats_when_asked_for() -> None:
    async with FakeOpenAIServer() as server, client_for(server) as client:
        result = await client.embeddings.create(
            model="text-embedding-3-small", input="book a flight", encoding_format="float"
        )

    assert result.data[0].embedding == hashed_ngram_embedding("book a flight")
    assert result.model == "text-embedding-3-small"
    assert result.usage.prompt_tokens == 4
    assert_valid("CreateEmbeddingResponse", result.to_dict())


@pytest.mark.anyio
async def test_similar_texts_get_closer_embeddings_than_unrelated_ones() -> None:
    texts = ["book a flight to Paris", "please book me a flight to Paris", "what is my balance"]
    async with FakeOpenAIServer() as server, client_for(server) as client:
        result = await client.embeddings.create(model="m", input=texts)

    query, similar, unrelated = (d.embedding for d in result.data)
    assert cosine_similarity(query, similar) > 0.7 > 0.3 > cosine_similarity(query, unrelated)


@pytest.mark.anyio
async def test_embeddings_are_shortened_to_the_requested_dimensions() -> None:
    async with FakeOpenAIServer() as server, client_for(server) as client:
        result = await client.embeddings.create(model="m", input="hello there", dimensions=32)

    vector = result.data[0].embedding
    assert len(vector) == 32
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-5)


@pytest.mark.anyio
async def test_a_custom_embed_function_is_used() -> None:
    def length_and_half(text: str) -> list[float]:
        return [float(len(text)), 0.5]

    async with FakeOpenAIServer(embed=length_and_half) as server, client_for(server) as client:
        result = await client.embeddings.create(model="m", input="abc", encoding_format="float")

    assert result.data[0].embedding == [3.0, 0.5]


@pytest.mark.anyio
async def test_an_embed_function_that_raises_is_reported_and_not_retried() -> None:
    def broken(text: str) -> list[float]:
        raise RuntimeError("no vectors today")

    async with (
        FakeOpenAIServer(embed=broken) as server,
        client_for(server, max_retries=2) as client,
    ):
        with pytest.raises(openai.InternalServerError, match="no vectors today"):
            await client.embeddings.create(model="m", input="abc")

    assert len(server.requests) == 1
    assert server.errors == [
        "FakeOpenAIServer: the embed function raised: RuntimeError: no vectors today"
    ]


@pytest.mark.anyio
async def test_models_lists_the_configured_model() -> None:
    async with FakeOpenAIServer(model="my-model") as server, client_for(server) as client:
        models = [m async for m in client.models.list()]

    assert [m.id for m in models] == ["my-model"]
    assert_valid("Model", models[0].to_dict())


# --------------------------------------------------------------------------- load and lifetime


@pytest.mark.anyio
async def test_latency_and_reply_delay_come_before_the_answer() -> None:
    async with FakeOpenAIServer([Reply(content="ok", delay=0.05)], latency=0.05) as server:
        started = anyio.current_time()
        await complete(server)
        elapsed = anyio.current_time() - started

    assert elapsed >= 0.1


@pytest.mark.anyio
async def test_many_concurrent_requests_all_complete() -> None:
    def echo(request: dict[str, Any]) -> Reply:
        return Reply.text(request["messages"][0]["content"])

    answers: dict[int, str | None] = {}
    async with FakeOpenAIServer(echo, latency=0.05) as server, client_for(server) as client:

        async def ask(n: int) -> None:
            messages: Any = [{"role": "user", "content": f"question {n}"}]
            completion = await client.chat.completions.create(model="m", messages=messages)
            answers[n] = completion.choices[0].message.content

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for n in range(200):
                    tg.start_soon(ask, n)

    assert answers == {n: f"question {n}" for n in range(200)}
    assert len(server.requests) == 200
    assert_sent_requests_valid(server)


@pytest.mark.anyio
async def test_leaving_the_block_stops_the_server_with_a_client_waiting_on_a_slow_reply() -> None:
    arrived = anyio.Event()

    def slow(request: dict[str, Any]) -> Fault:
        arrived.set()
        return Fault.slow(30)

    outcomes: list[BaseException] = []
    async with anyio.create_task_group() as tg:
        async with FakeOpenAIServer(slow) as server:
            client = client_for(server, timeout=60)

            async def wait_for_reply() -> None:
                try:
                    await client.chat.completions.create(model="m", messages=MESSAGES)
                except openai.APIConnectionError as exc:
                    outcomes.append(exc)

            tg.start_soon(wait_for_reply)
            with anyio.fail_after(5):
                await arrived.wait()
            stopping = anyio.current_time()
        stopped_in = anyio.current_time() - stopping
    await client.close()

    assert stopped_in < 1.0
    assert len(outcomes) == 1  # the client saw the connection go, instead of hanging


@pytest.mark.anyio
async def test_an_exception_in_the_block_comes_out_as_it_was_raised() -> None:
    # Not wrapped in an ExceptionGroup by the server's task group.
    with pytest.raises(LookupError, match="from the test"):
        async with FakeOpenAIServer():
            raise LookupError("from the test")


@pytest.mark.anyio
async def test_base_url_is_loopback_and_only_valid_while_running() -> None:
    server = FakeOpenAIServer()
    async with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


# --------------------------------------------------------------------------- the script vocabulary


def test_reply_arguments_given_as_a_mapping_are_json_encoded_and_strings_kept() -> None:
    assert Reply.call("f", {"a": [1, "é"]}).tool_calls[0].arguments == '{"a":[1,"é"]}'
    assert Reply.call("f", '{"a": ').tool_calls[0].arguments == '{"a": '
    assert Reply.call("f").tool_calls[0].arguments == "{}"


def test_reply_finish_reason_is_derived_unless_given() -> None:
    assert Reply.text("x").resolved_finish_reason == "stop"
    assert Reply.call("f").resolved_finish_reason == "tool_calls"
    assert Reply.text("x", finish_reason="length").resolved_finish_reason == "length"


def test_reply_logprob_tokens_must_spell_the_content() -> None:
    with pytest.raises(ValueError, match="join to 'bil'"):
        Reply.text("billing", logprobs=[("bil", -0.1)])


def test_call_ids_are_filled_in_order_and_given_ids_kept() -> None:
    reply = Reply.calls(("a", {}), ("b", {}, "given"), ("c", {}))
    filled = reply.with_call_ids(CallIdSequence())
    assert [c.id for c in filled.tool_calls] == ["call_1", "given", "call_2"]


def test_usage_is_estimated_at_four_characters_per_token() -> None:
    usage = Reply.text("twelve chars").usage_for(prompt_tokens=10)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.requests) == (10, 3, 1)
