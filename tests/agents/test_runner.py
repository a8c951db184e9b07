"""Runner: routing, handoffs, transitions, guards and their escalation, events, cancellation.

The scripted models here misbehave on purpose: they repeat calls, bounce between agents and
ignore notes, so each guard is seen acting.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from intentflow import Toolset
from intentflow.agents import Agent
from intentflow.agents.events import (
    GuardNotice,
    NodeStarted,
    RouteDecided,
    ToolCallStarted,
)
from intentflow.agents.graph import AgentGraph
from intentflow.agents.guards import Limits
from intentflow.agents.handoff import Handoff, HandoffRequest
from intentflow.agents.loops import LoopPolicy
from intentflow.agents.runner import Runner
from intentflow.context import RunContext
from intentflow.errors import (
    ConfigurationError,
    GuardTripped,
    InvalidTransition,
    LoopDetected,
    ModelAPIError,
    TokenBudgetExceeded,
)
from intentflow.messages import ToolMessage
from intentflow.models import ModelRequest
from intentflow.router import Intent, Prediction, Router
from intentflow.testing import Fault, Reply, ScriptedModel

pytestmark = pytest.mark.anyio


class Keyword:
    """A classifier that routes on a keyword (so routing is not what these tests test)."""

    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        if "refund" in text:
            return Prediction.from_scores([("refund", 0.9), ("chat", 0.1)])
        if "hello" in text:
            return Prediction.from_scores([("chat", 0.9), ("refund", 0.1)])
        return Prediction.from_scores([("refund", 0.3), ("chat", 0.3)])


class Ticket(BaseModel):
    summary: str
    order_id: str | None = None


class State(BaseModel):
    tickets: list[str] = []


def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped"}


def issue_refund(order_id: str) -> str:
    """Refund an order."""
    return f"refund issued for {order_id}"


class Billing(Agent[str]):
    name = "billing"
    tools = (issue_refund,)
    handoffs = ("triage",)
    max_visits = 2

    async def on_handoff(self, ctx: RunContext[Any], handoff: HandoffRequest) -> None:
        ctx.state.tickets.append(handoff.payload.summary)


def graph_for(model: ScriptedModel, **limits: Any) -> AgentGraph:
    triage = Agent(
        name="triage",
        model=model,
        handoffs=[Handoff("billing", description="Money matters.", payload=Ticket)],
    )
    return AgentGraph([triage, Billing(model=model)], state_type=State, limits=Limits(**limits))


def router() -> Router:
    orders = Toolset("orders", [lookup_order])
    return Router(
        [
            Intent("refund", examples=["refund"], toolset=orders, entry="triage"),
            Intent("chat", examples=["hello"], tool_choice="none", entry="triage"),
        ],
        Keyword(),
    )


async def test_a_routed_run_hands_off_with_a_payload_and_finishes() -> None:
    model = ScriptedModel(
        [
            Reply.call("lookup_order", {"order_id": "A-1"}),
            Reply.call("transfer_to_billing", {"summary": "refund A-1", "order_id": "A-1"}),
            Reply.call("issue_refund", {"order_id": "A-1"}),
            Reply.text("Your refund for A-1 is on its way."),
        ]
    )
    result = await Runner(router(), graph_for(model)).run("I want a refund for A-1")

    assert result.output == "Your refund for A-1 is on its way."
    assert result.decision is not None and result.decision.intent == "refund"
    assert (result.intent, result.path, result.agent) == (
        "refund",
        ("triage", "billing"),
        "billing",
    )
    assert result.stop_reason == "final_answer"
    assert result.state.tickets == ["refund A-1"]  # Billing.on_handoff saw the payload
    roles = [(m.role, getattr(m, "agent", None)) for m in result.transcript]
    assert roles == [
        ("user", None),
        ("assistant", "triage"),
        ("tool", None),
        ("assistant", "triage"),
        ("tool", None),
        ("assistant", "billing"),
        ("tool", None),
        ("assistant", "billing"),
    ]
    transfer = result.transcript[4]
    assert isinstance(transfer, ToolMessage) and transfer.content == "Transferred to billing."
    assert set(result.usage_by_node) == {"triage", "billing"}
    assert result.usage.requests == 4 == sum(u.requests for u in result.usage_by_node.values())
    assert [s.stop_reason for s in result.steps] == ["handoff", "final_answer"]
    assert result.new_messages == result.transcript


async def test_the_entry_node_sees_the_intents_tools_and_policy_plus_its_transfers() -> None:
    model = ScriptedModel([Reply.text("Hi!")] * 2)
    runner = Runner(router(), graph_for(model))
    await runner.run("I want a refund")
    await runner.run("hello there")
    refund, chat = model.requests
    # The intent's toolset narrows the entry agent; transfers stay available.
    assert refund.tool_names == ("lookup_order", "transfer_to_billing")
    assert refund.tool_choice == "auto"
    # The chat intent's policy is none: the model answers without tools.
    assert chat.tool_choice == "none"


async def test_billing_keeps_its_own_tools_after_the_handoff() -> None:
    model = ScriptedModel(
        [Reply.call("transfer_to_billing", {"summary": "x", "order_id": None}), Reply.text("ok")]
    )
    await Runner(router(), graph_for(model)).run("refund please")
    assert model.requests[1].tool_names == ("issue_refund", "transfer_to_triage")


async def test_no_intent_is_returned_to_the_caller_or_sent_to_the_default_entry() -> None:
    abstaining = Router(
        [Intent("refund", examples=["refund"], entry="triage")], Keyword(), threshold=0.5
    )
    model = ScriptedModel([Reply.text("I can help with refunds.")])
    result = await Runner(abstaining, graph_for(model)).run("what is the weather")
    assert (result.stop_reason, result.output, result.path, result.intent) == (
        "no_intent",
        None,
        (),
        None,
    )
    assert result.decision is not None and result.decision.abstained
    assert model.requests == []
    result = await Runner(abstaining, graph_for(model), entry="triage").run("what is the weather")
    assert result.output == "I can help with refunds." and result.path == ("triage",)


async def test_without_a_router_every_message_starts_at_the_entry() -> None:
    model = ScriptedModel([Reply.text("hello")])
    result = await Runner(None, graph_for(model), entry="triage").run("hi")
    assert result.decision is None and result.output == "hello"


def test_the_runner_validates_graph_and_intents_together() -> None:
    model = ScriptedModel([])
    bad = Router(
        [
            Intent("refund", examples=["refund"], entry="nobody"),
            Intent(
                "chat",
                examples=["hi"],
                entry="triage",
                toolset=Toolset("orders", [lookup_order]),
                tool_choice="required",
            ),
        ],
        Keyword(),
    )
    graph = AgentGraph([Agent(name="triage", model=model), Agent(name="lost", model=model)])
    with pytest.raises(ConfigurationError) as info:
        Runner(bad, graph)
    text = str(info.value)
    assert "the entry point 'nobody' is not a node of the graph" in text
    assert "node 'lost' cannot be reached" in text
    assert "intent 'chat' at 'triage'" in text and "can never answer" in text
    with pytest.raises(ConfigurationError, match="no entry point"):
        Runner(Router([Intent("a", examples=["a"])], Keyword()), graph)


# --------------------------------------------------------------------------- transitions


class Draft(Agent[str]):
    name = "draft"

    async def next_node(self, ctx: RunContext[Any], result: Any) -> str | None:
        return "review" if "TODO" in result.output else None


async def test_next_node_decides_in_code() -> None:
    model = ScriptedModel([Reply.text("draft with TODO"), Reply.text("reviewed")])
    graph = AgentGraph([Draft(model=model), Agent(name="review", model=model)])
    graph.add_transition("draft", "review")
    result = await Runner(None, graph, entry="draft").run("write")
    assert (result.output, result.path) == ("reviewed", ("draft", "review"))
    model = ScriptedModel([Reply.text("clean draft")])
    graph = AgentGraph([Draft(model=model), Agent(name="review", model=model)])
    graph.add_transition("draft", "review")
    result = await Runner(None, graph, entry="draft").run("write")
    assert (result.output, result.path) == ("clean draft", ("draft",))


async def test_transition_conditions_are_tried_in_order() -> None:
    model = ScriptedModel([Reply.text("short"), Reply.text("from b")])
    graph = AgentGraph([Agent(name=n, model=model) for n in ("a", "b", "c")])
    graph.add_transition("a", "c", when=lambda ctx, r: len(r.output) > 10)

    async def short(ctx: RunContext[Any], r: Any) -> bool:
        return len(r.output) <= 10

    graph.add_transition("a", "b", when=short)
    result = await Runner(None, graph, entry="a").run("go")
    assert result.path == ("a", "b") and result.output == "from b"


async def test_a_next_node_without_an_edge_is_a_typed_error_with_the_transcript() -> None:
    class Wild(Agent[str]):
        name = "wild"

        async def next_node(self, ctx: RunContext[Any], result: Any) -> str | None:
            return "far"  # a node of the graph, but not a successor of this one

    model = ScriptedModel([Reply.text("done")])
    graph = AgentGraph(
        [Wild(model=model), Agent(name="mid", model=model), Agent(name="far", model=model)]
    )
    graph.add_transition("wild", "mid")
    graph.add_transition("mid", "far")
    with pytest.raises(
        InvalidTransition, match=r"no edge from 'wild' to it \(its successors: mid\)"
    ) as info:
        await Runner(None, graph, entry="wild").run("go")
    assert [m.role for m in info.value.transcript] == ["user", "assistant"]
    assert info.value.path == ("wild",)


# --------------------------------------------------------------------------- guards


def search(query: str) -> str:
    """Search."""
    return f"results for {query}"


def searching(request: ModelRequest) -> Reply:
    """Calls search with new arguments every time, unless told to answer."""
    if request.tool_choice == "none":
        return Reply.text("best effort")
    return Reply.call("search", {"query": f"q{len(request.messages)}"})


async def test_the_step_cap_ends_with_a_graceful_answer() -> None:
    model = ScriptedModel(searching)
    graph = AgentGraph(
        [Agent(name="a", model=model, tools=[search], max_turns=50)], limits=Limits(max_steps=3)
    )
    result = await Runner(None, graph, entry="a").run("go")
    assert result.output == "best effort"
    assert [r.tool_choice for r in model.requests] == ["auto", "auto", "none"]
    assert "max_steps" in result.guards and result.stop_reason == "max_turns"
    assert "used all the steps" in model.requests[-1].messages[-1].content


async def test_the_step_cap_raises_when_configured_to() -> None:
    model = ScriptedModel(searching)
    graph = AgentGraph(
        [Agent(name="a", model=model, tools=[search], max_turns=50)],
        limits=Limits(max_steps=2, on_limit="raise"),
    )
    with pytest.raises(GuardTripped) as info:
        await Runner(None, graph, entry="a").run("go")
    exc = info.value
    assert (exc.guard, exc.limit, exc.path) == ("max_steps", 2, ("a",))
    assert [m.role for m in exc.transcript] == ["user", "assistant", "tool", "assistant", "tool"]
    assert exc.usage is not None and exc.usage.requests == 2


def bouncing(request: ModelRequest) -> Reply:
    """Transfers back and forth while it may; answers when told to."""
    names = request.tool_names
    if request.tool_choice == "none":
        return Reply.text("answering myself")
    target = next((n for n in names if n.startswith("transfer_to_")), None)
    if target == "transfer_to_billing":
        return Reply.call(target, {"summary": "again", "order_id": None})
    return Reply.call(target) if target else Reply.text("no transfer possible")


async def test_handoff_ping_pong_is_noted_then_refused_then_stopped() -> None:
    model = ScriptedModel(bouncing)
    graph = graph_for(model)
    graph.agent("billing").max_visits = None  # let the loop detector act, not the visit cap
    graph.cap_cycle(["triage", "billing"], 100)
    events: list[Any] = []
    result = await Runner(router(), graph).run("refund please", on_event=events.append)
    notices = [e for e in events if isinstance(e, GuardNotice)]
    assert [n.guard for n in notices][:2] == ["loop", "loop"]
    assert notices[0].detail.startswith("note:")
    # The second detection refused the transfer, so the agent had to answer itself.
    assert result.output == "answering myself"
    refused = [
        m
        for m in result.transcript
        if isinstance(m, ToolMessage) and m.content.startswith("Not transferred")
    ]
    assert len(refused) == 1
    assert result.path == ("triage", "billing", "triage", "billing")


async def test_a_model_that_ignores_every_loop_warning_is_stopped() -> None:
    # The same call with the same result, even when tool_choice is none (a misbehaving
    # endpoint): note, then restrict, then LoopDetected.
    model = ScriptedModel(lambda r: Reply.call("search", {"query": "same"}))
    graph = AgentGraph([Agent(name="a", model=model, tools=[search], max_turns=20)])
    with pytest.raises(LoopDetected) as info:
        await Runner(None, graph, entry="a").run("go")
    exc = info.value
    assert 'search({"query":"same"})' in exc.signature
    assert exc.path == ("a",) and exc.guard == "loop"
    choices = [r.tool_choice for r in model.requests]
    assert choices == ["auto", "auto", "auto", "none"]
    note = model.requests[2].messages[-1].content
    assert "search" in note and "same result" in note  # the first detection: same call, same result
    assert len([m for m in exc.transcript if m.role == "tool"]) == 4  # every call answered


async def test_exempt_tools_may_repeat() -> None:
    count = 0

    def poll(job: str) -> str:
        """Poll a job."""
        nonlocal count
        count += 1
        return "done" if count == 5 else "running"

    def script(request: ModelRequest) -> Reply:
        last = request.messages[-1]
        if getattr(last, "content", "") == "done":
            return Reply.text("finished")
        return Reply.call("poll", {"job": "j1"})

    model = ScriptedModel(script)
    graph = AgentGraph([Agent(name="a", model=model, tools=[poll], max_turns=20)])
    result = await Runner(None, graph, entry="a", loop_policy=LoopPolicy(exempt={"poll"})).run("go")
    assert result.output == "finished" and result.guards == ()


async def test_visit_caps_refuse_transfers_gracefully_or_raise() -> None:
    model = ScriptedModel(bouncing)
    runner = Runner(router(), graph_for(model), loop_policy=None)
    result = await runner.run("refund please")
    # billing may be entered twice (max_visits=2); the third transfer is refused.
    assert result.path == ("triage", "billing", "triage", "billing", "triage")
    assert "max_visits" in result.guards and result.output == "answering myself"

    model = ScriptedModel(bouncing)
    runner = Runner(router(), graph_for(model, on_limit="raise"), loop_policy=None)
    with pytest.raises(GuardTripped) as info:
        await runner.run("refund please")
    assert info.value.guard == "max_visits" and info.value.limit == 2
    assert info.value.path == ("triage", "billing", "triage", "billing", "triage")


async def test_a_cycle_cap_limits_passes() -> None:
    model = ScriptedModel(bouncing)
    graph = graph_for(model)
    graph.agent("billing").max_visits = None
    graph.cap_cycle(["triage", "billing"], 2)
    result = await Runner(router(), graph, loop_policy=None).run("refund please")
    assert result.path == ("triage", "billing", "triage")
    assert "cycle_cap" in result.guards


async def test_the_token_budget_stops_before_it_is_exceeded() -> None:
    model = ScriptedModel(searching)
    graph = AgentGraph(
        [Agent(name="a", model=model, tools=[search], max_turns=50)],
        limits=Limits(token_budget=400),
    )
    with pytest.raises(TokenBudgetExceeded) as info:
        await Runner(None, graph, entry="a", loop_policy=None).run("go")
    exc = info.value
    assert exc.used <= 400 and exc.budget == 400 and exc.guard == "token_budget"
    assert exc.usage is not None and exc.usage.total_tokens == exc.used


async def test_errors_from_a_node_carry_the_whole_run() -> None:
    model = ScriptedModel(
        [
            Reply.call("transfer_to_billing", {"summary": "x", "order_id": None}),
            Fault.server_error(503),
        ]
    )
    with pytest.raises(ModelAPIError) as info:
        await Runner(router(), graph_for(model)).run("refund")
    exc = info.value
    assert exc.path == ("triage", "billing")
    assert [m.role for m in exc.transcript] == ["user", "assistant", "tool"]
    assert exc.usage is not None and exc.usage.requests == 1


# --------------------------------------------------------------------------- events, streams


async def test_the_event_stream_order() -> None:
    model = ScriptedModel(
        [
            Reply.call("lookup_order", {"order_id": "A-1"}),
            Reply.call("transfer_to_billing", {"summary": "s", "order_id": None}),
            Reply.text("done"),
        ]
    )
    runner = Runner(router(), graph_for(model))
    async with runner.stream("refund A-1") as events:
        kinds = [type(e).__name__ async for e in events]
    assert events.result is not None and events.result.output == "done"
    assert kinds == [
        "RouteDecided",
        "NodeStarted",
        "ModelRequested",
        "ModelResponded",
        "ToolCallStarted",
        "ToolCallFinished",
        "ModelRequested",
        "ModelResponded",
        "ToolCallStarted",
        "ToolCallFinished",
        "HandoffTaken",
        "NodeStarted",
        "ModelRequested",
        "ModelResponded",
        "FinalOutput",
    ]


async def test_a_failed_streamed_run_raises_after_its_events() -> None:
    model = ScriptedModel([Fault.server_error(500)])
    runner = Runner(router(), graph_for(model))
    seen = []

    async def consume() -> None:
        async with runner.stream("refund") as events:
            async for event in events:
                seen.append(type(event).__name__)

    with pytest.raises(ModelAPIError):
        await consume()
    assert seen == ["RouteDecided", "NodeStarted", "ModelRequested"]


async def test_cancellation_mid_tool_keeps_a_complete_transcript() -> None:
    started = anyio.Event()

    async def slow_lookup(order_id: str) -> str:
        """Look up slowly."""
        started.set()
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel(
        [Reply.calls(("slow_lookup", {"order_id": "1"}), ("slow_lookup", {"order_id": "2"}))]
    )
    graph = AgentGraph([Agent(name="a", model=model, tools=[slow_lookup])])
    run = Runner(None, graph, entry="a").start("go")
    with anyio.fail_after(5):  # nothing hangs
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.execute)
            await started.wait()
            tg.cancel_scope.cancel()
    roles = [m.role for m in run.transcript]
    assert roles == ["user", "assistant", "tool", "tool"]
    assert all("cancelled" in m.content for m in run.transcript[2:])
    assert run.path == ("a",)


async def test_leaving_a_stream_early_cancels_the_run() -> None:
    started = anyio.Event()

    async def slow_lookup(order_id: str) -> str:
        """Look up slowly."""
        started.set()
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel([Reply.call("slow_lookup", {"order_id": "1"})])
    graph = AgentGraph([Agent(name="a", model=model, tools=[slow_lookup])])
    with anyio.fail_after(5):
        async with Runner(None, graph, entry="a").stream("go") as events:
            async for event in events:
                if isinstance(event, ToolCallStarted):
                    break
        assert events.result is None
    assert [m.role for m in events.run.transcript] == ["user", "assistant", "tool"]


async def test_sticky_routing_uses_the_current_intent() -> None:
    sticky = Router(
        [
            Intent("refund", examples=["refund"], entry="triage"),
            Intent("chat", examples=["hello"], entry="triage"),
        ],
        Keyword(),
        sticky_margin=0.05,
    )
    model = ScriptedModel([Reply.text("ok")] * 2)
    runner = Runner(sticky, graph_for(model))
    first = await runner.run("something vague")  # 0.3 vs 0.3: refund first
    again = await runner.run("something vague", current_intent="chat")
    assert first.intent == "refund" and again.intent == "chat"
    assert again.decision is not None and again.decision.classifier == "sticky"


def test_run_sync() -> None:
    model = ScriptedModel([Reply.text("hi")])
    result = Runner(None, graph_for(model), entry="triage").run_sync("hello")
    assert result.output == "hi"


# --------------------------------------------------------------------------- re-routing


class Misrouted:
    """Routes everything to refund first; excluded, the next best is tech."""

    name = "misrouted"

    async def classify(self, text: str) -> Prediction:
        return Prediction.from_scores([("refund", 0.6), ("tech", 0.4)])


def rerouting(request: ModelRequest) -> Reply:
    if "request_reroute" in request.tool_names and request.messages[-1].role == "user":
        return Reply.call("request_reroute", {"reason": "this is a broken device, not money"})
    if request.tool_choice == "none":
        return Reply.text("I can only help with refunds.")
    return Reply.text("Try turning it off and on again.")


def reroute_runner(model: ScriptedModel, **limits: Any) -> Runner:
    router = Router(
        [
            Intent("refund", examples=["refund"], entry="billing"),
            Intent("tech", examples=["broken"], entry="tech"),
        ],
        Misrouted(),
    )
    graph = AgentGraph(
        [Agent(name="billing", model=model, can_reroute=True), Agent(name="tech", model=model)],
        limits=Limits(**limits),
    )
    return Runner(router, graph)


async def test_an_agent_can_ask_to_reroute_away_from_its_intent() -> None:
    model = ScriptedModel(rerouting)
    events: list[Any] = []
    result = await reroute_runner(model).run("my router is broken", on_event=events.append)
    assert result.output == "Try turning it off and on again."
    assert (result.intent, result.path) == ("tech", ("billing", "tech"))
    assert result.decision is not None and result.decision.intent == "tech"
    assert [e.decision.intent for e in events if isinstance(e, RouteDecided)] == ["refund", "tech"]
    assert [(e.agent, e.via) for e in events if isinstance(e, NodeStarted)] == [
        ("billing", "entry"),
        ("tech", "reroute"),
    ]
    reroute_result = result.transcript[2]
    assert isinstance(reroute_result, ToolMessage)
    assert reroute_result.content == "Routing the request again."
    assert model.requests[0].tool_names == ("request_reroute",)  # offered only with can_reroute
    assert "request_reroute" not in model.requests[1].tool_names


async def test_reroutes_are_capped() -> None:
    model = ScriptedModel(rerouting)
    result = await reroute_runner(model, max_reroutes=0).run("my router is broken")
    assert result.path == ("billing",) and "max_reroutes" in result.guards
    assert result.output == "I can only help with refunds."
    refusal = result.transcript[2]
    assert isinstance(refusal, ToolMessage) and refusal.content.startswith("Not transferred")


async def test_a_conversation_carries_history_intent_and_state() -> None:
    model = ScriptedModel(
        [
            Reply.call("transfer_to_billing", {"summary": "first", "order_id": None}),
            Reply.text("Refund started."),
            Reply.text("You're welcome."),
            Fault.server_error(500),
        ]
    )
    sticky = router()
    sticky.sticky_margin = 0.9  # keep the intent unless another leads by more than this
    chat = Runner(sticky, graph_for(model)).conversation()
    first = await chat.send("refund please")
    assert chat.intent == "refund" and chat.state.tickets == ["first"]
    second = await chat.send("thanks, hello")  # sticky: stays on refund
    assert (
        second.intent == "refund" and second.transcript[: len(first.transcript)] == first.transcript
    )
    assert second.state is first.state
    with pytest.raises(ModelAPIError):
        await chat.send("refund again")
    assert [m.role for m in chat.history][-1] == "user"  # the failed run's message is kept
    assert len(chat.results) == 2


async def test_a_refused_transfer_reports_what_the_transcript_says() -> None:
    model = ScriptedModel(bouncing)
    events: list[Any] = []
    result = await Runner(router(), graph_for(model), loop_policy=None).run(
        "refund please", on_event=events.append
    )
    finished = {
        e.outcome.tool_call_id: e.outcome.content
        for e in events
        if type(e).__name__ == "ToolCallFinished"
    }
    for message in result.transcript:
        if isinstance(message, ToolMessage):
            assert finished[message.tool_call_id] == message.content
    assert any(c.startswith("Not transferred") for c in finished.values())
