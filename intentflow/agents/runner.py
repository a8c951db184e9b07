"""`Runner`: route a message, then run the agent graph from the intent's entry.

One run: the router decides the intent (sticky to the conversation's current intent when
asked); the graph starts at the intent's entry node, where the intent's toolset and
tool_choice policy apply; each node runs the function-calling loop on the run's one
transcript; a transfer call moves to another node (its ``on_handoff`` hook sees the
payload), an answer either ends the run or, through the node's ``next_node`` or the graph's
transition edges, moves on. `RunGuards` watch the whole run.

The result (`GraphResult`) has the route decision, the output, the transcript, the node
path, usage (total and per node) and timings. A run that fails raises a typed `RunError`
carrying the whole transcript so far, the run's usage and the node path.

**Cancellation** (a client disconnect): cancel the scope the run is awaited in. Running
tools are cancelled; every tool call of the interrupted turn still gets a result in the
transcript (its own, or "cancelled"), so `GraphRun.transcript` is complete and can be kept
or continued. Start the run with `Runner.start` to hold the `GraphRun` whose transcript
survives the cancellation.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack

import anyio
import pydantic_core
import structlog
from pydantic import BaseModel

from intentflow.agents.agent import Agent, Paused, _Run, _ToolView
from intentflow.agents.checkpoint import Decision, PendingApproval, Phase, RunState
from intentflow.agents.events import (
    FinalOutput,
    GraphEvent,
    GuardNotice,
    HandoffTaken,
    NodeStarted,
    RouteDecided,
)
from intentflow.agents.graph import AgentGraph
from intentflow.agents.guards import Limits, RunGuards
from intentflow.agents.handoff import REROUTE, reroute_handoff
from intentflow.agents.loops import LoopPolicy
from intentflow.agents.result import RunResult, outcome_counts
from intentflow.context import RunContext
from intentflow.errors import (
    CheckpointConflict,
    ConfigurationError,
    InvalidTransition,
    RunError,
    RunNotResumable,
    StoreError,
)
from intentflow.messages import Message, Usage, UserMessage
from intentflow.router.decision import RouteDecision
from intentflow.router.intent import Intent
from intentflow.router.router import Router
from intentflow.stores.base import CheckpointStore, RunStatus
from intentflow.toolsets.choice import auto
from intentflow.toolsets.outcomes import OutcomeKind

__all__ = ["Conversation", "EventStream", "GraphResult", "GraphRun", "RunOptions", "Runner"]

OutputT = TypeVar("OutputT")
GraphStop = Literal["final_answer", "stop_tool", "max_turns", "no_intent", "paused"]

_log = structlog.get_logger("intentflow.runner")
_perf = time.perf_counter


class RunOptions(TypedDict, total=False):
    """What a run may be given besides the message (`Runner.run`, `stream`, `start`).

    Attributes:
        history: The conversation so far (a previous result's ``transcript``).
        deps: The application's dependencies, for tools and hooks (``ctx.deps``).
        state: The run's state (an instance of the graph's ``state_type``); a fresh one when
            not given and the graph has a state type.
        current_intent: The conversation's current intent, for sticky routing.
        run_id: The run's id (a new one by default).
        conversation_id: With a runner's store: the conversation this message continues.
            Its last run gives the history, the current intent and the state (unless given),
            and this run takes the next place in it.
    """

    history: Sequence[Message]
    deps: Any
    state: Any
    current_intent: str | None
    run_id: str | None
    conversation_id: str | None


@dataclass(frozen=True, slots=True)
class GraphResult(Generic[OutputT]):
    """What a routed graph run produced.

    Attributes:
        output: The final output (``None`` when no intent was chosen: ``stop_reason``
            ``"no_intent"``; the caller handles out-of-scope messages).
        decision: The router's decision (``None`` without a router).
        intent: The intent the run served.
        transcript: The whole conversation: the history, then every message of the run.
        new_messages: The messages this run added.
        path: The nodes the run went through, in order (a node visited twice appears twice).
        agent: The node that produced the output.
        usage: What the run consumed.
        usage_by_node: The same, per node.
        steps: One `RunResult` per node visit, in order.
        stop_reason: Why the run ended.
        guards: The guards that acted during the run (loop notes, refused transfers, ...).
        state: The run's state, as the nodes left it.
        run_id: The run's id (bound into its log events).
        duration: Seconds from start to finish.
        route_seconds: Of which, routing.
        pending: For a paused run (``stop_reason`` ``"paused"``), the tool calls waiting for a
            decision; pass decisions to `Runner.resume`.
        conversation_id: The conversation the run belongs to, with a store.
        out_of_intent_calls: Tool calls the model made to a tool of another intent than the
            run's (refused, and answered like a tool that does not exist). A sign of a
            confused model, or of a prompt trying to reach tools it was not given.

    A resumed run's ``steps`` and ``usage_by_node`` cover the node visits since it resumed;
    ``usage`` and ``path`` cover the whole run.
    """

    output: OutputT
    decision: RouteDecision | None
    intent: str | None
    transcript: tuple[Message, ...]
    new_messages: tuple[Message, ...]
    path: tuple[str, ...]
    agent: str | None
    usage: Usage
    usage_by_node: dict[str, Usage]
    steps: tuple[RunResult[Any], ...]
    stop_reason: GraphStop
    guards: tuple[str, ...]
    state: Any
    run_id: str
    duration: float
    route_seconds: float
    pending: tuple[PendingApproval, ...] = ()
    conversation_id: str | None = None
    out_of_intent_calls: int = 0

    @property
    def outcome_counts(self) -> Counter[OutcomeKind]:
        """How the tool calls of every step ended, by kind (see `RunResult.outcome_counts`)."""
        return outcome_counts(turn for step in self.steps for turn in step.turns)


class Runner:
    """Routes messages and runs the agent graph; the object an application embeds.

    Examples:
        >>> from intentflow.agents import Agent
        >>> from intentflow.router import Intent, Router, Rule, LexicalClassifier
        >>> from intentflow.testing import Reply, ScriptedModel
        >>> model = ScriptedModel([Reply.call("transfer_to_billing", {}), Reply.text("Refunded.")])
        >>> graph = AgentGraph([Agent(name="triage", model=model, handoffs=["billing"]),
        ...                     Agent(name="billing", model=model)])
        >>> router = Router([Intent("refund", examples=["refund please"], entry="triage"),
        ...                  Intent("chat", examples=["hello"], entry="triage")],
        ...                 LexicalClassifier())
        >>> result = Runner(router, graph).run_sync("I want a refund")
        >>> result.output, result.path
        ('Refunded.', ('triage', 'billing'))

    Args:
        router: Decides each message's intent; ``None`` runs every message from ``entry``.
        graph: The agent graph; validated here, with the intents' entries as entry points.
        entry: The node for messages without an intent (no router, the router abstained
            with no fallback, or an intent without an entry); ``None`` returns a
            ``"no_intent"`` result for the caller to handle instead.
        limits: The run-wide limits (default: the graph's).
        loop_policy: The loop detector's policy for runs (``None``: off).
        store: Where runs are checkpointed after every step (`SQLiteStore`, `PostgresStore`,
            `MemoryStore`); runs then survive restarts (`resume`), conversations live in the
            store (``conversation_id=``), and tools may require approval. ``None``: runs live
            in memory only.

    Raises:
        ConfigurationError: Listing every problem: the graph's, intents whose entry is not
            a node, and intents whose toolset and policy cannot work at their entry.
    """

    def __init__(
        self,
        router: Router | None,
        graph: AgentGraph,
        *,
        entry: str | None = None,
        limits: Limits | None = None,
        loop_policy: LoopPolicy | None = LoopPolicy(),  # noqa: B008 - frozen, shared safely
        store: CheckpointStore | None = None,
    ) -> None:
        self.router = router
        self.graph = graph
        self.entry = entry
        self.limits = limits or graph.limits
        self.loop_policy = loop_policy
        self.store = store
        intents = list(router.intents.values()) if router is not None else []
        # Which intents offer each tool name, to tell a call to another intent's tool (counted
        # in `GraphResult.out_of_intent_calls`) from a made-up name; the model hears the same.
        self._tool_intents: dict[str, set[str]] = defaultdict(set)
        for intent in intents:
            for name in intent.tool_names:
                self._tool_intents[name].add(intent.name)
        entries = [i.entry for i in intents if i.entry is not None]
        if entry is not None:
            entries.append(entry)
        if not entries:
            raise ConfigurationError(
                "the runner has no entry point: give intents an entry, or pass entry=..."
            )
        problems = graph.problems(entries)
        self._views: dict[tuple[str, str | None], _ToolView] = {}
        nodes = set(graph.nodes)
        for intent in intents:
            start = intent.entry or entry
            if start is not None and start in nodes:
                try:
                    self._view(start, intent)
                except (ConfigurationError, ValueError) as exc:
                    problems.append(f"intent {intent.name!r} at {start!r}: {exc}")
        if store is None:
            gated = sorted({n for v in self._views.values() for n in v.box.gated})
            for node in graph.nodes:
                try:
                    view = self._view(node, None)
                except (ConfigurationError, ValueError):
                    continue  # a node usable only at an intent's entry: checked above
                gated.extend(n for n in view.box.gated if n not in gated)
            if gated:
                problems.append(
                    f"tools {', '.join(sorted(gated))} need approval, and a run can only "
                    "pause for it with a checkpoint store: pass store=... (MemoryStore() "
                    "for one process)"
                )
        if problems:
            raise ConfigurationError(
                "the runner cannot be built:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        self._visit_caps = graph.visit_caps()

    def _view(self, node: str, intent: Intent | None) -> _ToolView:
        """The tools node ``node`` sees: its own plus transfers, or at an intent's entry the
        intent's toolset and policy (an intent that leaves tool_choice at ``"auto"`` and has no
        toolset keeps the agent's own)."""
        entry_intent = None
        if intent is not None and (intent.entry or self.entry) == node:
            entry_intent = intent  # intents without an entry start at the runner's
        key = (node, entry_intent.name if entry_intent is not None else None)
        view = self._views.get(key)
        if view is None:
            agent = self.graph.agent(node)
            handoffs = self.graph.handoffs(node)
            if agent.can_reroute and self.router is not None:
                handoffs = (*handoffs, reroute_handoff())
            if entry_intent is None or (
                entry_intent.toolset is None and entry_intent.policy == auto()
            ):
                box = agent.toolbox(handoffs=handoffs)
                view = box.view(None)
            else:
                tools = list(entry_intent.toolset) if entry_intent.toolset is not None else []
                box = agent.toolbox(tools=tools, policy=entry_intent.policy, handoffs=handoffs)
                allowed = [t.api_name for t in tools] if entry_intent.toolset is not None else None
                view = box.view(allowed)
            self._views[key] = view
        return view

    # ------------------------------------------------------------------ running

    def start(self, message: str | Message, **options: Unpack[RunOptions]) -> GraphRun:
        """A run, not yet started: ``await run.execute()`` runs it; its ``transcript``,
        ``path`` and ``usage`` can be read while it runs and after it is cancelled.
        ``options`` are those of `RunOptions`."""
        run = GraphRun(
            self,
            message,
            options.get("history", ()),
            options.get("deps"),
            options.get("state"),
            options.get("current_intent"),
            options.get("run_id"),
        )
        conversation_id = options.get("conversation_id")
        if conversation_id is not None:
            if self.store is None:
                raise ConfigurationError(
                    "conversation_id= needs a runner with a store (Runner(..., store=...))"
                )
            run.conversation_id = conversation_id
            run._load_conversation = "history" not in options
        return run

    async def resume(
        self,
        run_id: str,
        decisions: Mapping[str, Decision | bool] | None = None,
        *,
        deps: Any = None,
        on_event: Callable[[GraphEvent], None] | None = None,
    ) -> GraphResult[Any]:
        """Continue a run from its last checkpoint: one paused for approval, one whose process
        died (at any step; another process may resume it), or one that failed or was
        cancelled (it goes back to its last step; the tool results written for its cancelled
        calls are dropped).

        Tool calls whose outcome was saved are not run again. A call that was running when
        the process died is run again if its tool is ``idempotent``; otherwise the run pauses
        again with a `PendingApproval` of kind ``"interrupted"`` for it.

        Args:
            run_id: The run.
            decisions: For a paused run, a decision for every pending approval, by its id:
                a `Decision`, or ``True``/``False`` (a rejection reaches the model as the
                call's error result, with the reason).
            deps: The application's dependencies (they are not saved with the run).
            on_event: As for `run`.

        Raises:
            RunNotResumable: The run has finished, its conversation has moved on to a later
                run, or the decisions do not match its pending approvals (missing, unknown).
            CheckpointNotFound: No such run.
            CheckpointConflict: Another process saved the run meanwhile (it is resuming it).
            ConfigurationError: The runner has no store.
        """
        store = self._require_store("resume()")
        checkpoint = await store.load(run_id)
        state = RunState.loads(checkpoint.data, run_id)
        if checkpoint.status == "finished" or state.phase == "done":
            raise RunNotResumable(run_id, f"it has {checkpoint.status}")
        # The store's row, not the document, says which conversation place the run holds.
        state.conversation_id, state.seq = checkpoint.conversation_id, checkpoint.seq
        if state.resume_at is not None:  # failed or cancelled: back to its last step
            state.transcript = state.transcript[: state.resume_at]
            state.resume_at = None
            state.error = None
        if state.conversation_id is not None and state.seq is not None:
            latest = await store.latest(state.conversation_id)
            if latest is not None and (latest.seq or 0) > state.seq:
                raise RunNotResumable(
                    run_id,
                    f"conversation {state.conversation_id!r} has moved on (run "
                    f"{latest.run_id!r} came after it)",
                )
        given = {
            key: value if isinstance(value, Decision) else Decision(approved=bool(value))
            for key, value in (decisions or {}).items()
        }
        pending = state.progress.approvals if state.progress is not None else []
        ids = {approval.id for approval in pending}
        unknown = sorted(set(given) - ids)
        missing = sorted(ids - set(given))
        if unknown or missing:
            detail = "; ".join(
                part
                for part in (
                    f"no pending approval has the id(s) {', '.join(unknown)}" if unknown else "",
                    f"decide every pending approval: missing {', '.join(missing)}"
                    if missing
                    else "",
                )
                if part
            )
            raise RunNotResumable(run_id, detail)
        if state.progress is not None:
            for approval in pending:
                state.progress.decisions[approval.tool_call_id] = given[approval.id]
            state.progress.approvals = []
        run = GraphRun(
            self,
            state.message,
            state.transcript[: state.history_len],
            deps,
            None,
            state.current_intent,
            run_id,
        )
        run._restore(state, checkpoint.version)
        return await run.execute(on_event)

    async def transcript(self, conversation_id: str) -> tuple[Message, ...]:
        """The conversation's transcript so far, from the store (empty for a new one)."""
        store = self._require_store("transcript()")
        latest = await store.latest(conversation_id)
        if latest is None:
            return ()
        return tuple(RunState.loads(latest.data, latest.run_id).transcript)

    def _require_store(self, what: str) -> CheckpointStore:
        if self.store is None:
            raise ConfigurationError(f"{what} needs a runner with a store (Runner(..., store=...))")
        return self.store

    async def run(
        self,
        message: str | Message,
        *,
        on_event: Callable[[GraphEvent], None] | None = None,
        **options: Unpack[RunOptions],
    ) -> GraphResult[Any]:
        """Route ``message`` and run the graph (see the module notes).

        Args:
            message: The user's message.
            on_event: Called synchronously with each `GraphEvent`; it must not block.
            **options: The conversation so far, dependencies, state, current intent and
                run id (`RunOptions`).

        Raises:
            RunError: A typed error (`GuardTripped`, `ModelError`, ...) carrying the
                transcript so far, the run's usage and the node path.
        """
        return await self.start(message, **options).execute(on_event)

    @asynccontextmanager
    async def stream(
        self, message: str | Message, **options: Unpack[RunOptions]
    ) -> AsyncIterator[EventStream]:
        """Run in the background and iterate over its events as they happen::

            async with runner.stream("Where is my order?") as events:
                async for event in events:
                    ...
            result = events.result

        Leaving the block early cancels the run cleanly (the partial transcript stays on
        ``events.run``). A run that fails raises its typed error from the iteration, after
        the events that led to it. ``options`` are those of `RunOptions`.
        """
        graph_run = self.start(message, **options)
        send, receive = anyio.create_memory_object_stream[GraphEvent](math.inf)
        events = EventStream(graph_run, receive)

        def deliver(event: GraphEvent) -> None:
            # After the consumer has left, the run is being cancelled; its last events (the
            # cancelled tool calls) have nowhere to go.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.send_nowait(event)

        async def produce() -> None:
            with send:
                try:
                    events.result = await graph_run.execute(deliver)
                except RunError as exc:  # delivered to the consumer after the events
                    events.error = exc

        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            try:
                yield events
            except Exception as exc:
                # Raised inside the task group it would come out wrapped in an exception
                # group; the consumer should catch the run's own typed error.
                failure = exc
            finally:
                tg.cancel_scope.cancel()
                receive.close()
        if failure is not None:
            raise failure

    def conversation(
        self, *, deps: Any = None, state: Any = None, history: Sequence[Message] = ()
    ) -> Conversation:
        """A `Conversation`: runs that carry the history, the intent and the state along."""
        return Conversation(self, deps=deps, state=state, history=history)

    def run_sync(
        self,
        message: str | Message,
        *,
        on_event: Callable[[GraphEvent], None] | None = None,
        backend: str = "asyncio",
        **options: Unpack[RunOptions],
    ) -> GraphResult[Any]:
        """`run` for scripts without an event loop."""
        call = functools.partial(self.run, message, on_event=on_event, **options)
        return anyio.run(call, backend=backend)


class Conversation:
    """Successive messages of one conversation: each run gets the transcript so far, the
    current intent (for sticky routing) and the run state the previous run left.

    Examples:
        >>> from intentflow.agents import Agent
        >>> from intentflow.testing import Reply, ScriptedModel
        >>> model = ScriptedModel([Reply.text("Hello!"), Reply.text("Still here.")])
        >>> runner = Runner(None, AgentGraph([Agent(name="a", model=model)]), entry="a")
        >>> chat = runner.conversation()
        >>> import anyio
        >>> anyio.run(chat.send, "hi").output, anyio.run(chat.send, "you there?").output
        ('Hello!', 'Still here.')
        >>> [m.role for m in chat.history]
        ['user', 'assistant', 'user', 'assistant']

    Attributes:
        runner: The runner.
        history: The transcript so far.
        intent: The intent of the last run (``None`` before the first, or after a no-intent
            run).
        state: The run state, carried from run to run.
        deps: The application's dependencies, given to every run.
        results: Every run's result, in order.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        deps: Any = None,
        state: Any = None,
        history: Sequence[Message] = (),
    ) -> None:
        self.runner = runner
        self.deps = deps
        self.state = state
        self.history: list[Message] = list(history)
        self.intent: str | None = None
        self.results: list[GraphResult[Any]] = []

    async def send(
        self, message: str | Message, *, on_event: Callable[[GraphEvent], None] | None = None
    ) -> GraphResult[Any]:
        """Run one message. A run that fails still extends the history with what it did
        (every tool call answered), so the conversation can go on; the error is re-raised."""
        try:
            result = await self.runner.run(
                message,
                history=self.history,
                deps=self.deps,
                state=self.state,
                current_intent=self.intent,
                on_event=on_event,
            )
        except RunError as exc:
            if exc.transcript:
                self.history = list(exc.transcript)
            raise
        self.history = list(result.transcript)
        self.intent = result.intent
        self.state = result.state
        self.results.append(result)
        return result


class EventStream:
    """The events of a streamed run (see `Runner.stream`); iterate with ``async for``.

    Attributes:
        run: The run (its transcript so far, its path).
        result: The result, once the run has finished.
        error: The typed error the run ended with, if it failed.
    """

    def __init__(self, run: GraphRun, receive: Any) -> None:
        self.run = run
        self.result: GraphResult[Any] | None = None
        self.error: RunError | None = None
        self._receive = receive

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> GraphEvent:
        try:
            event: GraphEvent = await self._receive.receive()
        except anyio.EndOfStream:
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None
        return event


class GraphRun:
    """One run of a `Runner`, whose progress can be read while it runs (see `Runner.start`).

    Attributes:
        transcript: The run's transcript so far (history included).
        path: The nodes entered so far.
        decision: The route decision, once made.
        usage: The usage so far.
    """

    def __init__(
        self,
        runner: Runner,
        message: str | Message,
        history: Sequence[Message],
        deps: Any,
        state: Any,
        current_intent: str | None,
        run_id: str | None,
    ) -> None:
        self.runner = runner
        self.message = UserMessage(content=message) if isinstance(message, str) else message
        self.history = tuple(history)
        self.transcript: list[Message] = [*history, self.message]
        graph = runner.graph
        self._fresh_state = state is None
        if state is None and graph.state_type is not None:
            state = graph.state_type()
        self.state = state
        self.current_intent = current_intent
        self.context: RunContext[Any] = RunContext(deps, state=state)
        if run_id is not None:
            self.context = replace(self.context, run_id=run_id)
        self.decision: RouteDecision | None = None
        self.usage_by_node: dict[str, Usage] = defaultdict(Usage)
        self.steps: list[RunResult[Any]] = []
        self.guards = RunGuards(
            runner.limits,
            runner.loop_policy,
            runner._visit_caps,
            graph.cycle_caps,
        )
        self._started = False
        self._route_seconds = 0.0
        self._excluded: set[str] = set()
        # Durable runs (a runner with a store).
        self.store = runner.store
        self.conversation_id: str | None = None
        self.seq: int | None = None
        self.status: RunStatus = "running"
        self._load_conversation = False
        self._version = 0
        self._resumed: RunState | None = None
        self._output: Any = None
        self._error: dict[str, str] | None = None
        self._node: str | None = None  # the node at work, for the last checkpoint
        self._last_step: RunState | None = None

    def _restore(self, state: RunState, version: int) -> None:
        """Take a checkpoint's state back, to resume from it."""
        graph = self.runner.graph
        self._resumed = state
        self._version = version
        self.conversation_id, self.seq = state.conversation_id, state.seq
        self.transcript = list(state.transcript)
        self.decision = state.decision
        self._excluded = set(state.excluded)
        for node, usage in state.usage_by_node.items():
            self.usage_by_node[node] = usage
        if state.guards is not None:
            self.guards.restore(state.guards)
        if state.state is not None and graph.state_type is not None:
            self.state = graph.state_type.model_validate(state.state)
            self.context = replace(self.context, state=self.state)
        if state.intent is not None:
            self.context = replace(self.context, intent=state.intent)

    async def _open_conversation(self) -> None:
        """Continue the conversation's last run: its transcript, intent and state."""
        assert self.store is not None and self.conversation_id is not None
        latest = await self.store.latest(self.conversation_id)
        if latest is None:
            self.seq = 1
            return
        self.seq = (latest.seq or 0) + 1
        if latest.status in ("running", "paused"):
            raise CheckpointConflict(
                self.context.run_id,
                None,
                None,
                f"conversation {self.conversation_id!r} has a run {latest.status} "
                f"({latest.run_id!r}); resume it (Runner.resume) before sending a new message",
            )
        if not self._load_conversation:
            return
        last = RunState.loads(latest.data, latest.run_id)
        self.history = tuple(last.transcript)
        self.transcript = [*self.history, self.message]
        if self.current_intent is None:
            self.current_intent = last.intent
        graph = self.runner.graph
        if last.state is not None and graph.state_type is not None and self._fresh_state:
            self.state = graph.state_type.model_validate(last.state)
            self.context = replace(self.context, state=self.state)

    def _snapshot(self, phase: Phase, node: str | None, run: _Run | None) -> RunState:
        state = self.state
        if state is not None and not isinstance(state, BaseModel):
            raise ConfigurationError(
                "a durable run's state must be a Pydantic model (the graph's state_type), "
                f"got {type(state).__name__}"
            )
        # Valid by construction (see _Run.snapshot): built without validating it again.
        return RunState.model_construct(
            run_id=self.context.run_id,
            conversation_id=self.conversation_id,
            seq=self.seq,
            status=self.status,
            phase=phase,
            message=self.message,
            history_len=len(self.history),
            transcript=list(self.transcript),  # a copy: the run goes on appending
            current_intent=self.current_intent,
            decision=self.decision,
            intent=self.context.intent,
            excluded=sorted(self._excluded),
            node=node,
            progress=run.snapshot(phase) if run is not None else None,
            guards=self.guards.snapshot(),
            usage_by_node=dict(self.usage_by_node),
            state=state.model_dump(mode="json") if state is not None else None,
            output=pydantic_core.to_jsonable_python(self._output, fallback=str),
            error=self._error,
        )

    async def _save(self, phase: Phase, node: str | None = None, run: _Run | None = None) -> None:
        if self.store is None:
            return
        await self._write(self._snapshot(phase, node, run))

    async def _write(self, state: RunState) -> None:
        assert self.store is not None
        data = state.dumps()
        if state.phase != "done":
            self._last_step = state  # where a failed or cancelled run resumes from
        self._version = await self.store.save(
            self.context.run_id,
            data=data,
            status=self.status,
            expected_version=self._version,
            conversation_id=self.conversation_id,
            seq=self.seq,
        )

    async def _save_node(self, run: _Run, phase: Phase) -> None:
        self.status = "paused" if run.approvals else "running"
        await self._save(phase, run.agent.name, run)

    async def _save_end(self, status: RunStatus, node: str | None) -> None:
        """The last checkpoint of a run that ended (kept even while being cancelled).

        A failed or cancelled run keeps its last step's checkpoint to resume from, with the
        whole transcript as the run left it (every tool call answered) for the conversation
        to go on from; ``resume_at`` says how much of it the step had.
        """
        if self.store is None:
            return
        self.status = status
        last = self._last_step
        if status == "finished" or last is None:
            state = self._snapshot("done", node, None)
        else:
            state = last.model_copy(
                update={
                    "status": status,
                    "transcript": list(self.transcript),
                    "resume_at": len(last.transcript),
                    "error": self._error,
                }
            )
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + 10
            await self._write(state)

    @property
    def path(self) -> tuple[str, ...]:
        """The nodes entered so far."""
        return tuple(self.guards.path)

    @property
    def usage(self) -> Usage:
        """The run's usage so far."""
        return self.guards.usage

    async def execute(
        self, on_event: Callable[[GraphEvent], None] | None = None
    ) -> GraphResult[Any]:
        """Run it (once)."""
        if self._started:
            raise RuntimeError("a GraphRun runs once; start another with Runner.start")
        self._started = True
        started = _perf()
        node: str | None = None
        try:
            output, node, stop = await self._execute(on_event, started)
        except Paused as paused:
            return self._result(None, node, "paused", started, paused.approvals)
        except RunError as exc:
            if self.store is not None and not isinstance(exc, StoreError):
                self._error = {"type": type(exc).__name__, "message": str(exc)}
                await self._save_end("failed", self._node)
            raise
        except anyio.get_cancelled_exc_class():
            await self._save_end("cancelled", self._node)
            raise
        self._output = output
        await self._save_end("finished", node)
        return self._result(output, node, stop, started)

    async def _execute(
        self, on_event: Callable[[GraphEvent], None] | None, started: float
    ) -> tuple[Any, str | None, GraphStop]:
        runner = self.runner
        log = _log.bind(run_id=self.context.run_id)
        self._node = None

        def notice(guard: str, detail: str) -> None:
            log.info("graph.guard", node=self._node, guard=guard, detail=detail)
            if on_event is not None:
                on_event(GuardNotice(self._node or "", guard, detail))

        self.guards.on_trip = notice
        saver = self._save_node if self.store is not None else None
        resumed, self._resumed = self._resumed, None
        intent: Intent | None = None
        progress = None
        if resumed is not None and resumed.node is not None:
            node = resumed.node
            if resumed.intent is not None and runner.router is not None:
                intent = runner.router.intents.get(resumed.intent)
            progress = resumed.progress
            log = log.bind(intent=self.context.intent)
            log.info("graph.run.resumed", node=node, phase=resumed.phase)
        else:
            if self._load_conversation or (self.conversation_id and self.seq is None):
                await self._open_conversation()
            if resumed is None:
                await self._save("start")
            if runner.router is not None:
                route_start = _perf()
                self.decision = await runner.router.route(self._text(), current=self.current_intent)
                self._route_seconds = _perf() - route_start
                if on_event is not None:
                    on_event(RouteDecided(self.decision))
                if self.decision.intent is not None:
                    intent = runner.router.intents[self.decision.intent]
            entry = (
                intent.entry if intent is not None and intent.entry is not None else runner.entry
            )
            if intent is not None:
                self.context = replace(self.context, intent=intent.name)
                log = log.bind(intent=intent.name)
            if entry is None:
                log.info(
                    "graph.run.no_intent", reason=self.decision.reason if self.decision else ""
                )
                return None, None, "no_intent"
            node = entry
            self.guards.enter(node)
            log.info("graph.run.started", entry=node)
            if on_event is not None:
                on_event(NodeStarted(node, "entry"))
        graph = runner.graph
        try:
            while True:
                self._node = node
                agent: Agent[Any] = graph.agent(node)
                ctx = replace(self.context, agent=node)
                result = await agent._run_node(
                    ctx=ctx,
                    transcript=self.transcript,
                    first_new=len(self.history),
                    view=runner._view(node, intent),
                    guards=self.guards,
                    on_event=on_event,
                    progress=progress,
                    saver=saver,
                )
                progress = None
                self.steps.append(result)
                self.usage_by_node[node] = self.usage_by_node[node] + result.usage
                if result.handoff is not None and result.handoff.target == REROUTE:
                    entry, intent = await self._reroute(node, intent, result, on_event)
                    log = log.bind(intent=intent.name if intent is not None else None)
                    if entry is None:
                        return None, None, "no_intent"
                    source, node = node, entry
                    self.guards.enter(node)
                    if on_event is not None:
                        on_event(NodeStarted(node, "reroute", source))
                    continue
                if result.handoff is not None:
                    handoff = result.handoff
                    log.info("graph.handoff", source=node, target=handoff.target)
                    if on_event is not None:
                        on_event(HandoffTaken(node, handoff.target, handoff.payload))
                    source, node = node, handoff.target
                    await graph.agent(node).on_handoff(replace(ctx, agent=node), handoff)
                    self.guards.enter(node)
                    if on_event is not None:
                        on_event(NodeStarted(node, "handoff", source))
                    continue
                target = await self._next(agent, ctx, result)
                if target is None:
                    break
                refusal = self.guards.check_handoff(node, target)
                if refusal is not None:  # a capped transition: this node's answer stands
                    log.info("graph.transition.refused", source=node, target=target)
                    break
                log.info("graph.transition", source=node, target=target)
                source, node = node, target
                self.guards.enter(node)
                if on_event is not None:
                    on_event(NodeStarted(node, "transition", source))
        except Paused as paused:
            log.info("graph.run.paused", node=node, pending=len(paused.approvals))
            raise
        except RunError as exc:
            exc.transcript = tuple(self.transcript)
            exc.usage = self.usage
            exc.path = self.path
            log.warning(
                "graph.run.failed", error=type(exc).__name__, message=str(exc), path=self.path
            )
            raise
        last = self.steps[-1]
        if on_event is not None:
            on_event(FinalOutput(node, last.turns[-1].turn if last.turns else 0, last.output))
        stop: GraphStop = "stop_tool" if last.stop_reason == "stop_tool" else (
            "max_turns" if last.stop_reason == "max_turns" or "max_steps" in self.guards.tripped
            else "final_answer"
        )  # fmt: skip
        log.info(
            "graph.run.finished",
            path=self.path,
            stop_reason=stop,
            out_of_intent_calls=self._out_of_intent_calls(),
            requests=self.usage.requests,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            seconds=round(_perf() - started, 4),
        )
        return last.output, node, stop

    async def _reroute(
        self,
        node: str,
        intent: Intent | None,
        result: RunResult[Any],
        on_event: Callable[[GraphEvent], None] | None,
    ) -> tuple[str | None, Intent | None]:
        """Route the user's message again, away from the intents tried so far."""
        router = self.runner.router
        assert router is not None  # request_reroute is only offered with a router
        if intent is not None:
            self._excluded.add(intent.name)
        reason = getattr(result.handoff.payload if result.handoff else None, "reason", "")
        start = _perf()
        self.decision = await router.route(self._text(), exclude=self._excluded)
        self._route_seconds += _perf() - start
        _log.info(
            "graph.reroute",
            run_id=self.context.run_id,
            node=node,
            reason=reason,
            intent=self.decision.intent,
        )
        if on_event is not None:
            on_event(RouteDecided(self.decision))
        new = router.intents[self.decision.intent] if self.decision.intent is not None else None
        self.context = replace(self.context, intent=new.name if new is not None else None)
        entry = new.entry if new is not None and new.entry is not None else self.runner.entry
        return entry, new

    def _text(self) -> str:
        content = self.message.content
        return content if isinstance(content, str) else ""

    async def _next(
        self, agent: Agent[Any], ctx: RunContext[Any], result: RunResult[Any]
    ) -> str | None:
        graph = self.runner.graph
        if type(agent).next_node is not Agent.next_node:
            target = await agent.next_node(ctx, result)
            if target is not None and target not in graph.successors(agent.name):
                raise InvalidTransition(agent.name, target, graph.successors(agent.name))
            return target
        for transition in graph.transitions(agent.name):
            if await transition.holds(ctx, result):
                return transition.target
        return None

    def _result(
        self,
        output: Any,
        node: str | None,
        stop: GraphStop,
        started: float,
        pending: Sequence[PendingApproval] = (),
    ) -> GraphResult[Any]:
        transcript = tuple(self.transcript)
        return GraphResult(
            output=output,
            decision=self.decision,
            intent=self.context.intent,
            transcript=transcript,
            new_messages=transcript[len(self.history) :],
            path=self.path,
            agent=node,
            usage=self.usage,
            usage_by_node=dict(self.usage_by_node),
            steps=tuple(self.steps),
            stop_reason=stop,
            guards=tuple(self.guards.tripped),
            state=self.state,
            run_id=self.context.run_id,
            duration=_perf() - started,
            route_seconds=self._route_seconds,
            pending=tuple(pending),
            conversation_id=self.conversation_id,
            out_of_intent_calls=self._out_of_intent_calls(),
        )

    def _out_of_intent_calls(self) -> int:
        owners = self.runner._tool_intents
        intent = self.context.intent
        refused = (OutcomeKind.UNKNOWN_TOOL, OutcomeKind.PERMISSION_DENIED)
        return sum(
            1
            for step in self.steps
            for turn in step.turns
            for outcome in turn.outcomes
            if outcome.kind in refused and intent not in owners.get(outcome.called_as, {intent})
        )
