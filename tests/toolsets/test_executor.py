"""The executor: permission, validation, timeouts, retries, concurrency, isolation, policy."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from intentflow import (
    ErrorAction,
    ErrorBudget,
    ErrorPolicy,
    Executor,
    OutcomeKind,
    RetryPolicy,
    RunContext,
    ToolCall,
    ToolCallFailed,
    Toolset,
    TransientToolError,
)

pytestmark = pytest.mark.anyio


def call(name: str, args: Any = None, id: str | None = None) -> ToolCall:
    text = args if isinstance(args, str) else json.dumps(args or {})
    return ToolCall(id=id or f"call_{name}", name=name, arguments=text)


class Weather(BaseModel):
    city: str
    temp_c: float


def make_tools() -> Toolset:
    ts = Toolset("test")

    @ts.tool
    async def weather(city: str) -> Weather:
        return Weather(city=city, temp_c=18.5)

    @ts.tool
    def add(a: int, b: int) -> int:
        return a + b

    @ts.tool
    async def echo(text: str) -> str:
        return text

    @ts.tool
    async def boom() -> None:
        raise ValueError("database password=hunter2 rejected")

    @ts.tool(timeout=0.05)
    async def slow() -> str:
        await anyio.sleep(5)
        return "late"

    @ts.tool
    async def nap(seconds: float) -> float:
        await anyio.sleep(seconds)
        return seconds

    return ts


# --------------------------------------------------------------------------- success


async def test_results_are_serialized_for_the_model() -> None:
    outcomes = await Executor(make_tools()).execute(
        [
            call("weather", {"city": "Oslo"}),
            call("add", {"a": 2, "b": 3}),
            call("echo", {"text": "hi"}),
        ]
    )
    assert [o.kind for o in outcomes] == [OutcomeKind.SUCCESS] * 3
    assert json.loads(outcomes[0].content) == {"city": "Oslo", "temp_c": 18.5}
    assert outcomes[1].content == "5"
    assert outcomes[2].content == "hi"
    assert outcomes[0].result == Weather(city="Oslo", temp_c=18.5)


async def test_outcomes_keep_the_model_order_whatever_finishes_first() -> None:
    calls = [call("nap", {"seconds": s}, id=f"c{i}") for i, s in enumerate([0.06, 0.0, 0.03])]
    outcomes = await Executor(make_tools()).execute(calls)
    assert [o.tool_call_id for o in outcomes] == ["c0", "c1", "c2"]
    assert [o.to_message().tool_call_id for o in outcomes] == ["c0", "c1", "c2"]


async def test_parallel_calls_run_concurrently_up_to_the_cap() -> None:
    ts = Toolset("t")
    running = 0
    peak = 0

    @ts.tool
    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        return i

    calls = [call("work", {"i": i}, id=f"c{i}") for i in range(7)]
    outcomes = await Executor(ts, max_concurrency=3).execute(calls)
    assert all(o.ok for o in outcomes)
    assert peak == 3


async def test_sync_tools_run_in_worker_threads() -> None:
    ts = Toolset("t")

    @ts.tool
    def where() -> bool:
        return threading.current_thread() is not threading.main_thread()

    [outcome] = await Executor(ts).execute([call("where")])
    assert outcome.result is True


async def test_context_reaches_the_tool_with_its_call_id() -> None:
    ts = Toolset("t")
    seen: list[RunContext[dict[str, str]]] = []

    @ts.tool
    async def whoami(ctx: RunContext[dict[str, str]]) -> str:
        seen.append(ctx)
        return ctx.deps["user"]

    ctx = RunContext(deps={"user": "ada"}, run_id="r1", intent="billing")
    [outcome] = await Executor(ts).execute([call("whoami", id="c9")], context=ctx)
    assert outcome.content == "ada"
    assert (seen[0].tool_call_id, seen[0].tool_name, seen[0].run_id) == ("c9", "whoami", "r1")


# --------------------------------------------------------------------------- failure kinds


async def test_unknown_tool_and_permission_denied_look_alike_to_the_model() -> None:
    ex = Executor(make_tools())
    unknown, denied = await ex.execute(
        [call("teleport"), call("add", {"a": 1, "b": 1})], allowed={"echo", "weather"}
    )
    assert unknown.kind is OutcomeKind.UNKNOWN_TOOL
    assert denied.kind is OutcomeKind.PERMISSION_DENIED
    assert unknown.tool_name is None and denied.tool_name == "add"
    assert unknown.content.replace("teleport", "add") == denied.content  # indistinguishable
    for o in (unknown, denied):
        error = json.loads(o.content)["error"]
        assert error["kind"] == "unknown_tool"
        assert "is not available" in error["message"]
        assert error["hint"] == "Call one of: weather, echo."


async def test_invalid_json_goes_back_with_a_hint() -> None:
    [o] = await Executor(make_tools()).execute([call("add", '{"a": 1, "b": ')])
    assert o.kind is OutcomeKind.INVALID_JSON
    error = json.loads(o.content)["error"]
    assert error["retryable"] is True
    assert "JSON object" in error["hint"]


async def test_invalid_arguments_list_every_field() -> None:
    [o] = await Executor(make_tools()).execute([call("add", {"a": "one", "c": 3})])
    assert o.kind is OutcomeKind.INVALID_ARGUMENTS
    fields = {f["field"] for f in json.loads(o.content)["error"]["fields"]}
    assert fields == {"a", "b", "c"}


async def test_tool_exception_is_isolated_and_described() -> None:
    outcomes = await Executor(make_tools()).execute([call("boom"), call("echo", {"text": "still"})])
    assert outcomes[0].kind is OutcomeKind.TOOL_ERROR
    assert "ValueError" in outcomes[0].content
    assert isinstance(outcomes[0].error and outcomes[0].error.exception, ValueError)
    assert outcomes[1].ok and outcomes[1].content == "still"


async def test_exception_messages_can_be_hidden_from_the_model() -> None:
    ex = Executor(make_tools(), policy=ErrorPolicy(expose_exception_messages=False))
    [o] = await ex.execute([call("boom")])
    assert "ValueError" in o.content
    assert "hunter2" not in o.content


async def test_timeout_is_isolated_from_the_other_calls() -> None:
    start = time.perf_counter()
    outcomes = await Executor(make_tools()).execute([call("slow"), call("echo", {"text": "ok"})])
    assert time.perf_counter() - start < 2
    assert outcomes[0].kind is OutcomeKind.TIMEOUT
    assert outcomes[1].ok


async def test_sync_tool_timeout_returns_on_time() -> None:
    ts = Toolset("t")
    release = threading.Event()

    @ts.tool(timeout=0.05)
    def blocking() -> str:
        release.wait(5)
        return "done"

    start = time.perf_counter()
    [o] = await Executor(ts).execute([call("blocking")])
    release.set()
    assert o.kind is OutcomeKind.TIMEOUT
    assert time.perf_counter() - start < 2


async def test_unserializable_result_is_a_tool_error() -> None:
    ts = Toolset("t")

    @ts.tool
    async def weird() -> dict[str, Any]:
        return {float("nan"): 1}  # type: ignore[dict-item]

    [o] = await Executor(ts).execute([call("weird")])
    assert o.kind in (OutcomeKind.TOOL_ERROR, OutcomeKind.SUCCESS)
    json.loads(o.content)  # whatever happened, the model gets valid JSON


# --------------------------------------------------------------------------- retries


async def test_transient_failures_are_retried_with_backoff() -> None:
    ts = Toolset("t")
    attempts = 0

    @ts.tool(retry=RetryPolicy(attempts=3, base_delay=0.001))
    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise TransientToolError("busy")
        return "ok"

    [o] = await Executor(ts).execute([call("flaky")])
    assert (o.kind, o.attempts, o.content) == (OutcomeKind.SUCCESS, 3, "ok")


async def test_non_transient_failures_are_not_retried() -> None:
    ts = Toolset("t")
    attempts = 0

    @ts.tool(retry=RetryPolicy(attempts=3, base_delay=0.001))
    async def broken() -> str:
        nonlocal attempts
        attempts += 1
        raise KeyError("nope")

    [o] = await Executor(ts).execute([call("broken")])
    assert (o.kind, attempts) == (OutcomeKind.TOOL_ERROR, 1)


async def test_retries_stop_after_the_last_attempt() -> None:
    ts = Toolset("t")

    @ts.tool(retry=RetryPolicy(attempts=2, base_delay=0.001))
    async def down() -> str:
        raise TransientToolError("still down")

    [o] = await Executor(ts).execute([call("down")])
    assert (o.kind, o.attempts) == (OutcomeKind.TOOL_ERROR, 2)
    assert o.error is not None and o.error.retryable


async def test_timeouts_are_retried_only_when_marked_transient() -> None:
    ts = Toolset("t")
    attempts = 0

    @ts.tool(timeout=0.02, retry=RetryPolicy(attempts=3, base_delay=0.001, retry_timeouts=True))
    async def sometimes_slow() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await anyio.sleep(1)
        return "ok"

    [o] = await Executor(ts).execute([call("sometimes_slow")])
    assert (o.kind, o.attempts) == (OutcomeKind.SUCCESS, 2)


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.3, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    jittered = RetryPolicy(base_delay=0.1)
    assert all(0 <= jittered.delay(2) <= 0.2 for _ in range(50))


# --------------------------------------------------------------------------- policy and budgets


async def test_policy_raise_carries_every_outcome_of_the_batch() -> None:
    ex = Executor(make_tools(), policy=ErrorPolicy(tool_error=ErrorAction.RAISE))
    with pytest.raises(ToolCallFailed) as info:
        await ex.execute([call("echo", {"text": "a"}), call("boom"), call("add", {"a": 1, "b": 2})])
    failed = info.value
    assert failed.outcome.tool_call_id == "call_boom"
    assert failed.outcome.action is ErrorAction.RAISE
    assert [o.kind for o in failed.outcomes] == [
        OutcomeKind.SUCCESS,
        OutcomeKind.TOOL_ERROR,
        OutcomeKind.SUCCESS,
    ]


@pytest.mark.parametrize(
    ("field", "calls"),
    [
        ("unknown_tool", [call("teleport")]),
        ("permission_denied", [call("boom")]),
        ("invalid_json", [call("add", "{")]),
        ("invalid_arguments", [call("add", {})]),
        ("timeout", [call("slow")]),
        ("tool_error", [call("boom")]),
    ],
)
async def test_each_kind_can_be_set_to_raise(field: str, calls: list[ToolCall]) -> None:
    allowed = {"add", "slow"} if field == "permission_denied" else None
    ex = Executor(make_tools(), policy=ErrorPolicy(**{field: ErrorAction.RAISE}))  # type: ignore[arg-type]
    with pytest.raises(ToolCallFailed) as info:
        await ex.execute(calls, allowed=allowed)
    assert info.value.outcome.kind.value == field
    returned = await Executor(make_tools()).execute(calls, allowed=allowed)
    assert returned[0].action is ErrorAction.RETURN_TO_MODEL


async def test_per_tool_budget_turns_the_next_failure_into_budget_exceeded() -> None:
    ex = Executor(make_tools(), policy=ErrorPolicy(max_errors_per_tool=2))
    budget = ErrorBudget()
    for _ in range(2):
        [o] = await ex.execute([call("boom")], budget=budget)
        assert o.kind is OutcomeKind.TOOL_ERROR
    with pytest.raises(ToolCallFailed) as info:
        await ex.execute([call("boom")], budget=budget)
    assert info.value.outcome.kind is OutcomeKind.BUDGET_EXCEEDED
    assert "budget 2" in info.value.outcome.content


async def test_per_run_budget_counts_all_tools() -> None:
    policy = ErrorPolicy(max_errors_per_run=2, budget_exceeded=ErrorAction.RETURN_TO_MODEL)
    outcomes = await Executor(make_tools(), policy=policy).execute(
        [call("boom", id="1"), call("add", "{", id="2"), call("teleport", id="3")]
    )
    assert [o.kind for o in outcomes] == [
        OutcomeKind.TOOL_ERROR,
        OutcomeKind.INVALID_JSON,
        OutcomeKind.BUDGET_EXCEEDED,
    ]
    assert "answer without it" in json.loads(outcomes[2].content)["error"]["hint"]


# --------------------------------------------------------------------------- scheduling


async def test_exclusive_tool_never_overlaps_with_others() -> None:
    ts = Toolset("t")
    log: list[str] = []

    @ts.tool
    async def read(i: int) -> int:
        log.append(f"start{i}")
        await anyio.sleep(0.01)
        log.append(f"end{i}")
        return i

    @ts.tool(exclusive=True)
    async def write() -> str:
        log.append("write")
        return "w"

    await Executor(ts).execute(
        [
            call("read", {"i": 1}, "a"),
            call("read", {"i": 2}, "b"),
            call("write", id="w"),
            call("read", {"i": 3}, "c"),
        ]
    )
    w = log.index("write")
    assert set(log[:w]) == {"start1", "start2", "end1", "end2"}
    assert log[w + 1 :] == ["start3", "end3"]


async def test_same_concurrency_key_runs_one_at_a_time() -> None:
    ts = Toolset("t")
    active: dict[str, int] = {}
    overlap: list[str] = []

    @ts.tool(concurrency_key=lambda args: str(args["account"]))
    async def debit(account: str, amount: int) -> int:
        active[account] = active.get(account, 0) + 1
        if active[account] > 1:
            overlap.append(account)
        await anyio.sleep(0.01)
        active[account] -= 1
        return amount

    calls = [call("debit", {"account": a, "amount": 1}, f"c{i}") for i, a in enumerate("AABBA")]
    start = time.perf_counter()
    outcomes = await Executor(ts, max_concurrency=5).execute(calls)
    assert all(o.ok for o in outcomes)
    assert overlap == []
    assert time.perf_counter() - start < 0.05 * 5  # B's ran beside A's


# --------------------------------------------------------------------------- cancellation, events


async def test_cancellation_reports_finished_and_cancelled_calls_then_propagates() -> None:
    seen: list[tuple[str, OutcomeKind]] = []
    started: list[str] = []
    ex = Executor(make_tools())
    with anyio.move_on_after(0.1) as scope:
        await ex.execute(
            [call("echo", {"text": "x"}, "fast"), call("nap", {"seconds": 10}, "stuck")],
            on_started=lambda c: started.append(c.id),
            on_finished=lambda o: seen.append((o.tool_call_id, o.kind)),
        )
    assert scope.cancelled_caught
    assert sorted(started) == ["fast", "stuck"]
    assert sorted(seen) == [("fast", OutcomeKind.SUCCESS), ("stuck", OutcomeKind.CANCELLED)]


async def test_every_call_is_logged_with_redacted_arguments() -> None:
    ts = Toolset("t")

    @ts.tool(sensitive=["card"])
    async def pay(card: str, amount: int) -> str:
        return "paid"

    with capture_logs() as logs:
        await Executor(ts).execute([call("pay", {"card": "4111111111111111", "amount": 5}, "p1")])
    [event] = [e for e in logs if e["event"] == "tool.call"]
    assert event["tool"] == "pay" and event["tool_call_id"] == "p1"
    assert event["outcome"] == "success" and event["duration_ms"] >= 0
    assert event["arguments"] == {"card": "<redacted>", "amount": 5}
    assert "4111" not in repr(logs)
