"""The support-desk example (examples/support/): routing, and whole runs through the fake
OpenAI server and the real ``openai`` client, with the demo's stand-in playing the model."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from examples.support import demo
from examples.support.app import (
    CaseBrief,
    Conversation,
    SupportState,
    build_graph,
    build_intents,
    build_router,
    build_runner,
)
from examples.support.demo import CONVERSATION, stand_in_model
from examples.support.tools import SupportBackend, demo_backend
from intentflow import AssistantMessage, OpenAIChatModel, ToolMessage
from intentflow.agents.events import GraphEvent, GuardNotice, HandoffTaken
from intentflow.agents.runner import GraphResult
from intentflow.router import Router
from intentflow.testing import FakeOpenAIServer, ScriptedModel

ROOT = Path(__file__).resolve().parents[2]

ORDER_STATUS = "Where is my order ORD-1001?"
REFUND = "I was charged twice for ORD-1002 and would like a refund. My email is maya@example.com."
TECH = "The app keeps crashing when I open my order history."
ACCOUNT = "Please change my email to maya.lee@example.org, the current one is maya@example.com."
SMALL_TALK = "Hi there! Hope you're having a good day."
MIXED = (
    "The app showed a payment error for ORD-1003 but I was charged. My email is maya@example.com"
)
OUT_OF_SCOPE = "Can you recommend a good pizza place in town?"


@functools.cache
def router() -> Router:
    """One fitted router for every test (fitting takes ~0.1 s; routing keeps no state)."""
    return build_router()


def forced(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


def calls_of(result: GraphResult[Any]) -> list[str]:
    """The tool calls the run made, in order (transfers included)."""
    return [
        call.name
        for m in result.new_messages
        if isinstance(m, AssistantMessage)
        for call in m.tool_calls
    ]


@dataclass
class Desk:
    """The desk on a fake server: a conversation, its backend, what went over the wire."""

    server: FakeOpenAIServer
    conversation: Conversation
    events: list[GraphEvent] = field(default_factory=list)

    @property
    def backend(self) -> SupportBackend:
        return self.conversation.backend

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.server.chat_requests

    async def send(self, text: str) -> GraphResult[Any]:
        return await self.conversation.send(text, on_event=self.events.append)


@pytest.fixture
async def desk() -> AsyncIterator[Desk]:
    async with FakeOpenAIServer(stand_in_model) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        try:
            model = OpenAIChatModel("gpt-4.1-mini", client)
            yield Desk(server, Conversation(build_runner(model, router()), demo_backend()))
            assert server.errors == []
        finally:
            await client.close()


# ---------------------------------------------------------------------------- routing


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("message", "intent", "classifier"),
    [
        (ORDER_STATUS, "order_status", "lexical"),
        ("Has my parcel been delivered yet?", "order_status", "lexical"),
        (REFUND, "billing", "rules"),  # "charged twice" overrides the classifier
        ("Could you send me a copy of my invoice?", "billing", "lexical"),
        (TECH, "tech_support", "lexical"),
        ("The website gives me an error when I log in", "tech_support", "lexical"),
        (ACCOUNT, "account", "lexical"),
        ("I need to update my shipping address", "account", "lexical"),
        (SMALL_TALK, "small_talk", "lexical"),
        ("Thanks a lot, bye!", "small_talk", "lexical"),
        (OUT_OF_SCOPE, "out_of_scope", "lexical"),
        ("Who will win the election?", "out_of_scope", "lexical"),
    ],
)
async def test_each_intent_is_routed(message: str, intent: str, classifier: str) -> None:
    decision = await router().route(message)
    assert (decision.intent, decision.classifier) == (intent, classifier), decision.reason
    # Out of scope is an abstention: no intent is confident, the fallback takes it.
    assert decision.abstained == (intent == "out_of_scope")


@pytest.mark.anyio
@pytest.mark.parametrize("message", ["Thanks for the refund!", "good morning, is there an error?"])
async def test_business_words_are_never_small_talk(message: str) -> None:
    classifier = router().stages[0].classifier
    assert (await classifier.classify(message)).label == "small_talk"  # alone, it would be
    decision = await router().route(message)
    assert decision.intent != "small_talk" and decision.proposed != "small_talk"
    # (The veto drops small talk without renormalising the other scores, so today the best
    # remaining intent is below the threshold and these reach the fallback.)


# ---------------------------------------------------------------------------- the graph


def test_the_graph_validates_and_its_mermaid_names_every_intent() -> None:
    intents = build_intents()
    graph = build_graph(ScriptedModel([]))
    graph.validate(entries=[i.entry for i in intents if i.entry is not None])
    build_runner(ScriptedModel([]), router())  # the router and the graph validate together
    assert len(intents) == 6
    mermaid = graph.to_mermaid(intents)
    for intent in intents:
        assert f"intent: {intent.name}" in mermaid
    assert "%% cycle billing, tech_support: at most 2 passes" in mermaid
    assert "n_triage -->|handoff| n_billing" in mermaid
    assert "n_tech_support -->|handoff| n_billing" in mermaid


# ---------------------------------------------------------------------------- whole runs


@pytest.mark.anyio
async def test_order_status_looks_the_order_up_first_then_tracks_it(desk: Desk) -> None:
    result = await desk.send(ORDER_STATUS)

    assert (result.intent, result.path, result.stop_reason) == (
        "order_status",
        ("orders",),
        "final_answer",
    )
    assert calls_of(result) == ["lookup_order", "track_shipment"]
    first, second, third = desk.bodies
    assert first["tool_choice"] == forced("lookup_order")
    assert "tool_choice" not in second and "tool_choice" not in third  # then auto
    # The intent narrows the orders agent's tools: cancel_order is never offered.
    assert tool_names(first) == tool_names(second) == ["lookup_order", "track_shipment"]
    assert "DHL, tracking number JD014600003826" in result.output


@pytest.mark.anyio
async def test_a_refund_goes_from_triage_to_billing_with_a_typed_brief(desk: Desk) -> None:
    result = await desk.send(REFUND)

    assert (result.intent, result.path, result.agent) == (
        "billing",
        ("triage", "billing"),
        "billing",
    )
    assert result.decision is not None and result.decision.reason == "rule money-back-is-billing"
    assert calls_of(result) == [
        "lookup_customer",
        "transfer_to_billing",
        "list_charges",
        "issue_refund",
    ]
    assert desk.bodies[0]["tool_choice"] == forced("lookup_customer")
    # The transfer's payload is validated into the CaseBrief model and lands in the state.
    (handoff,) = [e for e in desk.events if isinstance(e, HandoffTaken)]
    brief = CaseBrief(
        customer_id="C-100",
        summary="Customer reports: I was charged twice for ORD-1002 and would like a refund.",
        order_id="ORD-1002",
    )
    assert (handoff.agent, handoff.target, handoff.payload) == ("triage", "billing", brief)
    state = result.state
    assert isinstance(state, SupportState) and state is desk.conversation.state
    assert (state.case, state.customer_id, state.refunds) == (brief, "C-100", ["RF-0001"])
    # ... and from the state into billing's instructions.
    billing_prompt = desk.bodies[2]["messages"][0]["content"]
    assert "Case brief: Customer reports: I was charged twice" in billing_prompt
    assert desk.backend.charges["CH-5003"].refunded == Decimal("59.00")
    assert desk.backend.charges["CH-5002"].refunded == 0
    assert "Refund RF-0001" in result.output


@pytest.mark.anyio
async def test_the_cycle_cap_stops_billing_and_tech_support_gracefully(desk: Desk) -> None:
    result = await desk.send(MIXED)

    # billing -> tech_support -> billing are the cycle's two passes; the third is refused.
    assert result.path == ("triage", "billing", "tech_support", "billing")
    assert calls_of(result) == [
        "lookup_customer",
        "transfer_to_billing",
        "list_charges",
        "transfer_to_tech_support",
        "check_service_status",
        "transfer_to_billing",
        "transfer_to_tech_support",  # refused
    ]
    refused = [m for m in result.new_messages if isinstance(m, ToolMessage) and "Not" in m.content]
    assert [m.content for m in refused] == [
        "Not transferred: the cycle billing <-> tech_support was already passed 2 times, its "
        "cap. Answer the user yourself now, without transferring."
    ]
    notices = [(e.agent, e.guard) for e in desk.events if isinstance(e, GuardNotice)]
    assert notices == [("billing", "loop"), ("billing", "cycle_cap")]
    assert result.guards == ("loop", "cycle_cap")
    # Billing then answers without tools, the tools array unchanged (the prompt cache holds).
    last = desk.bodies[-1]
    assert last["tool_choice"] == "none"
    assert tool_names(last) == ["list_charges", "issue_refund", "transfer_to_tech_support"]
    assert (result.agent, result.stop_reason) == ("billing", "final_answer")
    assert result.output.startswith("I checked your charges: ORD-1003 was charged once")
    assert "known issue" in result.output  # from tech support's status check
    assert desk.backend.refunds == []


@pytest.mark.anyio
async def test_small_talk_is_answered_with_tool_choice_none(desk: Desk) -> None:
    result = await desk.send(SMALL_TALK)

    assert (result.intent, result.path) == ("small_talk", ("triage",))
    (body,) = desk.bodies
    assert body["tool_choice"] == "none"
    assert tool_names(body) == [
        "lookup_customer",
        "transfer_to_billing",
        "transfer_to_tech_support",
        "transfer_to_accounts",
    ]
    assert body["messages"][0]["content"].startswith("You are the front desk")
    assert "small talk" in body["messages"][0]["content"]
    assert calls_of(result) == []
    assert result.output.startswith("Hi! I'm doing well")


@pytest.mark.anyio
async def test_out_of_scope_goes_to_the_polite_fallback(desk: Desk) -> None:
    result = await desk.send(OUT_OF_SCOPE)

    assert result.decision is not None and result.decision.abstained
    assert (result.intent, result.path, result.agent) == (
        "out_of_scope",
        ("scope_guard",),
        "scope_guard",
    )
    (body,) = desk.bodies
    assert "tools" not in body and "tool_choice" not in body
    assert "can only help with orders" in body["messages"][0]["content"]
    assert "I can help with your orders and deliveries" in result.output


@pytest.mark.anyio
async def test_the_demo_conversation_end_to_end(desk: Desk) -> None:
    routes = []
    for message in CONVERSATION:
        result = await desk.send(message)
        routes.append((result.intent, result.path))
    assert routes == [
        ("small_talk", ("triage",)),
        ("order_status", ("orders",)),
        ("billing", ("triage", "billing")),
        ("tech_support", ("tech_support",)),
        ("account", ("accounts",)),
        ("billing", ("triage", "billing", "tech_support", "billing")),
        ("out_of_scope", ("scope_guard",)),
    ]
    assert desk.backend.customers["C-100"].email == "maya.lee@example.org"
    # One state for the whole conversation: the customer is known, the notes accumulate.
    state = desk.conversation.state
    assert state.customer_id == "C-100" and state.refunds == ["RF-0001"]
    assert "changed the email of C-100" in state.notes


def test_the_demo_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "support" / "demo.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "the loopback fake OpenAI server plays the model" in out
    assert "route    billing (rule money-back-is-billing)" in out
    assert "orders model call 1: tool_choice forced lookup_order" in out
    assert "handoff  triage -> billing with CaseBrief(customer_id='C-100'" in out
    assert "guard    cycle_cap: transfer refused" in out
    assert "route    out_of_scope" in out
    assert "7 messages" in out


@pytest.mark.anyio
async def test_with_a_key_the_demo_talks_to_the_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The "real API" path, pointed at the fake server as at any OpenAI-compatible endpoint.
    async with FakeOpenAIServer(stand_in_model) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("INTENTFLOW_MODEL", "my-model")
        await demo.main()
        assert server.errors == []
    out = capsys.readouterr().out
    assert "fake OpenAI server" not in out
    assert len(server.chat_requests) == 24
    assert {body["model"] for body in server.chat_requests} == {"my-model"}
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer sk-test"}
