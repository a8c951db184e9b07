"""Load: 1,000 concurrent runs against one fake server, and no memory growth over many runs.

The application is the one ``benchmarks/graph.py`` and ``benchmarks/load.py`` measure: a
`Router` (a keyword classifier: "refund" or "status") and a 3-node graph in which triage
hands off to billing or support, which call a ``lookup`` tool with the order id of the run's
own message and then answer with the tool's result. Three model calls per run.

* **1,000 concurrent runs** of one `Runner` through `OpenAIChatModel`, one
  ``openai.AsyncOpenAI`` client and one in-process `FakeOpenAIServer` that waits 50 ms
  before each answer. Checked: every result (output, path, intent, usage); every tool call
  got its own run's order id, in the run whose ``deps`` is that order (no cross-talk); the
  server saw exactly three chat requests per run and no errors; and the runs overlapped
  (nearly all of them waited for the model at once, and many requests waited in the server
  at once).
* **No leak**: with `ScriptedModel` (no HTTP: the numbers are intentflow's own), 300
  warm-up runs, 200 more under ``tracemalloc``, then 1,000 measured runs; the memory still
  allocated after them (``gc.collect()`` first) must have grown by less than 200 bytes per
  run (measured: about 5-15). Keeping each run's result (transcript, steps, usage) costs
  about 11 KB per run, 55 times the threshold: with that leak simulated the test fails
  with "11078 bytes kept per run" and the sites holding them. No `GraphResult`,
  `RunResult` or `RunContext` of those runs may stay alive, and no task may be left
  running. Every run has a new order id, so caches keyed by content would show.

**The connection pool.** ``openai`` builds its client with
``httpx2.Limits(max_connections=1000, max_keepalive_connections=100)``. A run has at most one
request in flight, so 1,000 concurrent runs fit in the default pool: no request waits for a
connection, and the server sees one connection per run. But the pool's bookkeeping
(httpcore2's ``_assign_requests_to_connections``, run when any request enters or leaves the
pool) walks every open connection and probes each idle one's socket, so with 1,000 open
connections every request costs milliseconds of CPU. On the 2-core development machine,
1,000 concurrent runs on asyncio took 14.4 s with the default pool and 7.4 s with 100
connections (``benchmarks/load.py``; client CPU 14.4 vs 7.3 ms per run). This test gives
the client a pool of 100 connections (all kept alive), as a service expecting this many
concurrent runs would: the other 900 runs' requests queue in the pool (up to its timeout,
which is the SDK's 600 s by default), which also exercises that queue.
"""

from __future__ import annotations

import gc
import os
import re
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import openai
import pydantic_core
import pytest
import structlog

from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.result import RunResult
from intentflow.agents.runner import GraphResult, Runner
from intentflow.context import RunContext
from intentflow.log import configure_logging
from intentflow.messages import Message
from intentflow.models import ModelRequest, ModelResponse, OpenAIChatModel
from intentflow.router import Intent, Prediction, Router
from intentflow.testing import FakeOpenAIServer, Reply, ScriptedModel

pytestmark = pytest.mark.anyio

CONCURRENT_RUNS = 1_000
LATENCY = 0.05  # seconds the server waits before each answer
POOL = 100  # the client's connections (see the module docstring)
ORDER = re.compile(r"A-\d+")


@pytest.fixture(autouse=True)
def production_logging() -> Iterator[None]:
    """Logging as a service runs it: INFO events rendered as JSON into /dev/null.

    The tests' default (structlog's development console at DEBUG, to captured stdout) would
    cost more CPU than the runs themselves, and a capturing sink would grow with every run.
    """
    before = structlog.get_config()
    with open(os.devnull, "w") as sink:
        configure_logging("json", level="INFO", stream=sink)
        try:
            yield
        finally:
            structlog.configure(**before)


# ---------------------------------------------------------------------------- the application


@dataclass
class Probe:
    """What the application saw: tool calls as (the run's deps, the argument), and peaks."""

    keep_calls: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)
    mismatches: int = 0
    tools_active: int = 0
    tools_peak: int = 0
    models_active: int = 0
    models_peak: int = 0


class Node(Agent[str]):
    """An agent that counts its model calls in flight (through the public hooks)."""

    probe: Probe

    async def before_model(self, ctx: RunContext[Any], request: ModelRequest) -> None:
        self.probe.models_active += 1
        self.probe.models_peak = max(self.probe.models_peak, self.probe.models_active)

    async def after_model(self, ctx: RunContext[Any], response: ModelResponse) -> None:
        self.probe.models_active -= 1


class Keyword:
    """A classifier: messages with "refund" are refunds, the rest are status questions."""

    name = "keyword"

    async def classify(self, text: str) -> Prediction:
        if "refund" in text:
            return Prediction.from_scores([("refund", 0.9), ("status", 0.1)])
        return Prediction.from_scores([("status", 0.9), ("refund", 0.1)])


def build_runner(model: Any, probe: Probe) -> Runner:
    async def lookup(ctx: RunContext[str], order_id: str) -> str:
        """Look an order up."""
        if probe.keep_calls:
            probe.calls.append((ctx.deps, order_id))
        probe.mismatches += ctx.deps != order_id
        probe.tools_active += 1
        probe.tools_peak = max(probe.tools_peak, probe.tools_active)
        try:
            await anyio.lowlevel.checkpoint()  # let other runs' tools start meanwhile
        finally:
            probe.tools_active -= 1
        return f"order {order_id} is settled"

    def node(name: str, **options: Any) -> Node:
        agent = Node(name=name, instructions=f"node:{name}", model=model, **options)
        agent.probe = probe
        return agent

    graph = AgentGraph(
        [
            node("triage", handoffs=["billing", "support"]),
            node("billing", tools=[lookup]),
            node("support", tools=[lookup]),
        ]
    )
    router = Router(
        [
            Intent("refund", examples=["refund"], entry="triage"),
            Intent("status", examples=["where is"], entry="triage"),
        ],
        Keyword(),
    )
    return Runner(router, graph)


def decide(node: str, tools: Sequence[str], user: str, last_role: str, last: str) -> Reply:
    """What the model does, from what a request shows: the node (its instructions), the
    tools, the user's message and the last message."""
    if node == "triage":
        return Reply.call("transfer_to_billing" if "refund" in user else "transfer_to_support", {})
    if last_role == "tool" and "settled" in last:
        return Reply.text(f"{node}: {last.strip(chr(34))}")  # the tool's JSON string, unquoted
    assert "lookup" in tools, tools
    order = ORDER.search(user)
    assert order is not None, user
    return Reply.call("lookup", {"order_id": order.group()})


def server_script(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    node = messages[0]["content"].removeprefix("node:")
    user = next(m["content"] for m in messages if m["role"] == "user")
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    return decide(node, tools, user, messages[-1]["role"], str(messages[-1].get("content")))


def model_script(request: ModelRequest) -> Reply:
    messages: Sequence[Message] = request.messages
    node = str(messages[0].content).removeprefix("node:")
    user = next(str(m.content) for m in messages if m.role == "user")
    last = messages[-1]
    return decide(node, request.tool_names, user, last.role, str(last.content))


def message_for(i: int) -> tuple[str, str, str]:
    """Run ``i``'s message, its order id and the node that must serve it."""
    order = f"A-{i}"
    if i % 2:
        return f"I want a refund for order {order}", order, "billing"
    return f"Where is order {order}?", order, "support"


def check(result: GraphResult[Any], i: int) -> None:
    _, order, node = message_for(i)
    assert result.output == f"{node}: order {order} is settled", (i, result.output)
    assert result.path == ("triage", node), (i, result.path)
    assert result.intent == ("refund" if node == "billing" else "status")
    assert result.stop_reason == "final_answer"
    assert result.usage.requests == 3


# ---------------------------------------------------------------------------- 1,000 concurrent


async def test_a_thousand_concurrent_runs_against_the_fake_server() -> None:
    in_server = 0
    peak_in_server = 0

    async def script(body: dict[str, Any]) -> Reply:
        # The server's latency, counted: how many requests wait in the server at once.
        nonlocal in_server, peak_in_server
        in_server += 1
        peak_in_server = max(peak_in_server, in_server)
        try:
            await anyio.sleep(LATENCY)
        finally:
            in_server -= 1
        return server_script(body)

    probe = Probe()
    results: dict[int, GraphResult[Any]] = {}
    async with FakeOpenAIServer(script) as server:
        limits = httpx2.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        client = openai.AsyncOpenAI(
            base_url=server.base_url,
            api_key="test",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        )
        try:
            runner = build_runner(OpenAIChatModel("fake-model", client=client), probe)

            async def one(i: int) -> None:
                message, order, _ = message_for(i)
                results[i] = await runner.run(message, deps=order)

            start = time.perf_counter()
            with anyio.fail_after(180):
                async with anyio.create_task_group() as tg:
                    for i in range(CONCURRENT_RUNS):
                        tg.start_soon(one, i)
            elapsed = time.perf_counter() - start
        finally:
            await client.close()
        assert server.errors == []
        assert len(server.chat_requests) == 3 * CONCURRENT_RUNS

    print(
        f"{CONCURRENT_RUNS} concurrent runs in {elapsed:.2f} s; at once: "
        f"{probe.models_peak} model calls, {peak_in_server} requests in the server, "
        f"{probe.tools_peak} tool calls"
    )
    assert sorted(results) == list(range(CONCURRENT_RUNS))
    for i, result in results.items():
        check(result, i)
    assert len({r.run_id for r in results.values()}) == CONCURRENT_RUNS
    # Each tool call got its own run's order id, in the run whose deps is that order.
    assert probe.mismatches == 0
    assert sorted(probe.calls) == sorted((f"A-{i}", f"A-{i}") for i in range(CONCURRENT_RUNS))
    # The runs overlapped: nearly all waited for the model at the same time (their requests
    # queued in the pool or waited in the server), and many requests were in the server at
    # once (with 50 ms latency, even 100 requests/s keep about 5 there on average).
    assert probe.models_peak >= CONCURRENT_RUNS * 9 // 10
    assert peak_in_server >= 10
    assert probe.models_active == probe.tools_active == 0


# ---------------------------------------------------------------------------- no leak

WARM_UP = 300  # runs before tracing starts
SETTLE = 200  # traced runs before the baseline: one-off allocations of a traced run settle
MEASURED = 1_000
MAX_BYTES_PER_RUN = 200
KEPT_TYPES = (GraphResult, RunResult, RunContext)


def alive(types: tuple[type, ...]) -> int:
    return sum(isinstance(o, types) for o in gc.get_objects())


def fill_json_string_cache() -> None:
    """Fill pydantic_core's JSON string cache, so that its filling is not counted.

    ``pydantic_core.from_json`` (which parses tool arguments) keeps the strings it parsed in
    a process-wide cache of 16,384 entries; every run's new order id adds one (about 55
    bytes) until the cache is full (about 900 KB), after which new strings replace old ones.
    Fill it while tracing: tracemalloc does not see an untraced string go when a traced one
    replaces it.
    """
    for i in range(20_000):
        pydantic_core.from_json(f'["fill-{i}"]')


async def test_many_runs_leave_no_memory_or_objects_behind() -> None:
    probe = Probe(keep_calls=False)
    model = ScriptedModel(model_script)
    runner = build_runner(model, probe)
    done = 0

    async def runs(count: int) -> None:
        nonlocal done
        for i in range(done, done + count):  # every run has a new order id
            message, order, _ = message_for(i)
            result = await runner.run(message, deps=order)
            check(result, i)
            model.requests.clear()  # the double records every request; the app does not
        done += count

    await runs(WARM_UP)
    gc.collect()
    tasks_before = len(anyio.get_running_tasks())
    objects_before = alive(KEPT_TYPES)
    tracemalloc.start(1)  # 1 frame: about 5x slower runs; 10 frames would be 30x
    try:
        fill_json_string_cache()  # traced: a string it evicts later is then seen to go
        await runs(SETTLE)
        gc.collect()
        before = tracemalloc.take_snapshot()
        before_bytes = tracemalloc.get_traced_memory()[0]
        await runs(MEASURED)
        gc.collect()
        after_bytes = tracemalloc.get_traced_memory()[0]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    per_run = (after_bytes - before_bytes) / MEASURED
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    top = "\n".join(f"  {s}" for s in growth[:8])
    print(f"{MEASURED} runs kept {per_run:.1f} bytes/run; largest growth:\n{top}")
    assert per_run < MAX_BYTES_PER_RUN, f"{per_run:.0f} bytes kept per run; largest:\n{top}"
    assert probe.mismatches == 0
    # Nothing of those runs stays alive: no results, no contexts, no tasks.
    assert alive(KEPT_TYPES) - objects_before < 10
    assert len(anyio.get_running_tasks()) == tasks_before
