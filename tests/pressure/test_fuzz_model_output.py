"""Model output malformed in every way an endpoint can produce, through the whole agent loop.

Each case must end either in a typed error sent back to the model (a `ToolCallOutcome` that is
not ``SUCCESS``, as a tool message with ``is_error``) or in a typed `RunError` to the caller,
with a complete transcript (every assistant tool call answered by a tool message with its id);
never another exception, never a hang.

Three drivers:

* `ScriptedModel` (in process): Hypothesis draws replies with raw argument strings, raw ids and
  raw tool names (not JSON, truncated JSON, wrong types, extra fields, unknown tools, another
  intent's tool, duplicate/empty ids, empty replies, control characters, lone surrogates,
  deep nesting), plus explicit 1 MB cases.
* `FakeOpenAIServer` + `OpenAIChatModel` + the real ``openai`` client (JSON and SSE): the same
  drawn replies go over the wire, where the adapter must also survive the SDK's parsing.
* Raw HTTP bodies through the real client on an ``httpx2.MockTransport``: the fake server only
  answers a `Reply` or a `Fault`, so it cannot send a completion with empty ``choices``, a
  ``null`` message, a chunk that is not JSON or a body that is not a completion; those go
  through a transport of the test's own instead (no server API was added for them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from intentflow.agents import Agent
from intentflow.errors import RunError
from intentflow.messages import AssistantMessage, Message, ToolCall, ToolMessage
from intentflow.models.openai_chat import OpenAIChatModel
from intentflow.testing import FakeOpenAIServer, Reply, ScriptedModel
from intentflow.testing.replies import ScriptItem
from intentflow.toolsets import OutcomeKind, Tool, tool
from intentflow.toolsets.outcomes import ToolCallOutcome

pytestmark = pytest.mark.anyio

# `benchmarks/fuzz.py` runs these properties longer by setting this variable.
EXAMPLES = int(os.environ.get("INTENTFLOW_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WIRE = settings(FUZZ, max_examples=max(1, EXAMPLES * 4 // 15))  # HTTP: fewer, still varied
TIMEOUT = 20  # seconds for one run; a hang fails the test instead of stalling the suite
ALLOWED = frozenset({"lookup", "search", "js_tool"})
OTHER_INTENT = "delete_all"  # the agent has it, the turn does not allow it
MB = 1_000_000
REFUSED = (OutcomeKind.UNKNOWN_TOOL, OutcomeKind.PERMISSION_DENIED, OutcomeKind.BUDGET_EXCEEDED)


# --------------------------------------------------------------------------- the agent


@dataclass
class Calls:
    """What the tools actually ran with; a tool that ran with bad arguments is a bug."""

    ran: list[tuple[str, Any]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


class Search(BaseModel):
    query: str
    limit: int = 5


def make_tools(calls: Calls) -> list[Tool]:
    @tool
    def lookup(order_id: str, limit: int | None = None) -> str:
        """Look up an order."""
        if not isinstance(order_id, str) or not (limit is None or type(limit) is int):
            calls.bad.append(f"lookup({order_id!r}, {limit!r})")
        calls.ran.append(("lookup", order_id))
        return f"order {len(order_id)}"

    async def search(args: Search) -> str:
        """Search orders."""
        if not isinstance(args.query, str) or type(args.limit) is not int:
            calls.bad.append(f"search({args!r})")
        calls.ran.append(("search", args.query))
        return "found"

    def js_handler(args: dict[str, Any]) -> str:
        if set(args) - {"a", "b"} or type(args.get("a")) is not int:
            calls.bad.append(f"js_tool({args!r})")
        calls.ran.append(("js_tool", args))
        return "ok"

    @tool
    def delete_all() -> str:
        """Delete every order (another intent's tool)."""
        calls.bad.append("delete_all ran")
        return "deleted"

    js_tool = Tool.from_json_schema(
        "js_tool",
        "A tool defined by a JSON schema.",
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
        js_handler,
    )
    return [lookup, Tool.from_model(Search, search), js_tool, delete_all]


def make_agent(model: Any, calls: Calls, *, stream: bool = False) -> Agent[str]:
    return Agent(model=model, tools=make_tools(calls), max_turns=4, stream=stream)


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
valid_lookup = st.fixed_dictionaries(
    {"order_id": st.text(max_size=10)}, optional={"limit": st.none() | st.integers()}
)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"order_id":' + "[" * depth  # deep and unterminated


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
controls = st.characters(max_codepoint=0x1F)

raw_arguments = st.one_of(
    st.text(max_size=40),  # anything, mostly not JSON
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),  # any code point
    st.builds(lambda v, cut: _dump(v)[:cut], valid_lookup, st.integers(0, 30)),  # truncated
    valid_lookup.map(_dump),  # valid for lookup
    st.fixed_dictionaries({"order_id": json_values, "limit": json_values}).map(_dump),  # types
    st.builds(lambda v, k, x: _dump({**v, k: x}), valid_lookup, st.text(max_size=6), json_values),
    st.fixed_dictionaries(
        {"query": json_values}, optional={"limit": json_values, "extra": json_values}
    ).map(_dump),
    st.fixed_dictionaries({"a": json_values}, optional={"b": json_values, "c": json_values}).map(
        _dump
    ),
    json_values.map(_dump),  # JSON, often not an object
    st.builds(_nested, st.integers(50, 3000), st.sampled_from(["array", "object", "open"])),
    st.text(controls, max_size=5).map(lambda s: '{"order_id": "' + s + '"}'),  # raw controls
    st.text(surrogates, min_size=1, max_size=3).map(lambda s: '{"order_id": "' + s + '"}'),
    st.sampled_from(["", " ", "null", "{}", "[]", '"{}"', "{'order_id': 'x'}", "NaN", "{,}"]),
)
tool_names = st.one_of(
    st.sampled_from(["lookup", "search", "js_tool", OTHER_INTENT]),
    st.sampled_from(["", "LOOKUP", "lookup ", "functions.lookup", "final_output", "transfer"]),
    st.text(max_size=12),
)
call_ids = st.one_of(st.just(""), st.sampled_from(["dup", "call_1", "call_2"]), st.text(max_size=8))
tool_calls = st.builds(ToolCall, id=call_ids, name=tool_names, arguments=raw_arguments)
replies = st.builds(
    Reply,
    content=st.none() | st.text(max_size=20),
    tool_calls=st.lists(tool_calls, max_size=4).map(tuple),
    refusal=st.none() | st.none() | st.text(max_size=10),
    finish_reason=st.none() | st.sampled_from(["stop", "length", "tool_calls", "weird", ""]),
)


# --------------------------------------------------------------------------- checks


def answered(transcript: Sequence[Message]) -> None:
    """Every assistant message's tool calls are answered right after it, id for id."""
    for i, message in enumerate(transcript):
        if not isinstance(message, AssistantMessage) or not message.tool_calls:
            continue
        answers = []
        for later in transcript[i + 1 :]:
            if not isinstance(later, ToolMessage):
                break
            answers.append(later.tool_call_id)
        assert Counter(answers) == Counter(c.id for c in message.tool_calls), (
            f"unanswered calls at message {i}: {message.tool_calls} vs {answers}"
        )


def check_outcome(outcome: ToolCallOutcome) -> None:
    """A refused or failed call is a typed error the model reads; a refusal is unknown_tool."""
    if outcome.called_as not in ALLOWED:
        assert outcome.kind in REFUSED
        if outcome.called_as == OTHER_INTENT and outcome.kind is not OutcomeKind.BUDGET_EXCEEDED:
            assert outcome.kind is OutcomeKind.PERMISSION_DENIED
    if not outcome.ok:
        message = outcome.to_message()
        assert message.is_error
        body = json.loads(message.content)
        assert body["error"]["kind"] != "permission_denied"  # reads as unknown_tool


@dataclass
class Ran:
    """How one run ended."""

    transcript: tuple[Message, ...]
    outcomes: list[ToolCallOutcome]
    error: RunError | None


async def run_agent(agent: Agent[str]) -> Ran:
    error: RunError | None = None
    with anyio.fail_after(TIMEOUT):
        try:
            result = await agent.run("Where is my order?", allowed=ALLOWED)
        except RunError as exc:
            error = exc
    if error is not None:
        assert error.transcript, "a run error must carry the transcript"
        return Ran(error.transcript, [], error)
    outcomes = [o for turn in result.turns for o in turn.outcomes]
    return Ran(result.transcript, outcomes, None)


def check(ran: Ran, calls: Calls) -> None:
    answered(ran.transcript)
    for outcome in ran.outcomes:
        check_outcome(outcome)
    # The tool messages in the transcript say the same for refused calls on every path.
    for message in ran.transcript:
        if isinstance(message, ToolMessage) and message.name not in ALLOWED:
            assert message.is_error
            # Over the error budget, a refusal says so instead (still no tool ran).
            assert json.loads(message.content)["error"]["kind"] in (
                "unknown_tool",
                "budget_exceeded",
            )
    assert calls.bad == [], calls.bad


def script_of(drawn: list[Reply]) -> Callable[[Any], ScriptItem]:
    """The drawn replies, one per model call, then a plain answer."""
    pending = list(drawn)

    def answer(_request: Any) -> ScriptItem:
        return pending.pop(0) if pending else Reply.text("Your order is on its way.")

    return answer


# --------------------------------------------------------------------------- in process


@FUZZ
@given(drawn=st.lists(replies, min_size=1, max_size=3), stream=st.booleans())
async def test_scripted_model_output_ends_typed(drawn: list[Reply], stream: bool) -> None:
    calls = Calls()
    agent = make_agent(ScriptedModel(script_of(drawn)), calls, stream=stream)
    check(await run_agent(agent), calls)


@FUZZ
@given(reply=replies)
async def test_a_model_that_never_stops_misbehaving_ends_typed(reply: Reply) -> None:
    """The same malformed reply on every turn: the run must still end, typed."""
    calls = Calls()
    agent = make_agent(ScriptedModel(lambda _request: reply), calls)
    ran = await run_agent(agent)
    check(ran, calls)


ENORMOUS = {
    "valid_1mb_string": '{"order_id": "' + "x" * MB + '"}',
    "1mb_not_json": "x" * MB,
    "1mb_truncated": '{"order_id": "' + "x" * MB,
    "1mb_of_extra_fields": json.dumps({"order_id": "a", **{f"k{i}": i for i in range(60_000)}}),
    "1mb_deep_arrays": "[" * MB,
    "1mb_control_chars": '{"order_id": "' + "\x01" * MB + '"}',
    "1mb_nulls": "\x00" * MB,
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("arguments", ENORMOUS.values(), ids=ENORMOUS.keys())
async def test_enormous_arguments_end_typed(arguments: str, stream: bool) -> None:
    calls = Calls()
    script = [Reply.call("lookup", arguments), Reply.text("done")]
    model = ScriptedModel(script, chunk_chars=64 * 1024)
    ran = await run_agent(make_agent(model, calls, stream=stream))
    check(ran, calls)
    (outcome,) = ran.outcomes
    # Only the well-formed 1 MB string is a valid call (no size limit exists: see
    # tests/pressure/test_security.py); everything else is a typed error to the model.
    assert outcome.ok is (arguments is ENORMOUS["valid_1mb_string"])
    assert len(outcome.content) < 10_000  # the error sent back does not echo the megabyte


EXPLICIT_REPLIES = {
    "null_content_no_calls": Reply(),
    "empty_text": Reply.text(""),
    "refusal_only": Reply.refused("I cannot help with that."),
    "refusal_and_calls": Reply(
        refusal="no", tool_calls=(ToolCall(id="r1", name="lookup", arguments="{}"),)
    ),
    "duplicate_ids": Reply.calls(
        ("lookup", {"order_id": "a"}, "dup"), ("lookup", {"order_id": "b"}, "dup")
    ),
    "duplicate_ids_mixed_validity": Reply.calls(
        ("lookup", "{bad", "dup"), ("nope", "{}", "dup"), (OTHER_INTENT, "{}", "dup")
    ),
    "unknown_and_other_intent": Reply.calls(("nope", "{}"), (OTHER_INTENT, "{}")),
    "tool_calls_finish_reason_without_calls": Reply(content="hi", finish_reason="tool_calls"),
    "stop_finish_reason_with_calls": Reply(
        tool_calls=(ToolCall(id="s1", name="lookup", arguments='{"order_id":"a"}'),),
        finish_reason="stop",
    ),
    "length_cut_arguments": Reply(
        tool_calls=(ToolCall(id="l1", name="lookup", arguments='{"order_id": "ab'),),
        finish_reason="length",
    ),
    "lone_surrogate": Reply.call("lookup", '{"order_id": "\ud800"}'),
    "escaped_lone_surrogate": Reply.call("lookup", '{"order_id": "\\ud800"}'),
    "nul_in_name": Reply.call("look\x00up", "{}"),
    **{
        f"nested_{kind}_{depth}": Reply.call("lookup", _nested(depth, kind))
        for depth in (500, 900, 990, 2000)
        for kind in ("array", "object")
    },
    "ten_calls_one_turn": Reply.calls(*[("lookup", {"order_id": str(i)}) for i in range(10)]),
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("reply", EXPLICIT_REPLIES.values(), ids=EXPLICIT_REPLIES.keys())
async def test_explicit_malformed_replies_end_typed(reply: Reply, stream: bool) -> None:
    calls = Calls()
    ran = await run_agent(make_agent(ScriptedModel(script_of([reply])), calls, stream=stream))
    check(ran, calls)


# --------------------------------------------------------------------------- over the wire


class Feed:
    """A fake server's script: the replies of the current case, then a plain answer."""

    def __init__(self) -> None:
        self.pending: list[Reply] = []

    def __call__(self, _request: Any) -> ScriptItem:
        return self.pending.pop(0) if self.pending else Reply.text("Your order is on its way.")


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Feed, OpenAIChatModel]]:
    """One server and one SDK client for every case of a test (Hypothesis examples too)."""
    feed = Feed()
    async with FakeOpenAIServer(feed) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        try:
            yield feed, OpenAIChatModel("fake-model", client)
        finally:
            await client.close()


async def run_over_wire(
    wire: tuple[Feed, OpenAIChatModel], drawn: Sequence[Reply], *, stream: bool
) -> Ran:
    feed, model = wire
    feed.pending = list(drawn)
    calls = Calls()
    ran = await run_agent(make_agent(model, calls, stream=stream))
    check(ran, calls)
    return ran


@WIRE
@given(drawn=st.lists(replies, min_size=1, max_size=2), stream=st.booleans())
async def test_fake_server_model_output_ends_typed(
    wire: tuple[Feed, OpenAIChatModel], drawn: list[Reply], stream: bool
) -> None:
    await run_over_wire(wire, drawn, stream=stream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_fake_server_explicit_replies_end_typed(
    wire: tuple[Feed, OpenAIChatModel], stream: bool
) -> None:
    # Deep nesting is the executor's business (tested in process); the rest crosses the wire.
    cases = {k: v for k, v in EXPLICIT_REPLIES.items() if not k.startswith("nested_")}
    cases.update(nested_array_990=EXPLICIT_REPLIES["nested_array_990"])
    for case, reply in cases.items():
        try:
            await run_over_wire(wire, [reply], stream=stream)
        except AssertionError as exc:
            raise AssertionError(f"case {case}: {exc}") from exc


# --------------------------------------------------------------------------- raw bodies


def _completion(choices: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "raw",
        "choices": choices,
        **extra,
    }


def _choice(message: Any, finish_reason: Any = "stop") -> dict[str, Any]:
    return {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}


def _sse(*chunks: Any, done: bool = True) -> bytes:
    out = b""
    for chunk in chunks:
        text = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out += f"data: {text}\n\n".encode()
    return out + (b"data: [DONE]\n\n" if done else b"")


def _chunk(delta: Any, finish_reason: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "raw",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


RAW_JSON: dict[str, Any] = {
    "empty_choices": _completion([]),
    "choices_null": _completion(None),
    "choices_missing": {"id": "x", "object": "chat.completion", "created": 0, "model": "m"},
    "message_null": _completion([_choice(None)]),
    "null_content_no_calls": _completion([_choice({"role": "assistant", "content": None})]),
    "tool_calls_null": _completion(
        [_choice({"role": "assistant", "content": None, "tool_calls": None}, "tool_calls")]
    ),
    "function_null": _completion(
        [_choice({"role": "assistant", "tool_calls": [{"id": "a", "type": "function"}]})]
    ),
    "arguments_object_not_string": _completion(
        [
            _choice(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": {"order_id": "x"}},
                        }
                    ],
                },
                "tool_calls",
            )
        ]
    ),
    "arguments_and_name_missing": _completion(
        [
            _choice(
                {
                    "role": "assistant",
                    "tool_calls": [{"type": "function", "function": {}}, {"function": {}}],
                },
                "tool_calls",
            )
        ]
    ),
    "unknown_call_type": _completion(
        [_choice({"role": "assistant", "tool_calls": [{"id": "a", "type": "other"}]})]
    ),
    "content_is_a_list": _completion([_choice({"role": "assistant", "content": ["a", 1]})]),
    "body_is_a_list": [1, 2, 3],
    "body_is_a_string": "hello",
    "body_is_null": None,
}
RAW_BYTES: dict[str, bytes] = {
    "not_json": b"<html>502 Bad Gateway</html>",
    "truncated_json": json.dumps(_completion([])).encode()[:30],
    "empty_body": b"",
}
RAW_SSE: dict[str, bytes] = {
    "chunk_not_json": _sse(_chunk({"role": "assistant"}), "{not json"),
    "chunk_is_a_list": _sse("[1, 2]"),
    "chunk_choices_null": _sse({"id": "x", "choices": None}),
    "delta_null": _sse(_chunk(None), _chunk({}, "stop")),
    "tool_call_without_function": _sse(
        _chunk({"tool_calls": [{"index": 0, "id": "a"}]}), _chunk({}, "tool_calls")
    ),
    "tool_call_index_is_a_string": _sse(
        _chunk(
            {
                "tool_calls": [
                    {"index": "zero", "id": "a", "function": {"name": "lookup", "arguments": "{"}}
                ]
            }
        ),
        _chunk({}, "tool_calls"),
    ),
    "arguments_not_a_string": _sse(
        _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": 5}}]}),
        _chunk({}, "tool_calls"),
    ),
    "no_chunks_at_all": _sse(),
    "no_done": _sse(_chunk({"content": "partial"}), done=False),
    "error_event": b'event: error\ndata: {"error": {"message": "boom"}}\n\n',
    "error_in_data": _sse({"error": {"message": "overloaded", "type": "server_error"}}),
    "only_usage": _sse({"id": "x", "choices": [], "usage": None}),
}


def raw_client(body: bytes, content_type: str) -> openai.AsyncOpenAI:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": content_type})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(
        base_url="http://raw.invalid/v1", api_key="test", max_retries=0, http_client=http
    )


async def run_raw(body: bytes, content_type: str, *, stream: bool) -> Ran:
    calls = Calls()
    client = raw_client(body, content_type)
    try:
        ran = await run_agent(make_agent(OpenAIChatModel("raw", client), calls, stream=stream))
    finally:
        await client.close()
    check(ran, calls)
    return ran


@pytest.mark.parametrize("body", RAW_JSON.values(), ids=RAW_JSON.keys())
async def test_raw_completion_bodies_end_typed(body: Any) -> None:
    await run_raw(json.dumps(body).encode(), "application/json", stream=False)


@pytest.mark.parametrize("content_type", ["application/json", "text/html"])
@pytest.mark.parametrize("body", RAW_BYTES.values(), ids=RAW_BYTES.keys())
async def test_raw_non_json_bodies_end_typed(body: bytes, content_type: str) -> None:
    await run_raw(body, content_type, stream=False)


@pytest.mark.parametrize("body", RAW_SSE.values(), ids=RAW_SSE.keys())
async def test_raw_stream_bodies_end_typed(body: bytes) -> None:
    await run_raw(body, "text/event-stream", stream=True)


async def test_empty_choices_is_a_model_response_error() -> None:
    from intentflow.errors import ModelResponseError

    ran = await run_raw(
        json.dumps(RAW_JSON["empty_choices"]).encode(), "application/json", stream=False
    )
    assert isinstance(ran.error, ModelResponseError)
    assert "no choices" in str(ran.error)
