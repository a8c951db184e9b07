"""Durable runs: checkpoints after every step, resume after a crash at any step, approvals.

A "crash" here is an exception that is neither a run error nor a cancellation, raised from
inside the model or a tool: the run saves nothing more, as when its process is killed. The
subprocess test with SIGKILL is in test_crash.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from intentflow import (
    Agent,
    CheckpointConflict,
    ConfigurationError,
    Decision,
    IncompatibleCheckpoint,
    MemoryStore,
    ModelAPIError,
    RunNotResumable,
    SQLiteStore,
    StoreError,
)
from intentflow.agents import AgentGraph, Runner, RunState
from intentflow.messages import ToolMessage
from intentflow.models import ModelRequest
from intentflow.stores import CheckpointStore
from intentflow.testing import Fault, Reply, ScriptedModel
from intentflow.toolsets import Tool
from tests.durable.app import Effects, build, script

pytestmark = pytest.mark.anyio


class Crash(BaseException):
    """Stands for the process dying: not an error a run handles."""


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: CheckpointStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "runs.sqlite")
    )
    yield made
    await made.aclose()


def dumped(transcript: Any) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json") for m in transcript]


async def test_a_run_is_checkpointed_and_its_final_state_kept(store: CheckpointStore) -> None:
    effects = Effects()
    runner = build(store, effects)
    result = await runner.run("I want a refund", run_id="r1")
    assert result.output == "Done: " + json.dumps({"refunded": "A1", "amount": 50.0})
    assert result.path == ("triage", "billing")
    checkpoint = await store.load("r1")
    assert checkpoint.status == "finished"
    # start, then per turn: before the model, after it; per batch: before and after.
    assert checkpoint.version >= 8
    state = RunState.loads(checkpoint.data)
    assert dumped(state.transcript) == dumped(result.transcript)
    assert state.output == result.output
    assert state.phase == "done" and state.intent == "refund"
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}


async def uninterrupted(amount: float = 50.0) -> Any:
    return await build(MemoryStore(), Effects(), amount=amount).run("I want a refund")


def crashing_model(crash_at: int) -> ScriptedModel:
    """The app's model, crashing (once) at its ``crash_at``-th request."""
    answer = script()
    seen = [0]

    def maybe_crash(request: ModelRequest) -> Reply:
        seen[0] += 1
        if seen[0] == crash_at:
            raise Crash
        return answer(request)

    model = ScriptedModel(maybe_crash)
    original = model.complete

    async def complete(request: ModelRequest) -> Any:
        if seen[0] + 1 == crash_at:
            seen[0] += 1
            raise Crash
        return await original(request)

    model.complete = complete  # type: ignore[method-assign]
    return model


@pytest.mark.parametrize("crash_at", [1, 2, 3])
async def test_a_crash_before_any_model_call_resumes_to_the_same_transcript(
    store: CheckpointStore, crash_at: int
) -> None:
    expected = await uninterrupted()
    effects = Effects()
    with pytest.raises(Crash):
        await build(store, effects, model=crashing_model(crash_at)).run(
            "I want a refund", run_id="r"
        )
    assert (await store.load("r")).status == "running"
    result = await build(store, effects).resume("r")
    assert dumped(result.transcript) == dumped(expected.transcript)
    assert result.output == expected.output
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}  # never twice
    assert result.path == ("triage", "billing")
    assert (await store.load("r")).status == "finished"


async def test_a_crash_after_the_tools_ran_does_not_run_them_again(
    store: CheckpointStore,
) -> None:
    """Killed between the tool batch and the next model call: the batch's outcomes were
    saved, so the resumed run goes on to the model with them."""
    expected = await uninterrupted()
    effects = Effects()
    with pytest.raises(Crash):
        await build(store, effects, model=crashing_model(3)).run("refund please", run_id="r")
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}
    state = RunState.loads((await store.load("r")).data)
    assert state.phase == "model" and state.node == "billing"
    result = await build(store, effects).resume("r")
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}
    assert dumped(result.transcript)[1:] == dumped(expected.transcript)[1:]


async def test_a_call_in_flight_is_rerun_only_when_idempotent(store: CheckpointStore) -> None:
    effects = Effects()
    crashed = [False]

    def crash_in_refund(name: str) -> None:
        effects.counts[name] = effects.counts.get(name, 0) + 1
        if name == "issue_refund" and not crashed[0]:
            crashed[0] = True
            raise Crash

    effects.hit = crash_in_refund  # type: ignore[method-assign]
    with pytest.raises((Crash, BaseExceptionGroup)) as caught:  # from the batch's task group
        await build(store, effects).run("refund please", run_id="r")
    if isinstance(caught.value, BaseExceptionGroup):
        assert caught.group_contains(Crash)
    state = RunState.loads((await store.load("r")).data)
    assert state.progress is not None and sorted(state.progress.in_flight) == ["c1", "c2"]
    # issue_refund is not idempotent: the resumed run asks before running it again;
    # lookup_order is, but its batch waits too (nothing of a batch runs before all may).
    paused = await build(store, effects).resume("r")
    assert paused.stop_reason == "paused"
    assert [(p.tool, p.kind) for p in paused.pending] == [("issue_refund", "interrupted")]
    assert (await store.load("r")).status == "paused"
    before = dict(effects.counts)
    result = await build(store, effects).resume("r", {paused.pending[0].id: True})
    assert result.stop_reason == "final_answer"
    assert effects.counts["issue_refund"] == before["issue_refund"] + 1
    # lookup_order is idempotent: run again. (A sync tool's worker thread cannot be
    # interrupted: cut short by the crash, it may still have finished in the background.)
    assert effects.counts.get("lookup_order", 0) >= before.get("lookup_order", 0) + 1
    # Marked idempotent, it is re-run without asking.
    effects2 = Effects()
    crashed[0] = False
    effects2.hit = crash_in_refund  # type: ignore[method-assign]
    with pytest.raises((Crash, BaseExceptionGroup)):
        await build(store, effects2, refund_idempotent=True).run("refund", run_id="r2")
    done = await build(store, effects2, refund_idempotent=True).resume("r2")
    assert done.stop_reason == "final_answer"


async def test_approval_pauses_the_whole_batch_and_resumes_with_decisions(
    store: CheckpointStore,
) -> None:
    effects = Effects()
    paused = await build(store, effects, amount=250.0).run("refund 250", run_id="r")
    assert paused.stop_reason == "paused" and paused.output is None
    (approval,) = paused.pending
    assert approval.tool == "issue_refund" and approval.kind == "approval"
    assert approval.arguments == {"order_id": "A1", "amount": 250.0}
    assert approval.tool_call_id == "c2" and approval.node == "billing"
    assert effects.read() == {}  # not even the lookup of the same batch ran
    assert (await store.load("r")).status == "paused"
    # The paused run's transcript ends with the model's calls, unanswered.
    assert [m.role for m in paused.transcript][-1] == "assistant"

    result = await build(store, effects, amount=250.0).resume(
        "r", {approval.id: Decision.approve()}
    )
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}
    assert result.output == "Done: " + json.dumps({"refunded": "A1", "amount": 250.0})
    assert result.path == ("triage", "billing")  # the whole run's path


async def test_a_rejection_reaches_the_model_as_the_calls_error(store: CheckpointStore) -> None:
    effects = Effects()
    paused = await build(store, effects, amount=250.0).run("refund 250", run_id="r")
    decision = {paused.pending[0].id: Decision.reject("refunds over 100 need a manager")}
    result = await build(store, effects, amount=250.0).resume("r", decision)
    assert effects.read() == {"lookup_order": 1}
    answer = next(
        m for m in result.transcript if isinstance(m, ToolMessage) and m.tool_call_id == "c2"
    )
    assert answer.is_error
    assert json.loads(answer.content) == {
        "error": "rejected",
        "message": "A reviewer did not approve this call: refunds over 100 need a manager. "
        "It did not run.",
    }
    assert result.output.startswith("Done: ")


async def test_decisions_must_match_the_pending_approvals(store: CheckpointStore) -> None:
    paused = await build(store, Effects(), amount=250.0).run("refund 250", run_id="r")
    runner = build(store, Effects(), amount=250.0)
    with pytest.raises(RunNotResumable, match="missing apr_"):
        await runner.resume("r")
    with pytest.raises(RunNotResumable, match="no pending approval has the id"):
        await runner.resume("r", {paused.pending[0].id: True, "apr_bogus": False})
    await runner.resume("r", {paused.pending[0].id: True})
    with pytest.raises(RunNotResumable, match="it has finished"):
        await runner.resume("r")


async def test_two_resumers_of_one_run_conflict(store: CheckpointStore) -> None:
    """Two processes resuming the same paused run from the same checkpoint: the store's
    optimistic versioning lets one go on and stops the other at its first save."""
    paused = await build(store, Effects(), amount=250.0).run("refund 250", run_id="r")
    decision = {paused.pending[0].id: True}
    loaded = 0
    both = anyio.Event()
    real_load = store.load

    async def load_together(run_id: str) -> Any:
        nonlocal loaded
        checkpoint = await real_load(run_id)
        loaded += 1
        if loaded == 2:
            both.set()
        await both.wait()  # neither saves before both have read the same version
        return checkpoint

    store.load = load_together  # type: ignore[method-assign]
    effects = Effects()
    results: list[Any] = []

    async def resume() -> None:
        try:
            results.append(await build(store, effects, amount=250.0).resume("r", decision))
        except CheckpointConflict as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(resume)
        group.start_soon(resume)
    assert sorted(type(r).__name__ for r in results) == ["CheckpointConflict", "GraphResult"]
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}


async def test_a_conversation_lives_in_the_store(store: CheckpointStore) -> None:
    effects = Effects()
    runner = build(store, effects)
    first = await runner.run("refund please", conversation_id="conv")
    assert first.conversation_id == "conv"
    # Another runner (another replica) continues it from the store alone.
    model = ScriptedModel([Reply.text("You are welcome.")])
    other = build(store, effects, model=model)
    second = await other.run("thanks", conversation_id="conv")
    assert second.output == "You are welcome."
    assert dumped(second.transcript[: len(first.transcript)]) == dumped(first.transcript)
    assert second.decision is not None and second.decision.intent == "chat"
    assert [c.seq for c in await store.list(conversation_id="conv")] == [2, 1]
    assert dumped(await runner.transcript("conv")) == dumped(second.transcript)
    assert await runner.transcript("new") == ()


async def test_a_conversation_with_a_paused_run_refuses_a_new_message(
    store: CheckpointStore,
) -> None:
    runner = build(store, Effects(), amount=250.0)
    paused = await runner.run("refund 250", conversation_id="conv")
    with pytest.raises(CheckpointConflict, match="resume it"):
        await runner.run("hello?", conversation_id="conv")
    await runner.resume(paused.run_id, {paused.pending[0].id: True})
    model = ScriptedModel([Reply.text("Hi.")])
    assert (await build(store, Effects(), model=model).run("hi", conversation_id="conv")).output
    # The resumed run kept its place; the message after it took the next one.
    latest = await store.latest("conv")
    assert latest is not None and latest.seq == 2


async def test_a_failed_run_is_saved_and_resumes_from_its_last_step(
    store: CheckpointStore,
) -> None:
    expected = await uninterrupted()
    model = ScriptedModel([Reply.call("transfer_to_billing", {}, id="t1"), Fault.server_error()])
    effects = Effects()
    runner = build(store, effects, model=model)
    with pytest.raises(ModelAPIError) as caught:
        await runner.run("I want a refund", run_id="r")
    checkpoint = await store.load("r")
    state = RunState.loads(checkpoint.data)
    assert checkpoint.status == "failed"
    assert state.error is not None and state.error["type"] == "ModelAPIError"
    assert len(state.transcript) == len(caught.value.transcript)
    # The endpoint is back: the run goes on from the step that failed.
    result = await build(store, effects).resume("r")
    assert dumped(result.transcript) == dumped(expected.transcript)
    assert effects.read() == {"lookup_order": 1, "issue_refund": 1}
    with pytest.raises(RunNotResumable, match="finished"):
        await runner.resume("r")


async def test_a_cancelled_run_keeps_its_transcript_and_can_resume(
    store: CheckpointStore,
) -> None:
    started = anyio.Event()
    effects = Effects()

    async def slow_refund(order_id: str, amount: float) -> str:
        started.set()
        await anyio.sleep(60)
        return "never"

    def lookup_order(order_id: str) -> str:
        return "ok"

    model = ScriptedModel(script())
    tools = [Tool.from_function(slow_refund, name="issue_refund"), Tool.from_function(lookup_order)]
    graph = AgentGraph(
        [
            Agent(name="triage", model=model, handoffs=["billing"]),
            Agent(name="billing", model=model, tools=tools),
        ]
    )
    runner = Runner(None, graph, entry="triage", store=store)
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: runner.run("refund", run_id="r", conversation_id="c"))
        await started.wait()
        group.cancel_scope.cancel()
    checkpoint = await store.load("r")
    assert checkpoint.status == "cancelled"
    state = RunState.loads(checkpoint.data)
    answers = {m.tool_call_id: m for m in state.transcript if isinstance(m, ToolMessage)}
    assert set(answers) >= {"c1", "c2"} and answers["c2"].is_error  # every call answered
    assert state.resume_at is not None and state.resume_at < len(state.transcript)
    # Resumed (the client came back): the refund was in flight and is not idempotent.
    again = build(store, effects)
    paused = await again.resume("r")
    assert [(p.tool, p.kind) for p in paused.pending] == [("issue_refund", "interrupted")]
    result = await again.resume("r", {paused.pending[0].id: Decision.reject("ask the customer")})
    assert result.stop_reason == "final_answer"
    assert effects.read() == {"lookup_order": 1}
    # Once a later run continues the conversation, the old one cannot be resumed.
    await store.save(
        "r0", data=checkpoint.data, status="cancelled", expected_version=0,
        conversation_id="c", seq=0,
    )  # fmt: skip
    with pytest.raises(RunNotResumable, match="moved on"):
        await again.resume("r0")


async def test_an_incompatible_or_damaged_checkpoint_is_a_clear_error() -> None:
    store = MemoryStore()
    await build(store, Effects()).run("refund", run_id="r")
    data = json.loads((await store.load("r")).data)
    data["version"] = 99
    await store.save("old", data=json.dumps(data), status="running", expected_version=0)
    with pytest.raises(IncompatibleCheckpoint, match="format version 99"):
        await build(store, Effects()).resume("old")
    await store.save("junk", data="{not json", status="running", expected_version=0)
    with pytest.raises(StoreError, match="not JSON"):
        await build(store, Effects()).resume("junk")


async def test_approval_tools_need_a_store() -> None:
    with pytest.raises(ConfigurationError, match="issue_refund need approval"):
        build(None, Effects())

    def gated(x: int) -> int:
        return x

    gated_tool = Tool.from_function(gated, approval=True)
    agent = Agent(name="solo", model=ScriptedModel([]), tools=[gated_tool])
    with pytest.raises(ConfigurationError, match="in a Runner with a checkpoint store"):
        await agent.run("hi")
    with pytest.raises(ConfigurationError, match="conversation_id= needs a runner with a store"):
        Runner(None, AgentGraph([Agent(name="a", model=ScriptedModel([]))]), entry="a").start(
            "hi", conversation_id="c"
        )
