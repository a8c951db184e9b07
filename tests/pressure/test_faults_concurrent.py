"""Many concurrent runs against one fake server that injects faults: retries never run a tool twice.

Each test runs dozens of runs at once (an anyio task group; they start a few milliseconds
apart and overlap) through one `OpenAIChatModel`, one ``openai.AsyncOpenAI`` client and one
`FakeOpenAIServer` whose script is a function of the request body. The function plays a
multi-turn model (parallel tool calls, then more calls, then a final answer that quotes every
tool result it was sent) and, before answering, draws a fault from a `random.Random` seeded
with the request body (its canonical JSON, with the server's tool-call ids replaced by their
order of appearance so the key does not depend on how the runs interleave) and how many times
that exact body was seen before. The SDK's retry of a request therefore draws again: some
requests recover after one or two faults, some exhaust ``max_retries``.

Faults drawn: 429 with a tiny ``Retry-After``, 500/502/503, a dropped connection, a cut answer
(an SSE stream cut in the middle of the first tool call's arguments, which the SDK cannot
retry, or half a JSON body, which it retries), and a reply slower than the client's timeout.
One test runs a single agent (JSON and SSE); one runs a `Runner` graph whose streaming triage
agent hands off (with a payload) to a non-streaming billing agent.

Checked, for every run: it returned or raised a typed `RunError` (anything else fails the
test) and the error is the one the last try of its failing request means; every model call
was retried with the identical body, at most ``max_retries`` times, and the run went on with
the last try's answer; its transcript is complete (the user's message, every tool call
answered once in the model's order, nothing of a failed request) and its usage counts the
answered calls; a successful run's output quotes every tool result; the tools that ran (and
the transfers taken) are exactly the calls its transcript answers. Across all runs no
``tool_call_id`` executed twice, the executor's log agrees, the server saw no unexpected
request, every fault kind was served, and runs both recovered and failed.

Determinism: the faults are a function of the seed and the requests, so on an idle machine
every run ends the same way on every backend. On a busy one the client's 0.5 s timeout can
expire before it reads an answer that was sent (a *lost* answer); the checks allow that (it is
a timeout for the client, and nothing of the lost answer may run) and only count it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai
import openai._base_client
import pytest
import structlog
from pydantic import BaseModel
from structlog.testing import LogCapture

from intentflow.agents import Agent
from intentflow.agents.graph import AgentGraph
from intentflow.agents.handoff import Handoff, HandoffRequest
from intentflow.agents.runner import Runner
from intentflow.context import RunContext
from intentflow.errors import (
    ModelAPIError,
    ModelConnectionError,
    ModelRateLimited,
    ModelTimeout,
    RunError,
)
from intentflow.messages import AssistantMessage, Message, ToolMessage, Usage, UserMessage
from intentflow.models.openai_chat import OpenAIChatModel
from intentflow.testing.fake_server import FakeOpenAIServer
from intentflow.testing.replies import Fault, Reply, ScriptItem

pytestmark = pytest.mark.anyio

SEED = 2  # one of the first few tried; every fault kind is served 5+ times in each test
MAX_RETRIES = 2  # so a request is sent at most 3 times
TIMEOUT = 0.5  # the client's timeout per request, in seconds
SLOW = 5.0  # how long a slow reply waits: far past the timeout (the server's exit cancels it)
STAGGER = 0.006  # seconds between run starts: all start within 0.4 s, and overlap
FAST = 0.01  # Retry-After of 429 and of some 5xx
FAULT_RATE = 0.4  # of requests that get a fault instead of the answer
FAULT_WEIGHTS = {
    "429": 3,
    "500": 1,
    "502": 1,
    "503": 1,
    "drop": 2,
    "cut": 2,
    "slow": 1,
}
RETRYABLE_IN_STREAM = {"429", "500", "502", "503", "drop", "slow"}  # a cut stream is not
USER = re.compile(r"^run (\d+): ")
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Kyoto", "Cairo", "Quito"]


# --------------------------------------------------------------------------- what ran


@dataclass(frozen=True)
class Execution:
    """One execution of a tool (or a transfer), as the tool itself saw it."""

    run: int
    tool_call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Executions:
    records: list[Execution] = field(default_factory=list)

    def add(self, ctx: RunContext[Any], name: str, **arguments: Any) -> None:
        assert ctx.tool_call_id is not None
        self.records.append(Execution(ctx.deps, ctx.tool_call_id, name, arguments))

    def of(self, run: int) -> list[Execution]:
        return [r for r in self.records if r.run == run]


# --------------------------------------------------------------------------- the scenario


@dataclass(frozen=True)
class Stage:
    """One model call of a run: who asks (its instructions), how, and what the model answers
    (``None``: the final answer, which quotes the tool results of the request)."""

    instructions: str
    stream: bool
    reply: Reply | None
    results: tuple[str, ...] = ()  # what the tools answer to ``reply``'s calls, in order


Plan = Callable[[int], list[Stage]]


def message(run: int) -> str:
    return f"run {run}: please help"


def final_answer(run: int, results: Sequence[str]) -> str:
    return f"run {run}: " + "; ".join(results)


@dataclass(frozen=True)
class Attempt:
    """One chat request the server answered: the run's stage, the body's digest, what it got,
    and which try of that body it was for the SDK (its ``x-stainless-retry-count``)."""

    stage: int
    digest: str
    kind: str  # "reply" or a FAULT_WEIGHTS key
    retry: int


def canonical(body: dict[str, Any]) -> str:
    """The body as canonical JSON, tool-call ids replaced by their order of appearance.

    The server numbers tool calls in arrival order, which depends on how the concurrent runs
    interleave; without this the faults drawn would too.
    """
    ids: dict[str, str] = {}
    for m in body.get("messages", []):
        for call in m.get("tool_calls") or ():
            call["id"] = ids.setdefault(call["id"], f"id{len(ids)}")
        if m.get("role") == "tool":
            m["tool_call_id"] = ids.setdefault(m["tool_call_id"], f"id{len(ids)}")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FaultyModel:
    """The server's script function: the model of `plan`, with faults drawn per request."""

    def __init__(self, plan: Plan, seed: int = SEED) -> None:
        self.plan = plan
        self.seed = seed
        self.seen: Counter[str] = Counter()
        self.log: list[tuple[int, int, str, str]] = []  # (run, stage, digest, kind), in order
        self.served: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> ScriptItem:
        messages = body["messages"]
        user = [m for m in messages if m["role"] == "user"]
        assert len(user) == 1, messages
        match = USER.match(user[0]["content"])
        assert match is not None, user
        run = int(match.group(1))
        stages = self.plan(run)
        stage = sum(1 for m in messages if m["role"] == "assistant")
        assert stage < len(stages), f"run {run}: a request after the final answer"
        expected = stages[stage]
        assert messages[0] == {"role": "system", "content": expected.instructions}, messages[0]
        assert (body.get("stream") is True) is expected.stream, body.get("stream")
        if expected.reply is None:
            results = [m["content"] for m in messages if m["role"] == "tool"]
            reply = Reply.text(final_answer(run, results))
        else:
            reply = expected.reply

        key = canonical(body)
        digest = hashlib.sha256(key.encode()).hexdigest()
        seen = self.seen[key]
        self.seen[key] += 1
        rng = random.Random(f"{self.seed}|{digest}|{seen}")
        kind = "reply"
        if rng.random() < FAULT_RATE:
            kind = rng.choices(list(FAULT_WEIGHTS), weights=list(FAULT_WEIGHTS.values()))[0]
        self.log.append((run, stage, digest, kind))
        served = kind
        if kind == "cut":
            shape = "stream" if expected.stream else "json"
            where = "mid_call" if reply.tool_calls else "mid_text"
            served = f"cut_{shape}_{where}"
        self.served[served] += 1
        return fault(kind, reply)

    def attempts(self, server: FakeOpenAIServer) -> dict[int, list[Attempt]]:
        """Each run's requests, with the SDK's try number from the recorded headers (the
        server records a request just before it asks this function, so the orders match)."""
        chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
        assert len(chats) == len(self.log)
        by_run: dict[int, list[Attempt]] = defaultdict(list)
        for (run, stage, digest, kind), request in zip(self.log, chats, strict=True):
            retry = int(request.headers["x-stainless-retry-count"])
            by_run[run].append(Attempt(stage, digest, kind, retry))
        return by_run


def fault(kind: str, reply: Reply) -> ScriptItem:
    if kind == "reply":
        return reply
    if kind == "429":
        return Fault.rate_limit(retry_after=FAST)
    if kind == "500":
        return Fault.server_error(500, retry_after=FAST)
    if kind == "502":
        return Fault.server_error(502, "Bad gateway.")  # no Retry-After: the SDK's backoff
    if kind == "503":
        return Fault.server_error(503, "The engine is overloaded.", retry_after=FAST)
    if kind == "drop":
        return Fault.drop_connection()
    if kind == "cut":
        return Fault.cut_stream(reply)  # mid the first call's arguments (or mid text)
    assert kind == "slow"
    return Fault.slow(SLOW, reply)  # the whole answer, but only after the client gave up


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Verdict:
    completed: int  # model calls of the run that got an answer the run went on with
    recovered: bool  # some request of the run was answered after the SDK retried it
    exhausted: bool  # the run failed because a request used up its retries
    lost: int  # answers the client gave up on before reading them (its timeout, under load)


def judge(run: int, attempts: Sequence[Attempt], stages: Sequence[Stage], outcome: Any) -> Verdict:
    """Check the run's requests against how it ended.

    Per model call: the SDK resent the identical body, at most ``MAX_RETRIES`` times; the
    answer the run went on with is the last try's; a run that failed failed on its last try,
    with the error that try's fault means, after every retry unless the fault cannot be
    retried (a cut stream).

    A reply the server sent can still be lost: when the 2-core machine is busy, the client's
    timeout may expire before it reads the answer (and the server may even read a request
    after its retry). Such a lost answer is a timeout for the client; it is allowed anywhere
    but counted, and nothing of it may run (see `check_run`).
    """
    where = f"run {run}: {sorted(attempts, key=lambda a: (a.stage, a.retry))} -> {outcome!r}"
    by_stage: defaultdict[int, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_stage[attempt.stage].append(attempt)
    assert sorted(by_stage) == list(range(len(by_stage))), where
    lost = 0
    recovered = False
    for stage, tries in sorted(by_stage.items()):
        tries.sort(key=lambda a: a.retry)
        retries = [a.retry for a in tries]
        assert len(set(retries)) == len(retries), f"a try sent twice: {where}"
        assert retries[-1] <= MAX_RETRIES, f"retried too often: {where}"
        assert len({a.digest for a in tries}) == 1, f"a retry changed the request body: {where}"
        lost += sum(a.kind == "reply" for a in tries[:-1])
        if stage < len(by_stage) - 1:  # the run went on: with the answer of the last try
            assert tries[-1].kind == "reply", where
            recovered = recovered or len(tries) > 1
    reached = len(by_stage) - 1
    last = by_stage[reached][-1]
    if not isinstance(outcome, RunError):
        assert reached == len(stages) - 1, f"a run that stopped early succeeded: {where}"
        assert last.kind == "reply", where
        recovered = recovered or len(by_stage[reached]) > 1
        return Verdict(len(stages), recovered, exhausted=False, lost=lost)

    # The last try of the last model call failed: with the error its fault means, or with
    # a timeout (a slow reply, or an answer lost under load). Only a stream that had begun
    # (cut, or stalled under load) fails without the SDK's retries.
    stream = stages[reached].stream
    if type(outcome) is ModelTimeout:
        lost += last.kind == "reply"
        early = stream and last.kind in ("reply", "cut")
    else:
        assert last.kind != "reply", where
        assert_typed_error(outcome, last.kind, where)
        early = stream and last.kind == "cut"
    if not early:
        assert last.retry == MAX_RETRIES, f"failed before its retries were spent: {where}"
    return Verdict(reached, recovered, exhausted=not early, lost=lost)


def assert_typed_error(exc: RunError, kind: str, where: str) -> None:
    """The error is the one the fault means."""
    if kind == "429":
        assert type(exc) is ModelRateLimited, where
        assert exc.status == 429
        assert exc.retryable is True
    elif kind in ("500", "502", "503"):
        assert type(exc) is ModelAPIError, where
        assert exc.status == int(kind)
        assert exc.retryable is True
    elif kind in ("drop", "cut"):
        assert type(exc) is ModelConnectionError, where
    else:
        assert kind == "slow", where
        assert type(exc) is ModelTimeout, where


def check_run(
    run: int,
    outcome: Any,
    completed: int,
    stages: Sequence[Stage],
    executions: Executions,
) -> None:
    """The run's transcript, output, usage and tool executions."""
    transcript: tuple[Message, ...] = outcome.transcript
    usage: Usage | None = outcome.usage
    failed = isinstance(outcome, RunError)

    # The transcript: the user's message, then each answered stage's message (a failed
    # request leaves nothing), every tool call answered at once, in the model's order.
    assert transcript[0] == UserMessage(content=message(run))
    position = 1
    results: list[str] = []
    for stage in stages[:completed]:
        assistant = transcript[position]
        assert isinstance(assistant, AssistantMessage), transcript
        position += 1
        if stage.reply is None:  # the final answer
            assert assistant.tool_calls == ()
            assert assistant.content == final_answer(run, results)
            continue
        sent = [(c.name, json.loads(c.arguments)) for c in stage.reply.tool_calls]
        assert [(c.name, json.loads(c.arguments)) for c in assistant.tool_calls] == sent
        for call, result in zip(assistant.tool_calls, stage.results, strict=True):
            answer = transcript[position]
            position += 1
            assert isinstance(answer, ToolMessage), transcript
            assert answer.tool_call_id == call.id
            assert answer.content == result
            assert answer.is_error is False
            results.append(result)
    assert position == len(transcript), f"run {run}: unexpected messages: {transcript}"
    assert usage is not None
    assert usage.requests == completed  # answered model calls only

    if not failed:
        assert outcome.output == final_answer(run, results)

    # What ran is exactly what the transcript answers: the calls of answered requests, each
    # once, with the arguments the transcript shows.
    calls = {
        c.id: (c.name, json.loads(c.arguments))
        for m in transcript
        if isinstance(m, AssistantMessage)
        for c in m.tool_calls
    }
    answered = [m.tool_call_id for m in transcript if isinstance(m, ToolMessage)]
    assert sorted(answered) == sorted(calls)
    ran = executions.of(run)
    assert sorted(r.tool_call_id for r in ran) == sorted(answered), f"run {run}: {ran}"
    for r in ran:
        assert calls[r.tool_call_id] == (r.name, r.arguments)


@dataclass
class Outcomes:
    """How each run ended: its result, or the `RunError` it raised."""

    by_run: dict[int, Any] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    active: int = 0
    peak: int = 0  # the most runs in progress at once

    async def collect(self, run: int, start: Callable[[], Any]) -> None:
        # Staggered a little: dozens of requests at once on one event loop queue for about
        # as long as the client's timeout, and the timeouts are to come from slow faults.
        await anyio.sleep(run * STAGGER)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            self.by_run[run] = await start()
        except RunError as exc:
            self.by_run[run] = exc
        except Exception as exc:  # anything untyped fails the test (after every run ended)
            self.unexpected.append(f"run {run}: {type(exc).__name__}: {exc!r}")
        finally:
            self.active -= 1

    async def collect_all(self, runs: int, start: Callable[[int], Any]) -> None:
        """Start runs ``0 .. runs-1`` at once (``start(run)``) and wait for them all."""
        async with anyio.create_task_group() as tg:
            for run in range(runs):
                tg.start_soon(self.collect, run, functools.partial(start, run))


def check_all(
    runs: int,
    model: FaultyModel,
    outcomes: Outcomes,
    executions: Executions,
    server: FakeOpenAIServer,
    logs: Sequence[MutableMapping[str, Any]],
) -> Counter[str]:
    """Every run's checks, and the global ones; returns a tally of the outcomes."""
    assert outcomes.unexpected == []
    assert server.errors == []
    assert sorted(outcomes.by_run) == list(range(runs))
    assert outcomes.peak >= runs // 3, outcomes.peak  # the runs did overlap

    # No tool call ran twice, across all runs; the executor's log agrees.
    ids = Counter(r.tool_call_id for r in executions.records)
    assert [i for i, n in ids.items() if n > 1] == []
    assert {r.run for r in executions.records} <= set(outcomes.by_run)
    logged = Counter(e["tool_call_id"] for e in logs if e["event"] == "tool.call")
    assert logged == ids

    tally: Counter[str] = Counter()
    attempts = model.attempts(server)
    for run in range(runs):
        stages = model.plan(run)
        outcome = outcomes.by_run[run]
        verdict = judge(run, attempts[run], stages, outcome)
        check_run(run, outcome, verdict.completed, stages, executions)
        tally["lost"] += verdict.lost
        if isinstance(outcome, RunError):
            tally["failed"] += 1
            tally[f"failed:{type(outcome).__name__}"] += 1
            tally["exhausted"] += verdict.exhausted
        else:
            tally["succeeded"] += 1
            tally["recovered"] += verdict.recovered
    # Both outcomes happened: runs that recovered through retries, runs that ran out of them.
    assert tally["recovered"] > 0, tally
    assert tally["exhausted"] > 0, tally
    assert tally["succeeded"] > 0, tally
    assert tally["failed"] > 0, tally
    return tally


@pytest.fixture
def captured_log() -> Iterator[list[MutableMapping[str, Any]]]:
    """The test's log events, debug included, captured instead of rendered (rendering
    thousands of lines costs CPU that the client's timeouts cannot spare)."""
    before = structlog.get_config()
    capture = LogCapture()
    structlog.configure(
        processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG)
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**before)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the SDK's own backoff (0.5 s and up), used after faults with no Retry-After
    (dropped connections, cuts, timeouts, the 502s); the retry path is unchanged."""
    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.005)


def serving(script: FaultyModel) -> FakeOpenAIServer:
    # 8 characters per stream delta: every call's arguments take two or more deltas, so a
    # cut stream stops inside them.
    return FakeOpenAIServer(script, chunk_chars=8)


def client_on(server: FakeOpenAIServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=MAX_RETRIES, timeout=TIMEOUT
    )


def model_on(client: openai.AsyncOpenAI) -> OpenAIChatModel:
    return OpenAIChatModel("fake-model", client, max_retries=MAX_RETRIES, timeout=TIMEOUT)


# --------------------------------------------------------------------------- one agent

AGENT_RUNS = 50
WEATHER = "You answer questions about the weather."


def weather_plan(stream: bool) -> Plan:
    """Parallel calls (two or three), then one more call, then the final answer."""

    def plan(run: int) -> list[Stage]:
        city = [CITIES[(run + i) % len(CITIES)] for i in range(4)]
        first = [("get_weather", city[0]), ("get_time", city[1])]
        if run % 2:
            first.append(("get_weather", city[2]))
        second = [("get_time", city[3])]
        return [
            batch(WEATHER, stream, first),
            batch(WEATHER, stream, second),
            Stage(WEATHER, stream, None),
        ]

    return plan


def weather_result(name: str, city: str) -> str:
    return f"Sunny in {city}" if name == "get_weather" else f"12:00 in {city}"


def batch(instructions: str, stream: bool, calls: Sequence[tuple[str, str]]) -> Stage:
    reply = Reply.calls(*[(name, {"city": city}) for name, city in calls])
    results = tuple(weather_result(name, city) for name, city in calls)
    return Stage(instructions, stream, reply, results)


def weather_agent(model: OpenAIChatModel, executions: Executions, stream: bool) -> Agent[str]:
    async def get_weather(ctx: RunContext[int], city: str) -> str:
        """The current weather in a city."""
        executions.add(ctx, "get_weather", city=city)
        await anyio.sleep(0.001)
        return weather_result("get_weather", city)

    async def get_time(ctx: RunContext[int], city: str) -> str:
        """The local time in a city."""
        executions.add(ctx, "get_time", city=city)
        await anyio.sleep(0.001)
        return weather_result("get_time", city)

    return Agent(
        name="weather",
        instructions=WEATHER,
        model=model,
        tools=[get_weather, get_time],
        stream=stream,
    )


@pytest.mark.usefixtures("fast_backoff")
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_concurrent_agent_runs_under_faults(
    stream: bool, captured_log: list[MutableMapping[str, Any]]
) -> None:
    plan = weather_plan(stream)
    script = FaultyModel(plan)
    executions = Executions()
    outcomes = Outcomes()
    with anyio.fail_after(15):
        async with serving(script) as server, client_on(server) as client:
            agent = weather_agent(model_on(client), executions, stream)
            await outcomes.collect_all(AGENT_RUNS, lambda run: agent.run(message(run), deps=run))

    tally = check_all(AGENT_RUNS, script, outcomes, executions, server, captured_log)
    served = script.served
    for kind in ("reply", "429", "500", "502", "503", "drop", "slow"):
        assert served[kind] > 0, served
    if stream:
        assert served["cut_stream_mid_call"] > 0, served  # a stream cut mid tool call
        assert tally["failed:ModelConnectionError"] > 0, tally  # which the SDK cannot retry
    else:
        assert served["cut_json_mid_call"] > 0, served  # half a body: retried
    # The runs failed in several typed ways (which, follows from the seed).
    kinds = {"ModelRateLimited", "ModelAPIError", "ModelConnectionError", "ModelTimeout"}
    assert len({k for k in kinds if tally[f"failed:{k}"]}) >= 3, tally


# --------------------------------------------------------------------------- a graph with a handoff

GRAPH_RUNS = 40
TRIAGE = "You triage orders and hand refunds to billing."
BILLING = "You issue refunds."


class Ticket(BaseModel):
    order_id: str


def graph_plan(run: int) -> list[Stage]:
    """Triage (streaming) looks two orders up in parallel and hands off to billing (JSON),
    which issues two or three refunds in parallel and answers."""
    orders = [f"A-{run}", f"B-{run}"]
    refunds = [*orders, f"C-{run}"] if run % 2 else orders
    return [
        Stage(
            TRIAGE,
            True,
            Reply.calls(*[("lookup_order", {"order_id": o}) for o in orders]),
            tuple(f"order {o}: paid" for o in orders),
        ),
        Stage(
            TRIAGE,
            True,
            Reply.call("transfer_to_billing", {"order_id": orders[0]}),
            ("Transferred to billing.",),
        ),
        Stage(
            BILLING,
            False,
            Reply.calls(*[("issue_refund", {"order_id": o}) for o in refunds]),
            tuple(f"refund issued for {o}" for o in refunds),
        ),
        Stage(BILLING, False, None),
    ]


def refund_runner(model: OpenAIChatModel, executions: Executions) -> Runner:
    async def lookup_order(ctx: RunContext[int], order_id: str) -> str:
        """Look an order up."""
        executions.add(ctx, "lookup_order", order_id=order_id)
        await anyio.sleep(0.001)
        return f"order {order_id}: paid"

    async def issue_refund(ctx: RunContext[int], order_id: str) -> str:
        """Refund an order."""
        executions.add(ctx, "issue_refund", order_id=order_id)
        await anyio.sleep(0.001)
        return f"refund issued for {order_id}"

    class Billing(Agent[str]):
        name = "billing"
        instructions = BILLING
        tools = (issue_refund,)

        async def on_handoff(self, ctx: RunContext[Any], handoff: HandoffRequest) -> None:
            # The transfer "ran": it is recorded under its call id like any tool.
            ctx = RunContext(ctx.deps, tool_call_id=handoff.tool_call_id)
            executions.add(ctx, "transfer_to_billing", **handoff.payload.model_dump())

    triage = Agent(
        name="triage",
        instructions=TRIAGE,
        model=model,
        tools=[lookup_order],
        handoffs=[Handoff("billing", description="Refunds.", payload=Ticket)],
        stream=True,
    )
    graph = AgentGraph([triage, Billing(model=model, stream=False)])
    return Runner(None, graph, entry="triage")


@pytest.mark.usefixtures("fast_backoff")
async def test_concurrent_graph_runs_with_a_handoff_under_faults(
    captured_log: list[MutableMapping[str, Any]],
) -> None:
    script = FaultyModel(graph_plan)
    executions = Executions()
    outcomes = Outcomes()
    with anyio.fail_after(15):
        async with serving(script) as server, client_on(server) as client:
            runner = refund_runner(model_on(client), executions)
            await outcomes.collect_all(GRAPH_RUNS, lambda run: runner.run(message(run), deps=run))

    tally = check_all(GRAPH_RUNS, script, outcomes, executions, server, captured_log)
    served = script.served
    for kind in ("reply", "429", "500", "502", "503", "drop", "slow"):
        assert served[kind] > 0, served
    assert served["cut_stream_mid_call"] > 0, served  # triage streams
    assert served["cut_json_mid_call"] + served["cut_json_mid_text"] > 0, served  # billing
    # The handoff happened under faults, and runs failed on both sides of it.
    attempts = script.attempts(server)
    for run, outcome in outcomes.by_run.items():
        completed = judge(run, attempts[run], graph_plan(run), outcome).completed
        assert outcome.path == (("triage", "billing") if completed >= 2 else ("triage",))
    failed_after_handoff = [
        run
        for run, outcome in outcomes.by_run.items()
        if isinstance(outcome, RunError) and outcome.path == ("triage", "billing")
    ]
    assert failed_after_handoff, tally
