"""The agent loop: policies, narrowing, caps, structured output, hooks, events, results.

Wire-level behaviour (what reaches the endpoint) is checked through the real ``openai`` client
against the loopback fake server; loop logic with the in-process ScriptedModel.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from intentflow import TRANSCRIPT, ErrorAction, ErrorPolicy, RunContext, Toolset
from intentflow.agents import (
    FINAL_ANSWER_NOTE,
    Agent,
    AgentEvent,
    FinalOutput,
    ModelDelta,
    ModelRequested,
    ModelResponded,
    ToolCallFinished,
    ToolCallStarted,
    auto,
    forced,
    none,
    required,
    sequence,
)
from intentflow.errors import (
    ConfigurationError,
    MaxTurnsExceeded,
    OutputValidationError,
    ToolCallFailed,
)
from intentflow.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage
from intentflow.models import ForcedTool, ModelRequest, ModelResponse, OpenAIChatModel
from intentflow.testing import FakeOpenAIServer, Reply, ScriptedModel
from tests.fakes import client_for
from tests.spec import assert_valid

pytestmark = pytest.mark.anyio


def make_tools() -> tuple[Toolset, list[tuple[str, dict[str, Any]]]]:
    """A weather/search toolset that records every call it executes."""
    calls: list[tuple[str, dict[str, Any]]] = []
    tools = Toolset("shop")

    @tools.tool
    def get_weather(city: str, unit: str = "c") -> dict[str, Any]:
        """Current weather for a city."""
        calls.append(("get_weather", {"city": city, "unit": unit}))
        return {"city": city, "temp": 18, "unit": unit}

    @tools.tool
    def search_products(query: str, limit: int = 3) -> list[str]:
        """Search the catalogue."""
        calls.append(("search_products", {"query": query, "limit": limit}))
        return [f"{query} {i}" for i in range(limit)]

    @tools.tool
    def submit_answer(answer: str) -> str:
        """Give the final answer."""
        calls.append(("submit_answer", {"answer": answer}))
        return answer

    return tools, calls


def wire_model(server: FakeOpenAIServer, **kwargs: Any) -> OpenAIChatModel:
    client = client_for(server)
    return OpenAIChatModel("gpt-test", client, **kwargs)


def sent(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    """Every chat request body, validated against the OpenAI spec."""
    bodies = server.chat_requests
    for body in bodies:
        assert_valid("CreateChatCompletionRequest", body)
    return bodies


# --------------------------------------------------------------------------- basic loop


async def test_one_tool_round_trip_over_the_wire(server: FakeOpenAIServer) -> None:
    tools, calls = make_tools()
    server.push(Reply.call("get_weather", {"city": "Paris", "unit": None}), Reply.text("Sunny."))
    agent = Agent(name="w", instructions="Be brief.", model=wire_model(server), tools=tools)

    result = await agent.run("Weather in Paris?")

    assert result.output == "Sunny."
    assert result.stop_reason == "final_answer"
    assert calls == [("get_weather", {"city": "Paris", "unit": "c"})]
    first, second = sent(server)
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert [t["function"]["name"] for t in first["tools"]] == list(tools.names)
    assert "tool_choice" not in first  # auto is the API's default with tools
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"city": "Paris", "temp": 18, "unit": "c"}
    assert tool_message["tool_call_id"] == second["messages"][-2]["tool_calls"][0]["id"]
    # The transcript has no instructions; every message this run added is in new_messages.
    assert [m.role for m in result.transcript] == ["user", "assistant", "tool", "assistant"]
    assert result.new_messages == result.transcript
    assert result.usage.requests == 2
    assert result.usage.prompt_tokens > 0
    assert [t.turn for t in result.turns] == [1, 2]
    assert result.turns[0].outcomes[0].ok
    assert all(t.model_seconds > 0 for t in result.turns)


async def test_parallel_calls_run_and_answer_in_model_order() -> None:
    tools, calls = make_tools()
    model = ScriptedModel(
        [
            Reply.calls(
                ("get_weather", {"city": "Paris", "unit": None}),
                ("search_products", {"query": "umbrella", "limit": 1}),
                ("get_weather", {"city": "Oslo", "unit": "f"}),
            ),
            Reply.text("Done."),
        ]
    )
    agent = Agent(model=model, tools=tools, parallel_tool_calls=True)

    result = await agent.run("hi")

    assert sorted(c[1].get("city", "") for c in calls) == ["", "Oslo", "Paris"]
    answer = result.transcript[1]
    assert isinstance(answer, AssistantMessage)
    tool_messages = [m for m in result.transcript if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_messages] == [c.id for c in answer.tool_calls]
    assert model.requests[0].parallel_tool_calls is True


async def test_parallel_tool_calls_false_is_sent(server: FakeOpenAIServer) -> None:
    tools, _ = make_tools()
    server.push(Reply.text("ok"))
    await Agent(model=wire_model(server), tools=tools, parallel_tool_calls=False).run("hi")
    assert sent(server)[0]["parallel_tool_calls"] is False


async def test_history_continues_a_conversation_and_round_trips_as_json() -> None:
    tools, _ = make_tools()
    model = ScriptedModel(
        [
            Reply.call("get_weather", {"city": "Rome", "unit": "c"}),
            Reply.text("Warm."),
            Reply.text("You asked about Rome."),
        ]
    )
    agent = Agent(model=model, tools=tools)
    first = await agent.run("Weather in Rome?")

    saved = TRANSCRIPT.dump_json(list(first.transcript))
    history = TRANSCRIPT.validate_json(saved)
    assert tuple(history) == first.transcript

    second = await agent.run("What did I ask?", history=history)
    assert second.transcript[: len(history)] == tuple(history)
    assert [m.role for m in second.new_messages] == ["user", "assistant"]
    assert list(model.requests[-1].messages[: len(history)]) == history


async def test_instructions_as_a_method_of_the_context_with_deps() -> None:
    class Support(Agent[str]):
        name = "support"

        def instructions(self, ctx: RunContext[Any]) -> str:  # type: ignore[override]
            return f"You help {ctx.deps['customer']} (run {ctx.run_id[:4]})."

    model = ScriptedModel([Reply.text("Hello Ada.")])
    ctx = RunContext({"customer": "Ada"}, run_id="abcd1234")
    result = await Support(model=model).run("hi", context=ctx)

    assert result.run_id == "abcd1234"
    assert result.agent == "support"
    system = model.requests[0].messages[0]
    assert system == SystemMessage(content="You help Ada (run abcd).")


async def test_async_instructions_function() -> None:
    async def instructions(ctx: RunContext[Any]) -> str:
        await anyio.lowlevel.checkpoint()
        return f"Intent: {ctx.intent}."

    model = ScriptedModel([Reply.text("ok")])
    agent = Agent(model=model, instructions=instructions)
    await agent.run("hi", context=RunContext(None, intent="billing"))
    assert model.requests[0].messages[0] == SystemMessage(content="Intent: billing.")


# --------------------------------------------------------------------------- policies


WEATHER = Reply.call("get_weather", {"city": "Paris", "unit": None})
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    ("policy", "stop_at", "script", "expected"),
    [
        (auto(), (), [WEATHER, Reply.text("ok")], [None, None]),
        ("auto", (), [WEATHER, Reply.text("ok")], [None, None]),
        (none(), (), [Reply.text("ok")], ["none"]),
        (
            required(),
            ("submit_answer",),
            [WEATHER, Reply.call("submit_answer", {"answer": "ok"})],
            ["required", "required"],
        ),
        (forced("get_weather"), ("get_weather",), [WEATHER], [NAMED]),
        (
            sequence(forced("get_weather"), then="auto"),
            (),
            [WEATHER, Reply.text("ok")],
            [NAMED, None],
        ),
        (sequence("required", then=none()), (), [WEATHER, Reply.text("ok")], ["required", "none"]),
    ],
)
async def test_each_policy_reaches_the_wire(
    server: FakeOpenAIServer,
    policy: Any,
    stop_at: tuple[str, ...],
    script: list[Reply],
    expected: list[Any],
) -> None:
    tools, _ = make_tools()
    server.push(*script)
    agent = Agent(model=wire_model(server), tools=tools, tool_choice=policy, stop_at_tools=stop_at)
    result = await agent.run("Weather?")
    assert [b.get("tool_choice") for b in sent(server)] == expected
    assert result.output


async def test_forced_tool_that_ends_the_run_returns_its_result() -> None:
    tools, calls = make_tools()
    model = ScriptedModel([Reply.call("submit_answer", {"answer": "42"})])
    agent = Agent(model=model, tools=tools, tool_choice=required(), stop_at_tools={"submit_answer"})

    result = await agent.run("question")

    assert result.output == "42"
    assert result.stop_reason == "stop_tool"
    assert calls == [("submit_answer", {"answer": "42"})]
    assert model.requests[0].tool_choice == "required"


async def test_none_turn_refuses_tool_calls_a_provider_sends_anyway() -> None:
    tools, calls = make_tools()
    model = ScriptedModel(
        [Reply.call("get_weather", {"city": "Paris", "unit": None}), Reply.text("Sorry.")]
    )
    agent = Agent(model=model, tools=tools, tool_choice=sequence("none", then="auto"))

    result = await agent.run("hi")

    assert calls == []  # tool_choice none: nothing may run, whatever the model says
    denied = result.transcript[2]
    assert isinstance(denied, ToolMessage)
    assert denied.is_error
    assert json.loads(denied.content)["error"]["kind"] == "unknown_tool"


def test_a_policy_that_forces_tools_forever_without_an_exit_is_rejected() -> None:
    tools, _ = make_tools()
    with pytest.raises(ConfigurationError) as info:
        Agent(model=ScriptedModel(), tools=tools, tool_choice=required())
    assert "'required' forces a tool call on every turn" in str(info.value)
    assert "stop_at_tools" in str(info.value)

    with pytest.raises(ConfigurationError, match="forces 'get_weather' on every turn"):
        Agent(model=ScriptedModel(), tools=tools, tool_choice=forced("get_weather"))

    # With an exit, or once the forcing ends, the same policies are fine.
    Agent(
        model=ScriptedModel(), tools=tools, tool_choice=required(), stop_at_tools=["submit_answer"]
    )
    Agent(model=ScriptedModel(), tools=tools, tool_choice=sequence(forced("get_weather")))


def test_every_configuration_problem_is_listed_in_one_error() -> None:
    tools, _ = make_tools()
    with pytest.raises(ConfigurationError) as info:
        Agent(
            name="broken",
            model=ScriptedModel(),
            tools=tools,
            tool_choice=sequence(forced("nope"), then="required"),
            stop_at_tools={"missing"},
            max_turns=0,
        )
    message = str(info.value)
    assert message.startswith("agent 'broken' cannot be built:")
    for part in ("max_turns must be at least 1", "'missing'", "'nope'", "'required' forces"):
        assert part in message


def test_agent_needs_a_model_and_rejects_unknown_options() -> None:
    with pytest.raises(ConfigurationError, match="no model"):
        Agent()
    with pytest.raises(TypeError, match="unknown options: temprature"):
        Agent(model=ScriptedModel(), temprature=0)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="not a tool_choice"):
        Agent(model=ScriptedModel(), tool_choice="sometimes")


def test_a_model_name_builds_an_openai_model_lazily() -> None:
    agent = Agent(model="gpt-4.1-mini")  # no API key is needed until the first request
    assert isinstance(agent.model, OpenAIChatModel)
    assert agent.model.name == "gpt-4.1-mini"


# --------------------------------------------------------------------------- narrowing


async def test_send_allowed_narrowing_sends_only_the_allowed_tools(
    server: FakeOpenAIServer,
) -> None:
    tools, _ = make_tools()
    server.push(Reply.text("ok"))
    agent = Agent(model=wire_model(server), tools=tools)
    await agent.run("hi", allowed=["get_weather"])
    body = sent(server)[0]
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert "tool_choice" not in body


async def test_allowed_tools_narrowing_keeps_the_tools_array_and_restricts_by_choice(
    server: FakeOpenAIServer,
) -> None:
    tools, _ = make_tools()
    server.push(Reply.call("get_weather", {"city": "Oslo", "unit": None}), Reply.text("ok"))
    agent = Agent(
        model=wire_model(server, narrowing="allowed_tools"),
        tools=tools,
        tool_choice=sequence("required", then="auto"),
    )
    await agent.run("hi", allowed=["get_weather", "search_products"])
    first, second = sent(server)
    assert [t["function"]["name"] for t in first["tools"]] == list(tools.names)
    assert first["tools"] == second["tools"]  # a stable prefix for the prompt cache
    for body, mode in ((first, "required"), (second, "auto")):
        assert body["tool_choice"] == {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": mode,
                "tools": [
                    {"type": "function", "function": {"name": "get_weather"}},
                    {"type": "function", "function": {"name": "search_products"}},
                ],
            },
        }


async def test_a_tool_outside_the_allowed_set_is_refused_even_if_sent() -> None:
    tools, calls = make_tools()
    model = ScriptedModel([Reply.call("submit_answer", {"answer": "x"}), Reply.text("ok")])
    agent = Agent(model=model, tools=tools, narrowing="allowed_tools")
    result = await agent.run("hi", allowed=["get_weather"])
    assert calls == []
    assert result.turns[0].outcomes[0].kind.value == "permission_denied"
    assert model.requests[0].allowed_tools == ("get_weather",)
    assert len(model.requests[0].tools) == 3


async def test_allowed_names_must_be_tools_of_the_agent() -> None:
    tools, _ = make_tools()
    agent = Agent(model=ScriptedModel(), tools=tools)
    with pytest.raises(ValueError, match="refund"):
        await agent.run("hi", allowed=["refund"])


# --------------------------------------------------------------------------- caps


def weather_forever(request: ModelRequest) -> Reply:
    if request.tool_choice == "none":
        return Reply.text("Best effort: it is sunny.")
    return Reply.call("get_weather", {"city": "Paris", "unit": None})


async def test_cap_with_final_answer_makes_the_last_turn_tool_free(
    server: FakeOpenAIServer,
) -> None:
    tools, calls = make_tools()

    def script(body: dict[str, Any]) -> Reply:
        if body.get("tool_choice") == "none":
            return Reply.text("Best effort: it is sunny.")
        return Reply.call("get_weather", {"city": "Paris", "unit": None})

    async with FakeOpenAIServer(script) as srv:
        agent = Agent(
            model=wire_model(srv), tools=tools, max_turns=3, loop_policy=None
        )  # the cap alone
        result = await agent.run("Weather?")
        bodies = sent(srv)

    assert result.output == "Best effort: it is sunny."
    assert result.stop_reason == "max_turns"
    assert len(bodies) == 3  # max_turns bounds the model calls
    assert len(calls) == 2
    last = bodies[-1]
    assert last["tool_choice"] == "none"
    assert last["tools"] == bodies[0]["tools"]  # unchanged, so the prompt cache holds
    assert last["messages"][-1] == {"role": "system", "content": FINAL_ANSWER_NOTE}
    # The note is for that request only; the transcript does not keep it.
    assert all(m.role != "system" for m in result.transcript)
    assert result.turns[-1].notes == (FINAL_ANSWER_NOTE,)


async def test_cap_with_raise_carries_a_complete_transcript() -> None:
    tools, calls = make_tools()
    model = ScriptedModel(weather_forever)
    agent = Agent(model=model, tools=tools, max_turns=2, on_max_turns="raise")

    with pytest.raises(MaxTurnsExceeded) as info:
        await agent.run("Weather?")

    exc = info.value
    assert exc.max_turns == 2
    assert exc.agent == agent.name
    assert len(model.requests) == 2
    assert len(calls) == 2  # the last turn's calls ran: every call in the transcript is answered
    roles = [m.role for m in exc.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert exc.usage is not None
    assert exc.usage.requests == 2
    assert "on_max_turns='final_answer'" in str(exc)


async def test_budget_notes_on_the_last_turns() -> None:
    tools, _ = make_tools()
    model = ScriptedModel(weather_forever)
    agent = Agent(model=model, tools=tools, max_turns=4, budget_note_turns=2, loop_policy=None)
    result = await agent.run("Weather?")

    # Turn 4 is the tool-free final answer, so turns 1-3 are the ones that can call tools.
    notes = [r.notes for r in result.turns]
    assert notes[0] == ()
    assert "after this turn, 1 more turn can call tools" in notes[1][0]
    assert "this is the last turn that can call tools" in notes[2][0]
    assert notes[3] == (FINAL_ANSWER_NOTE,)
    assert model.requests[1].messages[-1] == SystemMessage(content=notes[1][0])


async def test_a_single_turn_agent_is_not_forced_to_answer_without_tools() -> None:
    tools, _ = make_tools()
    model = ScriptedModel([Reply.call("get_weather", {"city": "Paris", "unit": None})])
    agent = Agent(model=model, tools=tools, max_turns=1)
    with pytest.raises(MaxTurnsExceeded):
        await agent.run("hi")
    assert model.requests[0].tool_choice == "auto"


# --------------------------------------------------------------------------- structured output


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    celsius: float
    note: str | None = None


async def test_structured_output_via_response_format(server: FakeOpenAIServer) -> None:
    server.push(Reply.text('{"city": "Paris", "celsius": 18.5, "note": null}'))
    agent = Agent(model=wire_model(server), output_type=Forecast)

    result = await agent.run("Forecast for Paris")

    assert result.output == Forecast(city="Paris", celsius=18.5)
    body = sent(server)[0]
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]
    assert schema["name"] == "Forecast"
    assert schema["strict"] is True
    assert schema["schema"]["required"] == ["city", "celsius", "note"]
    assert schema["schema"]["additionalProperties"] is False


async def test_invalid_output_is_sent_back_and_corrected() -> None:
    model = ScriptedModel(
        [
            Reply.text('{"city": "Paris", "celsius": "warm"}'),
            Reply.text('{"city": "Paris", "celsius": 20}'),
        ]
    )
    agent = Agent(model=model, output_type=Forecast)

    result = await agent.run("Forecast")

    assert result.output.celsius == 20
    correction = model.requests[1].messages[-1]
    assert isinstance(correction, UserMessage)
    assert "celsius" in correction.content
    assert "Forecast" in correction.content


async def test_output_that_stays_invalid_raises_with_every_field() -> None:
    model = ScriptedModel([Reply.text('{"celsius": "warm"}')] * 2)
    agent = Agent(model=model, output_type=Forecast, output_retries=1)

    with pytest.raises(OutputValidationError) as info:
        await agent.run("Forecast")

    exc = info.value
    assert exc.attempts == 2
    assert {e.location for e in exc.errors} == {"city", "celsius"}
    assert exc.raw == '{"celsius": "warm"}'
    assert len(exc.transcript) == 4  # user, bad answer, correction, bad answer


async def test_output_in_a_markdown_fence_is_accepted() -> None:
    model = ScriptedModel([Reply.text('```json\n{"city": "Oslo", "celsius": -2}\n```')])
    result = await Agent(model=model, output_type=Forecast).run("Forecast")
    assert result.output == Forecast(city="Oslo", celsius=-2)


async def test_structured_output_via_a_final_output_tool() -> None:
    tools, _ = make_tools()
    model = ScriptedModel(
        [
            Reply.call("get_weather", {"city": "Oslo", "unit": None}),
            Reply.text("It is cold."),  # not the output tool: corrected
            Reply.call("final_output", {"city": "Oslo", "celsius": -2, "note": None}),
        ]
    )
    agent = Agent(model=model, tools=tools, output_type=Forecast, output_mode="tool")

    result = await agent.run("Forecast")

    assert result.output == Forecast(city="Oslo", celsius=-2)
    assert result.stop_reason == "stop_tool"
    assert "final_output" in model.requests[0].tool_names
    assert model.requests[0].output is None
    assert "final_output" in model.requests[2].messages[-1].content  # type: ignore[union-attr]


# --------------------------------------------------------------------------- hooks and events


async def test_hooks_run_in_order_and_can_change_requests_and_responses() -> None:
    tools, _ = make_tools()
    seen: list[str] = []

    class Audited(Agent[str]):
        async def before_model(
            self, ctx: RunContext[Any], request: ModelRequest
        ) -> ModelRequest | None:
            seen.append(f"before_model:{ctx.turn}")
            return ModelRequest(
                messages=request.messages,
                tools=request.tools,
                tool_choice=request.tool_choice,
                settings={"temperature": 0},
            )

        async def after_model(
            self, ctx: RunContext[Any], response: ModelResponse
        ) -> ModelResponse | None:
            seen.append(f"after_model:{ctx.turn}")
            if response.message.content:
                message = response.message.model_copy(
                    update={"content": "(checked) " + response.message.content}
                )
                return ModelResponse(message, response.finish_reason, response.usage)
            return None

        async def before_tool(self, ctx: RunContext[Any], call: Any) -> None:
            seen.append(f"before_tool:{call.name}")

        async def after_tool(self, ctx: RunContext[Any], outcome: Any) -> None:
            seen.append(f"after_tool:{outcome.kind.value}")

    model = ScriptedModel(
        [Reply.call("get_weather", {"city": "Paris", "unit": None}), Reply.text("Sunny.")]
    )
    result = await Audited(model=model, tools=tools).run("hi")

    assert seen == [
        "before_model:1",
        "after_model:1",
        "before_tool:get_weather",
        "after_tool:success",
        "before_model:2",
        "after_model:2",
    ]
    assert result.output == "(checked) Sunny."
    assert all(r.settings == {"temperature": 0} for r in model.requests)


@pytest.mark.parametrize("stream", [False, True])
async def test_events_report_the_run(stream: bool) -> None:
    tools, _ = make_tools()
    model = ScriptedModel(
        [Reply.call("get_weather", {"city": "Paris", "unit": None}), Reply.text("Sunny today.")],
        chunk_chars=4,
    )
    events: list[AgentEvent] = []
    agent = Agent(name="w", model=model, tools=tools, stream=stream)

    result = await agent.run("hi", on_event=events.append)

    kinds = [type(e) for e in events if not isinstance(e, ModelDelta)]
    assert kinds == [
        ModelRequested,
        ModelResponded,
        ToolCallStarted,
        ToolCallFinished,
        ModelRequested,
        ModelResponded,
        FinalOutput,
    ]
    deltas = [e for e in events if isinstance(e, ModelDelta)]
    if stream:
        text = "".join(getattr(e.delta, "text", "") for e in deltas if e.turn == 2)
        assert text == "Sunny today."
    else:
        assert deltas == []
    final = events[-1]
    assert isinstance(final, FinalOutput)
    assert final.output == result.output
    assert all(e.agent == "w" for e in events)


# --------------------------------------------------------------------------- failures


async def test_a_raising_error_policy_keeps_the_batch_in_the_transcript() -> None:
    tools, _ = make_tools()
    model = ScriptedModel(
        [Reply.calls(("get_weather", {"city": "Paris", "unit": None}), ("nope", {}))]
    )
    agent = Agent(
        model=model, tools=tools, error_policy=ErrorPolicy(unknown_tool=ErrorAction.RAISE)
    )
    with pytest.raises(ToolCallFailed) as info:
        await agent.run("hi")
    roles = [m.role for m in info.value.transcript]
    assert roles == ["user", "assistant", "tool", "tool"]


async def test_run_sync_runs_without_an_event_loop_and_refuses_inside_one() -> None:
    model = ScriptedModel([Reply.text("sync ok")])
    agent = Agent(model=model)
    result = await anyio.to_thread.run_sync(agent.run_sync, "hi")
    assert result.output == "sync ok"

    with pytest.raises(RuntimeError, match=r"await agent\.run"):
        agent.run_sync("hi")


async def test_forced_tool_choice_is_sent_as_a_named_function() -> None:
    tools, _ = make_tools()
    model = ScriptedModel(
        [Reply.call("search_products", {"query": "x", "limit": 1}), Reply.text("ok")]
    )
    agent = Agent(model=model, tools=tools, tool_choice=sequence(forced("search_products")))
    await agent.run("hi")
    assert model.requests[0].tool_choice == ForcedTool("search_products")
    assert model.requests[1].tool_choice == "auto"


async def test_allowed_sets_are_checked_against_the_policy() -> None:
    tools, _ = make_tools()
    agent = Agent(
        model=ScriptedModel(),
        tools=tools,
        tool_choice=sequence(forced("search_products")),
    )
    with pytest.raises(ConfigurationError, match=r"allowed=\{get_weather\}") as info:
        await agent.run("hi", allowed=["get_weather"])
    assert "'search_products'" in str(info.value)

    exit_only_outside = Agent(
        model=ScriptedModel(), tools=tools, tool_choice=required(), stop_at_tools={"submit_answer"}
    )
    with pytest.raises(ConfigurationError, match="'required' forces a tool call"):
        await exit_only_outside.run("hi", allowed=["get_weather"])


async def test_an_empty_allowed_set_sends_no_tools() -> None:
    tools, _ = make_tools()
    model = ScriptedModel([Reply.text("ok")])
    agent = Agent(model=model, tools=tools, narrowing="allowed_tools")
    await agent.run("hi", allowed=[])
    assert model.requests[0].tools == ()
    assert model.requests[0].allowed_tools is None


def test_stop_tools_cannot_be_combined_with_an_output_type() -> None:
    tools, _ = make_tools()
    with pytest.raises(ConfigurationError, match="cannot be combined with output_type"):
        Agent(
            model=ScriptedModel(), tools=tools, output_type=Forecast, stop_at_tools={"get_weather"}
        )


async def test_tool_mode_cap_forces_the_output_tool_with_a_matching_note() -> None:
    tools, _ = make_tools()

    def script(request: ModelRequest) -> Reply:
        if request.tool_choice == ForcedTool("final_output"):
            return Reply.call("final_output", {"city": "Rome", "celsius": 25, "note": None})
        return Reply.call("get_weather", {"city": "Rome", "unit": None})

    model = ScriptedModel(script)
    agent = Agent(model=model, tools=tools, output_type=Forecast, output_mode="tool", max_turns=2)
    result = await agent.run("Forecast")

    assert result.output == Forecast(city="Rome", celsius=25)
    note = result.turns[-1].notes[0]
    assert "Call the final_output tool now" in note
    assert "Do not call tools" not in note


async def test_output_errors_do_not_name_the_internal_output_tool() -> None:
    model = ScriptedModel([Reply.text('{"city": 1}')])
    agent = Agent(model=model, output_type=Forecast, output_retries=0)
    with pytest.raises(OutputValidationError) as info:
        await agent.run("Forecast")
    assert "final_output" not in str(info.value)
    assert "celsius" in str(info.value)


async def test_a_graceful_cap_that_the_model_ignores_says_so() -> None:
    tools, _ = make_tools()
    model = ScriptedModel([Reply.call("get_weather", {"city": "Paris", "unit": None})] * 2)
    agent = Agent(model=model, tools=tools, max_turns=2)
    with pytest.raises(MaxTurnsExceeded, match="called tools anyway") as info:
        await agent.run("hi")
    assert "set on_max_turns" not in str(info.value)
