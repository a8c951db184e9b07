"""OpenTelemetry tracing: the spans of runs, their GenAI attributes, errors and privacy.

Every test exports to an in-memory exporter through a provider of its own (never the global
one), so tests running side by side cannot see each other's spans.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

pytest.importorskip(
    "opentelemetry.sdk", reason="the telemetry tests need opentelemetry-sdk (a dev dependency)"
)

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from intentflow import Toolset
from intentflow.agents import Agent, AgentGraph, Handoff, NodeStarted, Runner
from intentflow.errors import ConfigurationError, ModelAPIError
from intentflow.messages import Usage
from intentflow.router import Intent, Prediction, Router
from intentflow.telemetry import OpenTelemetryTracer
from intentflow.testing import Fault, Reply, ScriptedModel

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- set-up


class Keyword:
    """Routes on a keyword, so that routing is not what these tests test."""

    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        if "refund" in text:
            return Prediction.from_scores([("refund", 0.9), ("order_status", 0.1)])
        return Prediction.from_scores([("order_status", 0.8), ("refund", 0.2)])


class Ticket(BaseModel):
    summary: str


def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up by its id."""
    return {"order_id": order_id, "status": "delivered"}


def support_desk(support: ScriptedModel, billing: ScriptedModel | None = None) -> Runner:
    graph = AgentGraph(
        [
            Agent(
                name="support",
                model=support,
                tools=[lookup_order],
                handoffs=[Handoff("billing", payload=Ticket)],
            ),
            Agent(name="billing", model=billing or support),
        ]
    )
    router = Router(
        [
            Intent("order_status", examples=["where is my order"], entry="support"),
            Intent("refund", examples=["money back"], entry="billing"),
        ],
        Keyword(),
    )
    return Runner(router, graph)


def order_script() -> list[Reply]:
    return [
        Reply.call("lookup_order", {"order_id": "A-1"}, id="call_lookup"),
        Reply.call("transfer_to_billing", {"summary": "A-1 arrived broken"}, id="call_transfer"),
        Reply.text("I have refunded order A-1."),
    ]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def tracer(provider: TracerProvider) -> OpenTelemetryTracer:
    return OpenTelemetryTracer(provider)


def spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def one(found: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matching = [s for s in found if s.name == name]
    assert len(matching) == 1, [s.name for s in found]
    return matching[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def children(found: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in found if s.parent is not None and s.parent.span_id == parent.context.span_id]


# --------------------------------------------------------------------------- the span tree


async def test_a_routed_run_with_tools_and_a_handoff_is_one_tree(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner = support_desk(ScriptedModel(order_script(), name="gpt-test"))
    with tracer.trace_run(runner, name="support-desk") as run:
        result = await runner.run("Where is my order A-1?", on_event=run.on_event)
        run.record_result(result)

    found = spans(exporter)
    assert [s.name for s in found] == [
        "chat gpt-test",
        "execute_tool lookup_order",
        "chat gpt-test",
        "execute_tool transfer_to_billing",
        "chat gpt-test",
        "invoke_agent support-desk",
    ]
    root = one(found, "invoke_agent support-desk")
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert children(found, root) == found[:-1]
    assert all(s.context.trace_id == root.context.trace_id for s in found)
    assert all(s.end_time is not None for s in found)

    assert attrs(root) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.agent.name": "support-desk",
        "intentflow.intent": "order_status",
        "intentflow.route.classifier": "keyword",
        "intentflow.route.confidence": 0.8,
        "intentflow.route.margin": pytest.approx(0.6),
        "intentflow.route.abstained": False,
        "intentflow.path": ("support", "billing"),
        "intentflow.agent": "billing",
        "intentflow.run_id": result.run_id,
        "intentflow.stop_reason": "final_answer",
        "intentflow.usage.requests": 3,
        "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": result.usage.completion_tokens,
    }
    assert root.status.status_code is StatusCode.UNSET
    assert [(e.name, dict(e.attributes or {})) for e in root.events] == [
        (
            "intentflow.route",
            {
                "intentflow.intent": "order_status",
                "intentflow.route.classifier": "keyword",
                "intentflow.route.confidence": 0.8,
                "intentflow.route.margin": pytest.approx(0.6),
                "intentflow.route.abstained": False,
            },
        ),
        ("intentflow.node_started", {"intentflow.node": "support", "intentflow.node.via": "entry"}),
        (
            "intentflow.handoff",
            {"intentflow.handoff.source": "support", "intentflow.handoff.target": "billing"},
        ),
        (
            "intentflow.node_started",
            {
                "intentflow.node": "billing",
                "intentflow.node.via": "handoff",
                "intentflow.node.source": "support",
            },
        ),
    ]

    first_chat, lookup, _, transfer, last_chat = found[:-1]
    assert first_chat.kind is SpanKind.CLIENT
    chat = attrs(first_chat)
    assert {k: chat[k] for k in chat if not k.startswith("gen_ai.usage")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.agent.name": "support",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.response.model": "gpt-test",
        "gen_ai.response.id": chat["gen_ai.response.id"],
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.output.type": "text",
        "intentflow.turn": 1,
        "intentflow.request.tool_choice": "auto",
        "intentflow.request.tools": ("lookup_order", "transfer_to_billing"),
        "intentflow.response.tool_calls": 1,
    }
    assert attrs(last_chat)["gen_ai.agent.name"] == "billing"
    assert attrs(last_chat)["gen_ai.response.finish_reasons"] == ("stop",)

    assert lookup.kind is SpanKind.INTERNAL
    assert attrs(lookup) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.agent.name": "support",
        "gen_ai.tool.name": "lookup_order",
        "gen_ai.tool.call.id": "call_lookup",
        "gen_ai.tool.type": "function",
        "intentflow.turn": 1,
        "intentflow.tool.outcome": "success",
        "intentflow.tool.attempts": 1,
    }
    assert lookup.status.status_code is StatusCode.UNSET
    assert attrs(transfer)["gen_ai.tool.call.id"] == "call_transfer"
    assert attrs(transfer)["intentflow.turn"] == 2


async def test_the_events_of_a_stream_make_the_same_spans(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner = support_desk(ScriptedModel(order_script(), name="gpt-test"))
    with tracer.trace_run(runner, name="desk") as run:
        async with runner.stream("Where is my order A-1?") as events:
            async for event in events:
                run.on_event(event)
        assert events.result is not None
        run.record_result(events.result)

    found = spans(exporter)
    root = one(found, "invoke_agent desk")
    assert len(children(found, root)) == 5
    assert attrs(root)["intentflow.path"] == ("support", "billing")
    assert attrs(root)["intentflow.stop_reason"] == "final_answer"


async def test_token_usage_is_recorded_per_model_call_and_summed_on_the_run(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    model = ScriptedModel(
        [
            Reply.call(
                "lookup_order",
                {"order_id": "A-1"},
                usage=Usage(requests=1, prompt_tokens=120, completion_tokens=15, cached_tokens=64),
            ),
            Reply.text(
                "Delivered.", usage=Usage(requests=1, prompt_tokens=150, completion_tokens=7)
            ),
        ]
    )
    runner = support_desk(model)
    with tracer.trace_run(runner) as run:
        await runner.run("Where is my order A-1?", on_event=run.on_event)

    found = spans(exporter)
    first, second = (attrs(s) for s in found if s.name.startswith("chat"))
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (120, 15)
    assert first["gen_ai.usage.cache_read.input_tokens"] == 64
    assert (second["gen_ai.usage.input_tokens"], second["gen_ai.usage.output_tokens"]) == (150, 7)
    assert "gen_ai.usage.cache_read.input_tokens" not in second
    root = attrs(one(found, "invoke_agent"))
    assert (root["gen_ai.usage.input_tokens"], root["gen_ai.usage.output_tokens"]) == (270, 22)
    assert root["gen_ai.usage.cache_read.input_tokens"] == 64
    assert root["intentflow.usage.requests"] == 2


async def test_request_settings_follow_the_conventions_and_others_are_left_out(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    settings = {"temperature": 0.2, "max_completion_tokens": 256, "stop": ["END"], "user": "u-1"}
    agent = Agent(name="solo", model=ScriptedModel([Reply.text("hi")]), model_settings=settings)
    with tracer.trace_run(agent) as run:
        await agent.run("hello", on_event=run.on_event)

    found = spans(exporter)
    root = one(found, "invoke_agent solo")
    assert attrs(root)["gen_ai.agent.name"] == "solo"
    chat = attrs(one(found, "chat scripted-model"))
    assert chat["gen_ai.request.temperature"] == 0.2
    assert chat["gen_ai.request.max_tokens"] == 256
    assert chat["gen_ai.request.stop_sequences"] == ("END",)
    assert "u-1" not in json.dumps(chat)


async def test_a_streaming_agent_reports_its_time_to_first_chunk(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    agent = Agent(name="solo", model=ScriptedModel([Reply.text("Hello there.")]), stream=True)
    with tracer.trace_run(agent) as run:
        await agent.run("hello", on_event=run.on_event)

    chat = attrs(one(spans(exporter), "chat scripted-model"))
    assert chat["gen_ai.request.stream"] is True
    assert chat["gen_ai.response.time_to_first_chunk"] >= 0


async def test_without_a_target_the_chat_span_is_named_after_the_answering_model(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner = support_desk(ScriptedModel([Reply.text("Delivered.")], name="gpt-answer"))
    with tracer.trace_run() as run:
        await runner.run("Where is my order?", on_event=run.on_event)

    chat = one(spans(exporter), "chat gpt-answer")
    assert "gen_ai.request.model" not in attrs(chat)
    assert attrs(chat)["gen_ai.response.model"] == "gpt-answer"


# --------------------------------------------------------------------------- failures


async def test_a_failing_tool_has_an_error_status_and_the_run_goes_on(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        raise RuntimeError(f"database down while reading {order_id}")

    model = ScriptedModel(
        [Reply.call("lookup_order", {"order_id": "A-1"}), Reply.text("Sorry, try later.")]
    )
    graph = AgentGraph([Agent(name="support", model=model, tools=[lookup_order])])
    runner = Runner(None, graph, entry="support")
    with tracer.trace_run(runner) as run:
        await runner.run("Where is A-1?", on_event=run.on_event)

    found = spans(exporter)
    tool = one(found, "execute_tool lookup_order")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description is None  # the message may quote the arguments
    assert attrs(tool)["error.type"] == "tool_error"
    assert attrs(tool)["intentflow.tool.outcome"] == "tool_error"
    assert one(found, "invoke_agent").status.status_code is StatusCode.UNSET


async def test_a_run_that_raises_ends_every_span_with_an_error(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner = support_desk(ScriptedModel([Fault.server_error(503)]))
    with pytest.raises(ModelAPIError), tracer.trace_run(runner) as run:
        await runner.run("Where is my order?", on_event=run.on_event)

    found = spans(exporter)
    assert [s.name for s in found] == ["chat scripted-model", "invoke_agent"]
    chat, root = found
    for span in found:
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "intentflow.errors.ModelAPIError"
        assert span.status.description is None
    assert attrs(root)["intentflow.path"] == ("support",)
    assert attrs(root)["intentflow.error.agent"] == "support"
    assert not root.events or all(e.name != "exception" for e in root.events)
    assert "gen_ai.response.model" not in attrs(chat)


async def test_finish_records_an_error_without_a_with_block(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner = support_desk(ScriptedModel([Fault.server_error(503)]))
    run = tracer.trace_run(runner)
    try:
        await runner.run("Where is my order?", on_event=run.on_event)
    except ModelAPIError as exc:
        run.finish(exc)
    else:
        run.finish()
    run.finish()  # once only
    run.on_event(NodeStarted("billing", "transition", "support"))  # too late: ignored

    root = one(spans(exporter), "invoke_agent")
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)["intentflow.path"] == ("support",)
    assert len(spans(exporter)) == 2


async def test_a_cancelled_run_ends_its_spans(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    started = anyio.Event()

    async def lookup_order(order_id: str) -> str:
        """Look up slowly."""
        started.set()
        await anyio.sleep_forever()
        return "never"

    model = ScriptedModel([Reply.call("lookup_order", {"order_id": "1"})])
    graph = AgentGraph([Agent(name="support", model=model, tools=[lookup_order])])
    runner = Runner(None, graph, entry="support")

    async def traced() -> None:
        with tracer.trace_run(runner) as run:
            await runner.run("go", on_event=run.on_event)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(traced)
            await started.wait()
            tg.cancel_scope.cancel()

    found = spans(exporter)
    assert [s.name for s in found] == [
        "chat scripted-model",
        "execute_tool lookup_order",
        "invoke_agent",
    ]
    tool, root = found[1:]
    assert attrs(tool)["error.type"] == "cancelled"
    assert tool.status.status_code is StatusCode.ERROR
    assert attrs(root)["error.type"] == "cancelled"
    assert root.status.status_code is StatusCode.ERROR


async def test_an_unfinished_model_call_is_ended_when_the_run_is_cancelled(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    model = ScriptedModel([Reply.text("late", delay=60)])
    runner = support_desk(model)
    with anyio.move_on_after(0.05), tracer.trace_run(runner) as run:
        await runner.run("Where is my order?", on_event=run.on_event)

    chat = one(spans(exporter), "chat scripted-model")
    assert attrs(chat)["error.type"] == "cancelled"
    assert chat.end_time is not None


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_runs_do_not_mix_their_spans(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    def runner_for(tag: str) -> Runner:
        # Delays make the two runs' events interleave.
        model = ScriptedModel(
            [
                Reply.call("lookup_order", {"order_id": tag}, id=f"call_{tag}", delay=0.01),
                Reply.text(f"done {tag}", delay=0.01),
            ],
            name=f"model-{tag}",
        )
        graph = AgentGraph([Agent(name=f"agent-{tag}", model=model, tools=[lookup_order])])
        return Runner(None, graph, entry=f"agent-{tag}")

    async def traced(tag: str) -> None:
        runner = runner_for(tag)
        with tracer.trace_run(runner, name=tag) as run:
            run.record_result(await runner.run("go", on_event=run.on_event))

    async with anyio.create_task_group() as tg:
        for tag in ("a", "b", "c"):
            tg.start_soon(traced, tag)

    found = spans(exporter)
    assert len(found) == 12
    for tag in ("a", "b", "c"):
        root = one(found, f"invoke_agent {tag}")
        mine = children(found, root)
        assert [s.name for s in mine] == [
            f"chat model-{tag}",
            "execute_tool lookup_order",
            f"chat model-{tag}",
        ]
        assert {attrs(s)["gen_ai.agent.name"] for s in mine} == {f"agent-{tag}"}
        assert attrs(mine[1])["gen_ai.tool.call.id"] == f"call_{tag}"
        assert attrs(root)["intentflow.path"] == (f"agent-{tag}",)
        assert attrs(root)["intentflow.usage.requests"] == 2
        assert {s.context.trace_id for s in mine} == {root.context.trace_id}
    assert len({s.context.trace_id for s in found}) == 3


async def test_the_run_span_is_current_inside_the_block(
    tracer: OpenTelemetryTracer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    outer_tracer = provider.get_tracer("app")
    with outer_tracer.start_as_current_span("request") as request:
        with tracer.trace_run(name="x") as run:
            assert trace.get_current_span() is run.span
            with outer_tracer.start_as_current_span("inner"):
                pass
        assert trace.get_current_span() is request

    found = spans(exporter)
    root = one(found, "invoke_agent x")
    assert children(found, root) == [one(found, "inner")]
    assert root.parent is not None and root.parent.span_id == request.get_span_context().span_id


# --------------------------------------------------------------------------- privacy


SECRET = "sk-live-0123456789abcdef"
CARD = "4111111111111111"


def checkout() -> tuple[Runner, ScriptedModel]:
    payments = Toolset("payments")

    @payments.tool(sensitive=["card_number"])
    def pay(card_number: str, amount: int) -> str:
        """Charge a card."""
        return "paid"

    model = ScriptedModel(
        [
            Reply.call("pay", {"card_number": CARD, "amount": 5}),
            Reply.text(f"Paid. Your receipt code is R-77. (key {SECRET})"),
        ]
    )
    graph = AgentGraph([Agent(name="checkout", model=model, tools=payments)])
    return Runner(None, graph, entry="checkout"), model


def everything(found: Sequence[ReadableSpan]) -> str:
    """Every name, attribute and event of the spans, as one text to search."""
    return json.dumps(
        [[s.name, attrs(s), [(e.name, dict(e.attributes or {})) for e in s.events]] for s in found],
        default=str,
    )


async def test_no_content_is_recorded_by_default(
    tracer: OpenTelemetryTracer, exporter: InMemorySpanExporter
) -> None:
    runner, _ = checkout()
    message = f"Pay 5 euros with my card {CARD}, my name is Alice."
    with tracer.trace_run(runner) as run:
        await runner.run(message, on_event=run.on_event)

    text = everything(spans(exporter))
    for private in (CARD, "Alice", "R-77", SECRET, '"amount"', "paid"):
        assert private not in text
    assert "gen_ai.input.messages" not in text and "gen_ai.tool.call.arguments" not in text


async def test_recorded_content_is_redacted_for_sensitive_arguments_and_secrets(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = OpenTelemetryTracer(provider, record_content=True)
    runner, _ = checkout()
    message = "Pay 5 euros with my saved card, my name is Alice."
    with tracer.trace_run(runner) as run:
        await runner.run(message, on_event=run.on_event)

    found = spans(exporter)
    text = everything(found)
    assert CARD not in text and SECRET not in text
    assert "Alice" in text and "R-77" in text

    tool = attrs(one(found, "execute_tool pay"))
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {
        "card_number": "<redacted>",
        "amount": 5,
    }
    assert tool["gen_ai.tool.call.result"] == "paid"

    first, second = (attrs(s) for s in found if s.name.startswith("chat"))
    assert json.loads(first["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "pay",
                    "arguments": {"card_number": "<redacted>", "amount": 5},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]
    sent = json.loads(second["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[0]["parts"] == [{"type": "text", "content": message}]
    assert sent[1]["parts"][0]["arguments"] == {"card_number": "<redacted>", "amount": 5}
    assert sent[2]["parts"] == [{"type": "tool_call_response", "id": "call_1", "response": "paid"}]
    reply = json.loads(second["gen_ai.output.messages"])[0]["parts"][0]["content"]
    assert reply == "Paid. Your receipt code is R-77. (key [redacted])"


async def test_error_messages_are_recorded_only_with_content(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = OpenTelemetryTracer(provider, record_content=True)
    runner = support_desk(ScriptedModel([Fault.server_error(503, message="overloaded")]))
    with pytest.raises(ModelAPIError), tracer.trace_run(runner) as run:
        await runner.run("Where is my order?", on_event=run.on_event)

    root = one(spans(exporter), "invoke_agent")
    assert root.status.description is not None and "overloaded" in root.status.description
    assert [e.name for e in root.events][-1] == "exception"


# --------------------------------------------------------------------------- without the extra


def test_without_opentelemetry_the_module_imports_and_the_tracer_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    monkeypatch.delitem(sys.modules, "intentflow.telemetry")
    fresh = importlib.import_module("intentflow.telemetry")
    with pytest.raises(ConfigurationError, match=r"pip install 'intentflow\[otel\]'"):
        fresh.OpenTelemetryTracer()
