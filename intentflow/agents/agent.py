"""`Agent`: the function-calling loop of one agent, with its tool_choice policy and caps.

One turn: build the request (instructions, the transcript, the tools and the tool_choice of
this turn), call the model (streaming or not), execute the tool calls it asks for through the
`Executor` with the turn's allowed set, append the results in the model's order, then continue
or finish. The loop ends with a final answer (text, or a validated output model), with a tool
that ends the run, or at the turn cap (a graceful final answer, or `MaxTurnsExceeded`). Every
error raised out of a run carries the transcript so far.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import (
    Any,
    Generic,
    Literal,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)

import anyio
import structlog
from pydantic import BaseModel

from intentflow._logging import debug_enabled
from intentflow.agents.checkpoint import (
    Decision,
    NodeProgress,
    PendingApproval,
    Phase,
    SavedOutcome,
    TurnInfo,
    new_approval_id,
)
from intentflow.agents.events import (
    AgentEvent,
    FinalOutput,
    ModelDelta,
    ModelRequested,
    ModelResponded,
    ToolCallFinished,
    ToolCallStarted,
)
from intentflow.agents.guards import Limits, RunGuards, mask_arguments
from intentflow.agents.handoff import Handoff, HandoffRequest
from intentflow.agents.loops import LoopPolicy
from intentflow.agents.output import OutputMode, OutputSpec
from intentflow.agents.result import RunResult, StopReason, TurnRecord, outcome_counts
from intentflow.context import RunContext
from intentflow.errors import (
    ConfigurationError,
    InvalidToolArguments,
    InvalidToolJSON,
    MaxTurnsExceeded,
    ModelRefused,
    ModelResponseError,
    OutputValidationError,
    RunError,
    StoreError,
    ToolCallFailed,
    TranscriptTooLarge,
)
from intentflow.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)
from intentflow.models.base import (
    ForcedTool,
    Model,
    ModelRequest,
    ModelResponse,
    ResponseCompleted,
    ToolChoice,
)
from intentflow.models.openai_chat import Narrowing, OpenAIChatModel
from intentflow.toolsets.choice import ToolChoicePolicy, as_policy
from intentflow.toolsets.executor import Executor
from intentflow.toolsets.outcomes import OutcomeKind, ToolCallOutcome
from intentflow.toolsets.policy import ErrorBudget, ErrorPolicy
from intentflow.toolsets.tool import Handler, Tool
from intentflow.toolsets.toolset import Toolset

__all__ = ["FINAL_ANSWER_NOTE", "Agent", "AgentOptions", "Instructions", "OnMaxTurns"]

OutputT = TypeVar("OutputT")

Instructions = str | Callable[[RunContext[Any]], str | Awaitable[str]]
"""An agent's instructions: a string, or a function (or method) of the run context."""

OnMaxTurns = Literal["final_answer", "raise"]
"""What happens at the turn cap: ``final_answer`` makes the last turn a call with
tool_choice ``none`` (tools array unchanged, so the prompt cache holds) and a note that the
budget is spent; ``raise`` lets the last turn run as usual and raises `MaxTurnsExceeded` if
the model still asks for tools."""

_log = structlog.get_logger("intentflow.agent")
_perf = time.perf_counter

FINAL_ANSWER_NOTE = (
    "The tool-call budget for this request is spent. Do not call tools: answer now with the "
    "information you already have, and say briefly what you could not finish."
)


class AgentOptions(TypedDict, total=False):
    """The keyword arguments of `Agent`; each overrides the class attribute of that name."""

    name: str
    instructions: Instructions | None
    model: Model | str
    tools: Toolset | Iterable[Tool | Handler]
    tool_choice: ToolChoicePolicy | ToolChoice | str
    output_mode: OutputMode
    output_retries: int
    max_turns: int
    on_max_turns: OnMaxTurns
    budget_note_turns: int
    narrowing: Narrowing | None
    stream: bool
    parallel_tool_calls: bool | None
    stop_at_tools: Collection[str]
    error_policy: ErrorPolicy | None
    max_concurrency: int
    strict_tools: bool
    model_settings: Mapping[str, Any]
    handoffs: Sequence[str | Handoff]
    max_visits: int | None
    loop_policy: LoopPolicy | None
    can_reroute: bool
    max_argument_chars: int | None
    max_transcript_chars: int | None


class Agent(Generic[OutputT]):
    """An agent: instructions, a model, tools, a tool_choice policy, and the loop that runs them.

    Use it directly, or subclass it and set class attributes and override hooks (keyword
    arguments override class attributes)::

        class Support(Agent[str]):
            name = "support"
            instructions = "You answer questions about orders. Be brief."
            tools = support_tools
            tool_choice = sequence(forced("find_order"), then="auto")

            async def after_tool(self, ctx, outcome):
                metrics.count(outcome.tool_name, outcome.kind)

        result = await Support(model=OpenAIChatModel("gpt-4.1-mini")).run("Where is A-123?")

    Attributes:
        name: The agent's name (defaults to the class name for subclasses).
        instructions: A string, or a function/method of the run context returning one; sent
            as the first (system) message of every request, never stored in the transcript.
        model: A `Model`, or a model name for an `OpenAIChatModel` built from the environment.
        tools: The tools the agent has.
        tool_choice: The `ToolChoicePolicy` (or one choice: ``"auto"``, ``"required"``,
            ``"none"``, ``forced(name)``). A policy that forces tool calls forever must have an
            exit (a tool in ``stop_at_tools``); it is rejected when the agent is built.
        output_type: A Pydantic model the final answer must be, or ``None`` for text.
        output_mode: How structured output is asked for (`OutputMode`).
        output_retries: How many times an invalid final answer is sent back for correction.
        max_turns: The cap on model calls of one run (default 10).
        on_max_turns: What happens at the cap (`OnMaxTurns`, default ``final_answer``).
        budget_note_turns: On this many turns before the cap, tell the model how many turns
            are left (0: never).
        narrowing: How the allowed tools are sent (`Narrowing`); ``None`` follows the model
            (``send_allowed`` for models that do not say).
        stream: Call the model in streaming mode (deltas reach ``on_event``).
        parallel_tool_calls: Allow several tool calls per turn; ``None`` leaves the endpoint's
            default.
        stop_at_tools: Tools whose successful call ends the run; the output is that call's
            result (the content the model would have read, for a text agent).
        error_policy: What happens to each kind of tool failure.
        max_concurrency: How many tool calls of one turn may run at once.
        strict_tools: Send tools in strict mode where their schemas allow it.
        model_settings: Sampling settings for this agent's requests (``temperature``, ...).
        handoffs: In a graph, the agents this one may transfer the conversation to (names,
            or `Handoff` with a description and a payload model); each becomes a transfer
            tool. Ignored when the agent runs on its own.
        max_visits: In a graph, the most times one run may enter this agent (``None``: no
            cap of its own; a cycle through it then needs a cycle cap).
        loop_policy: The loop detector's policy (`LoopPolicy`); ``None`` turns it off.
        can_reroute: In a routed graph run, give the model a ``request_reroute`` tool to ask
            for the user's message to be routed again (excluding the current intent) when it
            does not fit this agent.
        max_argument_chars: Refuse a tool call whose argument text is longer than this,
            before parsing it (the model is told; ``None``: no limit).
        max_transcript_chars: Stop the run with `TranscriptTooLarge` before a model call
            when the transcript (history included) is larger than this, in characters of
            JSON (``None``: no limit).
    """

    name: str = ""
    instructions: Instructions | None = None
    model: Model | str | None = None
    tools: Toolset | Iterable[Tool | Handler] | None = None
    tool_choice: ToolChoicePolicy | ToolChoice | str = "auto"
    output_type: type[Any] | None = None
    output_mode: OutputMode = "response_format"
    output_retries: int = 2
    max_turns: int = 10
    on_max_turns: OnMaxTurns = "final_answer"
    budget_note_turns: int = 0
    narrowing: Narrowing | None = None
    stream: bool = False
    parallel_tool_calls: bool | None = None
    stop_at_tools: Collection[str] = frozenset()
    error_policy: ErrorPolicy | None = None
    max_concurrency: int = 4
    strict_tools: bool = True
    model_settings: Mapping[str, Any] = {}  # read-only by convention
    handoffs: Sequence[str | Handoff] = ()
    max_visits: int | None = None
    loop_policy: LoopPolicy | None = LoopPolicy()
    can_reroute: bool = False
    max_argument_chars: int | None = None
    max_transcript_chars: int | None = None

    @overload
    def __init__(
        self: Agent[str], *, output_type: None = None, **options: Unpack[AgentOptions]
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT], *, output_type: type[OutputT], **options: Unpack[AgentOptions]
    ) -> None: ...
    def __init__(
        self, *, output_type: type[Any] | None = None, **options: Unpack[AgentOptions]
    ) -> None:
        unknown = set(options) - set(AgentOptions.__annotations__)
        if unknown:
            raise TypeError(f"Agent got unknown options: {', '.join(sorted(unknown))}")
        for key, value in options.items():
            setattr(self, key, value)
        if output_type is not None:
            self.output_type = output_type
        self._build()

    # ------------------------------------------------------------------ build-time checks

    def _build(self) -> None:
        """Normalize the configuration and reject what cannot work, listing every problem."""
        problems: list[str] = []
        if not self.name:
            self.name = type(self).__name__ if type(self) is not Agent else "agent"
        label = f"agent {self.name!r}"
        model: Any = self.model  # checked at run time: agents are often configured untyped
        if isinstance(model, str):
            self.model = OpenAIChatModel(model)
        elif model is None:
            problems.append("no model: pass model=OpenAIChatModel(...) or a model name")
        elif not isinstance(model, Model):
            problems.append(f"model {model!r} does not implement the Model protocol")
        tools = self.tools
        self.toolset: Toolset = (
            tools if isinstance(tools, Toolset) else Toolset(f"{self.name}_tools", tools or ())
        )
        try:
            self.policy: ToolChoicePolicy = as_policy(self.tool_choice)
        except ValueError as exc:
            problems.append(str(exc))
            self.policy = ToolChoicePolicy()
        if self.max_turns < 1:
            problems.append(f"max_turns must be at least 1, not {self.max_turns}")
        if self.output_retries < 0:
            problems.append(f"output_retries must be >= 0, not {self.output_retries}")
        if self.on_max_turns not in ("final_answer", "raise"):
            problems.append(
                f"on_max_turns must be 'final_answer' or 'raise', not {self.on_max_turns!r}"
            )

        self.output_spec: OutputSpec[Any] | None = None
        all_tools = list(self.toolset)
        exits = set(self.stop_at_tools)
        if self.output_type is not None and self.output_type is not str:
            if not _is_model_class(self.output_type):
                problems.append(
                    f"output_type must be a Pydantic model class, not {self.output_type!r}"
                )
            else:
                self.output_spec = OutputSpec(self.output_type)
                if self.output_mode == "tool":
                    if self.output_spec.tool.api_name in self.toolset:
                        problems.append(
                            f"a tool is named {self.output_spec.tool.api_name!r}, the name of the "
                            "final-output tool; rename it"
                        )
                    all_tools.append(self.output_spec.tool)
                    exits.add(self.output_spec.tool.api_name)
                elif cast(str, self.output_mode) != "response_format":
                    problems.append(
                        f"output_mode must be 'response_format' or 'tool', not {self.output_mode!r}"
                    )
        if self.output_spec is not None and self.stop_at_tools:
            problems.append(
                "stop_at_tools cannot be combined with output_type: the run must end with "
                f"a {self.output_spec.output_type.__name__}; use output_mode='tool' for an "
                "output tool"
            )
        names = {t.api_name for t in all_tools}
        for stop in self.stop_at_tools:
            if stop not in names:
                problems.append(f"stop_at_tools names {stop!r}, which is not a tool of the agent")
        self.handoff_specs: tuple[Handoff, ...] = tuple(
            h if isinstance(h, Handoff) else Handoff(h) for h in self.handoffs
        )
        # In a graph, a transfer ends the agent's part of the run as an exit tool does.
        transfers = {h.tool_name for h in self.handoff_specs}
        problems += self.policy.problems(names | transfers, exits | transfers)
        if self.max_visits is not None and self.max_visits < 1:
            problems.append(f"max_visits must be at least 1, not {self.max_visits}")
        for option in ("max_argument_chars", "max_transcript_chars"):
            value = getattr(self, option)
            if value is not None and value < 2:
                problems.append(f"{option} must be at least 2 or None, not {value}")
        if problems:
            raise ConfigurationError(
                f"{label} cannot be built:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        self._all_tools: tuple[Tool, ...] = tuple(all_tools)
        self._exits = frozenset(exits)
        narrowing = self.narrowing or getattr(self.model, "narrowing", None)
        self._narrowing: Narrowing = (
            narrowing if narrowing in ("send_allowed", "allowed_tools") else "send_allowed"
        )
        self._own_toolbox: _Toolbox | None = None

    def toolbox(
        self,
        *,
        tools: Iterable[Tool] = (),
        policy: ToolChoicePolicy | None = None,
        handoffs: Sequence[Handoff] = (),
    ) -> _Toolbox:
        """The agent's tools with more added (an intent's tools, transfer tools) under a policy.

        Used by the graph runner; checked like the agent itself, so a policy that could never
        answer with these tools is a `ConfigurationError` here, at build time.
        """
        extra = [t for t in tools if t.api_name not in {x.api_name for x in self._all_tools}]
        return _Toolbox(self, (*self._all_tools, *extra), policy or self.policy, handoffs)

    # ------------------------------------------------------------------ hooks

    async def before_model(
        self, ctx: RunContext[Any], request: ModelRequest
    ) -> ModelRequest | None:
        """Called before each model call; return a changed request to send that instead."""
        return None

    async def after_model(
        self, ctx: RunContext[Any], response: ModelResponse
    ) -> ModelResponse | None:
        """Called after each model call; return a changed response to use that instead."""
        return None

    async def before_tool(self, ctx: RunContext[Any], call: ToolCall) -> None:
        """Called for each tool call of a turn, in the model's order, before the batch runs."""

    async def after_tool(self, ctx: RunContext[Any], outcome: ToolCallOutcome) -> None:
        """Called for each tool call's outcome, in the model's order, after the batch ran."""

    async def on_handoff(self, ctx: RunContext[Any], handoff: HandoffRequest) -> None:
        """In a graph, called on the agent receiving a transfer, before its first turn.

        ``handoff.payload`` is the validated payload; ``ctx.state`` the run's state, to
        update from it.
        """

    async def next_node(self, ctx: RunContext[Any], result: RunResult[Any]) -> str | None:
        """In a graph, the node to go to after this agent answered (``None``: the answer is
        the run's output).

        Override it to decide in code; the default follows the graph's transition edges
        (the first whose condition holds).
        """
        return None

    # ------------------------------------------------------------------ running

    async def run(
        self,
        input: str | Message | Sequence[Message],
        *,
        history: Sequence[Message] = (),
        deps: Any = None,
        context: RunContext[Any] | None = None,
        allowed: Collection[str] | None = None,
        on_event: Callable[[AgentEvent], None] | None = None,
    ) -> RunResult[OutputT]:
        """Run the loop on a new message until the agent has its output.

        Args:
            input: The user's message (a string), or messages to append to ``history``.
            history: The conversation so far (a previous result's ``transcript``).
            deps: Your dependencies for this run, given to tools and hooks in the context.
            context: A run context to continue (its ``run_id`` and ``intent`` are kept).
            allowed: Restrict the tools the model may see and call on this run to these names
                (an intent's toolset); ``None`` allows all of the agent's tools.
            on_event: Called synchronously with each `AgentEvent` as it happens; it must not
                block (to consume events in another task, send them into an anyio memory
                object stream).

        Returns:
            The output, the transcript, usage and per-turn records.

        Raises:
            MaxTurnsExceeded: The cap was reached with ``on_max_turns="raise"``.
            OutputValidationError: The final answer stayed invalid after ``output_retries``.
            ModelRefused: The model refused.
            ModelError: The model could not be called (typed subclasses).
            ToolCallFailed: The error policy chose to raise for a tool failure.


        Every error raised out of a run carries ``transcript`` and ``usage`` up to the failure.
        """
        if isinstance(input, str):
            new: list[Message] = [UserMessage(content=input)]
        elif isinstance(input, SystemMessage | UserMessage | AssistantMessage | ToolMessage):
            new = [input]
        else:
            new = list(input)
        if context is None:
            ctx: RunContext[Any] = RunContext(deps, agent=self.name)
        else:
            ctx = replace(context, agent=self.name, deps=deps if deps is not None else context.deps)
        guards = RunGuards(Limits(max_steps=1_000_000), self.loop_policy)
        if self._own_toolbox is None:
            # Built on the first run on its own: an agent that can only answer by a transfer
            # is fine in a graph, and only an error when run alone.
            self._own_toolbox = _Toolbox(self, self._all_tools, self.policy, ())
        if self._own_toolbox.gated:
            raise ConfigurationError(
                f"agent {self.name!r}: tools {', '.join(self._own_toolbox.gated)} need approval, "
                "and a run can only pause for it in a Runner with a checkpoint store "
                "(Runner(..., store=...))"
            )
        view = self._own_toolbox.view(allowed)
        run = _Run(self, ctx, list(history) + new, len(history), view, guards, on_event)
        return cast("RunResult[OutputT]", await run.execute())

    def run_sync(
        self,
        input: str | Message | Sequence[Message],
        *,
        history: Sequence[Message] = (),
        deps: Any = None,
        context: RunContext[Any] | None = None,
        allowed: Collection[str] | None = None,
        on_event: Callable[[AgentEvent], None] | None = None,
        backend: str = "asyncio",
    ) -> RunResult[OutputT]:
        """`run` for scripts without an event loop: starts one, runs, returns.

        In a notebook (which runs an event loop already), ``await agent.run(...)`` instead.

        Raises:
            RuntimeError: Called from inside a running event loop (``await agent.run`` there).
        """
        try:
            anyio.get_current_task()
        except Exception:  # no event loop in this thread (the error's type varies by version)
            pass
        else:
            raise RuntimeError(
                "Agent.run_sync() cannot run inside an event loop; use 'await agent.run(...)'"
            )
        call = functools.partial(
            self.run,
            input,
            history=history,
            deps=deps,
            context=context,
            allowed=allowed,
            on_event=on_event,
        )
        return anyio.run(call, backend=backend)

    async def _run_node(
        self,
        *,
        ctx: RunContext[Any],
        transcript: list[Message],
        first_new: int,
        view: _ToolView,
        guards: RunGuards,
        on_event: Callable[[AgentEvent], None] | None,
        progress: NodeProgress | None = None,
        saver: Saver | None = None,
    ) -> RunResult[Any]:
        """One visit of a graph node: the loop on the run's shared transcript (resumed from
        ``progress`` when given; ``saver`` checkpoints it after every step)."""
        run = _Run(self, ctx, transcript, first_new, view, guards, on_event, progress, saver)
        run.final_event = False
        return await run.execute()

    def __repr__(self) -> str:
        tools = list(self.toolset.names)
        return f"<{type(self).__name__} {self.name!r} model={self.model!r} tools={tools}>"

    # ------------------------------------------------------------------ internals

    async def instructions_for(self, ctx: RunContext[Any]) -> str | None:
        """The instructions for this run: the string, or what the function/method returns."""
        instructions = self.instructions
        if instructions is None or isinstance(instructions, str):
            return instructions
        value = instructions(ctx)
        if inspect.isawaitable(value):
            value = await value
        return value


class _Toolbox:
    """An agent's tools as one run sees them: the tools, exits, handoffs, policy, executor."""

    def __init__(
        self,
        agent: Agent[Any],
        tools: tuple[Tool, ...],
        policy: ToolChoicePolicy,
        handoffs: Sequence[Handoff],
    ) -> None:
        self.agent = agent
        self.policy = policy
        self.handoffs: dict[str, Handoff] = {h.tool_name: h for h in handoffs}
        transfer = [h.tool() for h in handoffs]
        taken = {t.api_name for t in tools}
        clash = sorted(taken & set(self.handoffs))
        if clash:
            raise ConfigurationError(
                f"agent {agent.name!r}: tools named like transfer tools: {', '.join(clash)}; "
                "rename them or give the handoffs another tool_name"
            )
        self.tools: tuple[Tool, ...] = (*tools, *transfer)
        self.exits = agent._exits | frozenset(self.handoffs)
        names = {t.api_name for t in self.tools}
        problems = policy.problems(names, self.exits)
        if problems:
            raise ConfigurationError(
                f"agent {agent.name!r} cannot run with this policy and these tools:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )
        self.executor = Executor(
            self.tools,
            policy=agent.error_policy,
            max_concurrency=agent.max_concurrency,
            max_argument_chars=agent.max_argument_chars,
        )
        self.sensitive = {t.api_name: t for t in self.tools if t.sensitive}
        #: Tools whose calls may need a person's approval (they need a durable run).
        self.gated = tuple(t.api_name for t in self.tools if t.approval is not False)
        self._views: dict[frozenset[str] | None, _ToolView] = {}

    def watched(
        self, outcomes: Sequence[ToolCallOutcome], calls: Sequence[ToolCall]
    ) -> tuple[list[ToolCallOutcome], list[ToolCall]]:
        """What the loop detector may see of a turn: no transfers (handoffs are watched on
        their own), and sensitive arguments masked, since its notes and errors quote calls."""
        kept = [o for o in outcomes if o.called_as not in self.handoffs]
        if not self.sensitive:
            return kept, list(calls)
        masked = []
        for outcome in kept:
            tool = self.sensitive.get(outcome.called_as)
            if tool is not None and outcome.arguments is not None:
                outcome = replace(outcome, arguments=mask_arguments(tool, outcome.arguments))
            masked.append(outcome)
        return masked, [c for c in calls if c.name not in self.sensitive]

    def view(self, allowed: Collection[str] | None) -> _ToolView:
        """The tools sent and allowed when the run is restricted to ``allowed``."""
        key = frozenset(allowed) if allowed is not None else None
        view = self._views.get(key)
        if view is None:
            agent = self.agent
            if key is not None:
                known = {t.api_name for t in self.tools}
                unknown = key - known
                if unknown:
                    raise ValueError(
                        f"allowed names tools agent {agent.name!r} does not have: "
                        f"{', '.join(sorted(unknown))}"
                    )
            view = _ToolView(self, key)
            if key is not None:
                problems = self.policy.problems(view.allowed, self.exits & view.allowed)
                if problems:
                    shown = ", ".join(sorted(key)) or "nothing"
                    raise ConfigurationError(
                        f"agent {agent.name!r} cannot run with allowed={{{shown}}}:\n"
                        + "\n".join(f"  - {p}" for p in problems)
                    )
            self._views[key] = view
        return view


class _ToolView:
    """What one allowed set means for requests: the tools sent and how they are restricted."""

    __slots__ = ("allowed", "allowed_tools", "box", "sent")

    def __init__(self, box: _Toolbox, allowed: frozenset[str] | None) -> None:
        agent = box.agent
        tools = box.tools
        spec = agent.output_spec
        self.box = box
        if allowed is not None:
            allowed = allowed | frozenset(box.handoffs)  # transfers are always allowed
            if spec is not None and agent.output_mode == "tool":
                allowed = allowed | {spec.tool.api_name}  # so is the output tool
        names = tuple(t.api_name for t in tools if allowed is None or t.api_name in allowed)
        self.allowed: frozenset[str] = frozenset(names)
        if allowed is None or len(names) == len(tools):
            self.sent = tools
            self.allowed_tools: tuple[str, ...] | None = None
        elif not names:  # an empty allowed_tools list is not a valid request
            self.sent = ()
            self.allowed_tools = None
        elif agent._narrowing == "allowed_tools":
            self.sent = tools
            self.allowed_tools = names
        else:
            self.sent = tuple(t for t in tools if t.api_name in self.allowed)
            self.allowed_tools = None


class Paused(Exception):
    """Raised out of a node's loop when its tool batch waits for decisions (the run's state
    is saved already); the graph run turns it into a paused result."""

    def __init__(self, approvals: Sequence[PendingApproval]) -> None:
        self.approvals = tuple(approvals)
        super().__init__(f"{len(self.approvals)} tool call(s) wait for a decision")


Saver = Callable[["_Run", Phase], Awaitable[None]]
"""Saves a durable run's checkpoint, given the node loop and where it is."""


class _Run:
    """The state of one run of one agent (one visit of a graph node)."""

    def __init__(
        self,
        agent: Agent[Any],
        ctx: RunContext[Any],
        transcript: list[Message],
        first_new: int,
        view: _ToolView,
        guards: RunGuards,
        on_event: Callable[[AgentEvent], None] | None,
        progress: NodeProgress | None = None,
        saver: Saver | None = None,
    ) -> None:
        self.agent = agent
        self.model = cast("Model", agent.model)
        self.ctx = ctx
        self.transcript = transcript  # shared with the caller: a graph run's one transcript
        self.first_new = first_new
        self.view = view
        self.box = view.box
        self.guards = guards
        self.emit = on_event
        self.usage = Usage()
        self.turns: list[TurnRecord] = []
        self.budget = ErrorBudget()
        self.started = _perf()
        self.handoff: HandoffRequest | None = None
        self.restrict_next = False
        self.sent = len(transcript)  # the transcript's length at the last model call
        self.size: int | None = None  # its size in JSON characters, when a limit needs it
        self.final_event = True  # a graph run reports its own final output
        # Durable runs: where the loop is, what its current batch recorded, and the saver.
        self.saver = saver
        self.progress = progress
        self.turn = 0
        self.retries_left = agent.output_retries
        self.turn_info: TurnInfo | None = None
        self.recorded: dict[str, ToolCallOutcome] = {}
        self.in_flight: list[str] = []
        self.approvals: list[PendingApproval] = []
        self.decisions: dict[str, Decision] = {}
        if progress is not None:
            self._resume_from(progress)
        self.log = _log.bind(run_id=ctx.run_id, agent=agent.name)
        if ctx.intent is not None:
            self.log = self.log.bind(intent=ctx.intent)

    def _resume_from(self, progress: NodeProgress) -> None:
        self.turn = progress.turn
        self.retries_left = progress.retries_left
        self.restrict_next = progress.restrict_next
        self.sent = progress.sent
        self.usage = progress.usage
        self.budget.per_tool.update(progress.errors_per_tool)
        self.budget.total = progress.errors_total
        self.turn_info = progress.turn_info
        self.recorded = {o.tool_call_id: o.outcome() for o in progress.recorded}
        self.in_flight = list(progress.in_flight)
        self.approvals = list(progress.approvals)
        self.decisions = dict(progress.decisions)

    def snapshot(self, phase: Phase) -> NodeProgress:
        """Where this loop is, for a checkpoint."""
        # Built from values that are valid by construction: validating again would cost
        # more than the JSON encoding, at every step of every durable run.
        return NodeProgress.model_construct(
            phase=phase,
            turn=self.turn,
            retries_left=self.retries_left,
            restrict_next=self.restrict_next,
            sent=self.sent,
            usage=self.usage,
            errors_per_tool=dict(self.budget.per_tool),
            errors_total=self.budget.total,
            turn_info=self.turn_info,
            recorded=[SavedOutcome.of(o) for o in self.recorded.values()],
            in_flight=list(self.in_flight),
            approvals=list(self.approvals),
            decisions=dict(self.decisions),
        )

    async def _save(self, phase: Phase) -> None:
        if self.saver is not None:
            await self.saver(self, phase)

    async def execute(self) -> RunResult[Any]:
        try:
            return await self._loop()
        except RunError as exc:
            exc.transcript = tuple(self.transcript)
            exc.usage = self.usage
            if exc.agent is None:
                exc.agent = self.agent.name
            self.log.warning(
                "agent.run.failed",
                error=type(exc).__name__,
                message=str(exc),
                turns=len(self.turns),
            )
            raise

    async def _loop(self) -> RunResult[Any]:
        agent = self.agent
        max_turns = agent.max_turns
        instructions = await agent.instructions_for(self.ctx)
        head: tuple[Message, ...] = (SystemMessage(content=instructions),) if instructions else ()
        progress, self.progress = self.progress, None
        # A resumed loop whose model already answered this turn goes straight to its calls.
        answered = progress is not None and progress.phase in ("response", "tools")
        first = progress.turn if progress is not None else 1
        for turn in range(first, max_turns + 1):
            self.turn = turn
            ctx = replace(self.ctx, turn=turn)
            graceful = agent.on_max_turns == "final_answer"
            capped = turn == max_turns and graceful and turn > 1
            if answered:
                answered = False
                info = self.turn_info
                last = self.transcript[-1]
                if info is None or not isinstance(last, AssistantMessage):
                    raise StoreError(
                        "the checkpoint holds no model response to resume from",
                        run_id=self.ctx.run_id,
                    )
                message, choice = last, info.tool_choice
                model_seconds = 0.0
            else:
                await self._save("model")
                message, choice, model_seconds = await self._ask(ctx, turn, capped, head)
            allowed = frozenset() if choice == "none" else self.view.allowed
            info = self.turn_info
            assert info is not None  # set by _ask, or restored with the response

            outcomes: list[ToolCallOutcome] = []
            tool_seconds = 0.0
            if message.tool_calls:
                tool_start = _perf()
                try:
                    outcomes = await self._run_tools(ctx, message.tool_calls, allowed, turn)
                finally:
                    tool_seconds = _perf() - tool_start
                    self._record(turn, info, outcomes, model_seconds, tool_seconds)
                if self.handoff is not None:
                    return self._finish(None, "handoff", turn)
                # Transfers are handled above: a refused one is not a stop.
                stop = next((o for o in outcomes if o.ok and o.called_as in agent._exits), None)
                if stop is not None:
                    output: Any = stop.content  # what the model would have read
                    if agent.output_spec is not None and self._is_output_tool(stop):
                        output = agent.output_spec.output_type.model_validate(stop.arguments)
                    return self._finish(output, "stop_tool", turn)
                if turn == max_turns:
                    raise MaxTurnsExceeded(
                        agent.name,
                        max_turns,
                        path=self.guards.path,
                        hint=(
                            "the last turn asked for an answer without tools and the model "
                            "called tools anyway (or max_turns is 1)"
                            if graceful
                            else None
                        ),
                    )
                continue

            self._record(turn, info, outcomes, model_seconds, tool_seconds)
            if message.refusal and not message.content:
                raise ModelRefused(message.refusal)
            correction, failure = self._check_final(message)
            if correction is None:
                return self._finish(failure, "max_turns" if capped else "final_answer", turn)
            if self.retries_left == 0 or turn == max_turns:
                attempts = agent.output_retries - self.retries_left + 1
                raise self._output_error(message, failure, attempts)
            self.retries_left -= 1
            self.transcript.append(UserMessage(content=correction))
        raise AssertionError("unreachable: the last turn returns or raises")  # pragma: no cover

    async def _ask(
        self, ctx: RunContext[Any], turn: int, capped: bool, head: tuple[Message, ...]
    ) -> tuple[AssistantMessage, ToolChoice, float]:
        """One model call: the request for this turn, the response appended to the transcript
        (and checkpointed). Returns the message, the tool choice sent, and the time it took."""
        agent = self.agent
        max_turns = agent.max_turns
        graceful = agent.on_max_turns == "final_answer"
        choice = self.box.policy.choice(turn)
        notes: list[str] = []
        added = self.transcript[self.sent : len(self.transcript)]
        self.sent = len(self.transcript)
        self._check_size(added)
        # Measuring messages costs a JSON dump each: only a token budget needs it.
        measure = added and self.guards.limits.token_budget is not None
        advice = self.guards.before_model(
            agent.name, sum(_json_chars(m) for m in added) if measure else 0
        )
        restrict, self.restrict_next = self.restrict_next or advice.restrict, False
        # Turns after this one on which tools may still be called.
        left = max_turns - turn - (1 if graceful and max_turns > 1 else 0)
        if capped or restrict:
            choice = self._final_choice()
        notes.extend(advice.notes)  # before the cap's note, which must come last
        if capped:
            notes.append(self._final_note())
        elif agent.budget_note_turns and 0 <= left < agent.budget_note_turns:
            notes.append(
                f"Budget: after this turn, {left} more turn{'s' * (left != 1)} can call "
                "tools; then you must answer."
                if left
                else "Budget: this is the last turn that can call tools; then you must answer."
            )
        request = ModelRequest(
            messages=(
                *head,
                *self.transcript,
                *(SystemMessage(content=n) for n in notes),
            ),
            tools=self.view.sent,
            tool_choice=choice,
            allowed_tools=self.view.allowed_tools,
            parallel_tool_calls=agent.parallel_tool_calls,
            output=(
                agent.output_spec.schema
                if agent.output_spec is not None and agent.output_mode == "response_format"
                else None
            ),
            strict_tools=agent.strict_tools,
            settings=agent.model_settings,
        )
        request = await agent.before_model(ctx, request) or request
        if self.emit is not None:
            self.emit(ModelRequested(agent.name, turn, request))
        model_start = _perf()
        response = await self._call_model(request, turn)
        model_seconds = _perf() - model_start
        response = await agent.after_model(ctx, response) or response
        self.usage = self.usage + response.usage
        self.guards.after_model(response.usage)
        message = response.message
        if message.agent != agent.name:
            message = message.model_copy(update={"agent": agent.name})
        self.transcript.append(message)
        if self.emit is not None:
            self.emit(ModelResponded(agent.name, turn, response))
        self.turn_info = TurnInfo(
            tool_choice=request.tool_choice,
            tools=request.tool_names,
            notes=tuple(notes),
            finish_reason=response.finish_reason,
            usage=response.usage,
        )
        self.recorded, self.in_flight, self.decisions, self.approvals = {}, [], {}, []
        await self._save("response")
        return message, choice, model_seconds

    def _final_choice(self) -> ToolChoice:
        spec = self.agent.output_spec
        if spec is not None and self.agent.output_mode == "tool":
            return ForcedTool(spec.tool.api_name)
        return "none"

    def _final_note(self) -> str:
        spec = self.agent.output_spec
        if spec is not None and self.agent.output_mode == "tool":
            return (
                "The turn budget for this request is spent. Call the "
                f"{spec.tool.api_name} tool now with your best answer from the information "
                "you already have."
            )
        return FINAL_ANSWER_NOTE

    def _is_output_tool(self, outcome: ToolCallOutcome) -> bool:
        spec = self.agent.output_spec
        return (
            spec is not None
            and outcome.tool_name == spec.tool.name
            and (self.agent.output_mode == "tool")
        )

    async def _call_model(self, request: ModelRequest, turn: int) -> ModelResponse:
        if not self.agent.stream:
            return await self.model.complete(request)
        response: ModelResponse | None = None
        emit = self.emit
        name = self.agent.name
        async with self.model.stream(request) as events:
            async for event in events:
                if isinstance(event, ResponseCompleted):
                    response = event.response
                elif emit is not None:
                    emit(ModelDelta(name, turn, event))
        if response is None:
            raise ModelResponseError(
                f"the stream from {self.model.name!r} ended without a complete response",
                model=self.model.name,
            )
        return response

    async def _run_tools(
        self,
        ctx: RunContext[Any],
        calls: tuple[ToolCall, ...],
        allowed: frozenset[str],
        turn: int,
    ) -> list[ToolCallOutcome]:
        agent = self.agent
        hooked = type(agent).before_tool is not Agent.before_tool
        if hooked:
            for call in calls:
                await agent.before_tool(ctx, call)
        emit = self.emit
        name = agent.name
        on_started = None if emit is None else (lambda c: emit(ToolCallStarted(name, turn, c)))
        on_finished = None if emit is None else (lambda o: emit(ToolCallFinished(name, turn, o)))
        finished: dict[str, ToolCallOutcome] = self.recorded  # kept by a durable run

        transfers = self.box.handoffs

        def record(outcome: ToolCallOutcome) -> None:
            finished[outcome.tool_call_id] = outcome
            # A transfer's event waits for the guards' verdict on it (_take_handoff), so the
            # event and the transcript say the same thing.
            if on_finished is not None and outcome.called_as not in transfers:
                on_finished(outcome)

        try:
            if self.saver is None:
                outcomes = await self.box.executor.execute(
                    calls,
                    allowed=allowed,
                    context=ctx,
                    budget=self.budget,
                    on_started=on_started,
                    on_finished=record,
                )
            else:
                outcomes = await self._run_durably(ctx, calls, allowed, on_started, record)
        except anyio.get_cancelled_exc_class():
            # The run is being cancelled: answer every call of the batch (what finished, and
            # "cancelled" for the rest), so the transcript can be kept and continued.
            for call in calls:
                done = finished.get(call.id)
                self.transcript.append(
                    done.to_message()
                    if done is not None
                    else ToolMessage(
                        tool_call_id=call.id,
                        content='{"error": "cancelled", "message": "the run was cancelled"}',
                        name=call.name,
                        is_error=True,
                    )
                )
            raise
        except ToolCallFailed as exc:
            # The results of the whole batch are recorded before the error leaves the run, so
            # the transcript stays complete (every call answered) and can be continued.
            self.transcript.extend(o.to_message() for o in exc.outcomes)
            raise
        if transfers:
            outcomes = self._take_handoff(outcomes)
            if on_finished is not None:
                for outcome in outcomes:
                    if outcome.called_as in transfers:
                        on_finished(outcome)
        self.transcript.extend(o.to_message() for o in outcomes)
        self.guards.after_tools(name, *self.box.watched(outcomes, calls))
        if type(agent).after_tool is not Agent.after_tool:
            for outcome in outcomes:
                await agent.after_tool(ctx, outcome)
        return outcomes

    async def _run_durably(
        self,
        ctx: RunContext[Any],
        calls: tuple[ToolCall, ...],
        allowed: frozenset[str],
        on_started: Callable[[ToolCall], None] | None,
        record: Callable[[ToolCallOutcome], None],
    ) -> list[ToolCallOutcome]:
        """A batch of a durable run: calls already recorded are not run again; calls that
        need approval, or were running when the process died and are not idempotent, wait
        for a decision (the whole batch waits: none of it runs before every call may); the
        rest run, marked in flight in a checkpoint first and recorded in one after."""
        waiting: list[PendingApproval] = []
        runnable: list[ToolCall] = []
        interrupted = set(self.in_flight)
        for call in calls:
            if call.id in self.recorded:
                continue
            decision = self.decisions.get(call.id)
            if decision is not None:
                if decision.approved:
                    runnable.append(call)
                else:
                    record(self._rejected(call, decision))
                continue
            kind = self._needs_decision(call, allowed, call.id in interrupted)
            if kind is None:
                runnable.append(call)
            else:
                waiting.append(self._pending(call, kind))
        if waiting:
            self.approvals = waiting
            self.in_flight = []
            await self._save("tools")
            raise Paused(waiting)
        self.approvals = []
        if runnable:
            self.in_flight = [c.id for c in runnable]
            tools = self.box.executor.tools
            # Only a call that must not run twice needs to be known as in flight before it
            # starts: after a crash, an idempotent one unrecorded is simply run again.
            if any(getattr(tools.get(c.name), "idempotent", True) is False for c in runnable):
                await self._save("tools")
            await self.box.executor.execute(
                runnable,
                allowed=allowed,
                context=ctx,
                budget=self.budget,
                on_started=on_started,
                on_finished=record,
            )
        self.in_flight = []
        await self._save("tools")
        return [self.recorded[call.id] for call in calls]

    def _needs_decision(
        self, call: ToolCall, allowed: frozenset[str], interrupted: bool
    ) -> Literal["approval", "interrupted"] | None:
        tool = self.box.executor.tools.get(call.name)
        if tool is None or call.name not in allowed:
            return None  # refused by the executor, with a typed outcome; nothing runs
        if interrupted and not tool.idempotent:
            return "interrupted"
        if tool.approval is False:
            return None
        try:
            arguments = tool.validate(call.arguments)
        except (InvalidToolJSON, InvalidToolArguments):
            return None  # the executor answers with the validation error; nothing runs
        return "approval" if tool.needs_approval(arguments) else None

    def _pending(self, call: ToolCall, kind: Literal["approval", "interrupted"]) -> PendingApproval:
        tool = self.box.executor.tools.get(call.name)
        arguments: dict[str, Any] | str = call.arguments
        if tool is not None:
            try:
                validated = tool.validate(call.arguments)
                arguments = mask_arguments(tool, SavedOutcome.jsonable(validated))
            except (InvalidToolJSON, InvalidToolArguments):
                pass
        return PendingApproval(
            id=new_approval_id(),
            tool_call_id=call.id,
            tool=call.name,
            arguments=arguments,
            kind=kind,
            node=self.agent.name,
        )

    def _rejected(self, call: ToolCall, decision: Decision) -> ToolCallOutcome:
        tool = self.box.executor.tools.get(call.name)
        reason = decision.reason or "no reason given"
        content = json.dumps(
            {
                "error": "rejected",
                "message": f"A reviewer did not approve this call: {reason}. It did not run.",
            }
        )
        return ToolCallOutcome(
            tool_call_id=call.id,
            called_as=call.name,
            tool_name=tool.name if tool is not None else None,
            kind=OutcomeKind.PERMISSION_DENIED,
            content=content,
        )

    def _check_size(self, added: Sequence[Message]) -> None:
        """Stop before a model call when the transcript is over a size limit: the agent's or
        the run's (`Limits.max_transcript_chars`), whichever is lower."""
        limits = (self.agent.max_transcript_chars, self.guards.limits.max_transcript_chars)
        set_limits = [limit for limit in limits if limit is not None]
        if not set_limits:
            return
        limit = min(set_limits)
        if self.size is None:  # measured once, then kept up to date message by message
            self.size = sum(_json_chars(m) for m in self.transcript[: self.sent - len(added)])
        self.size += sum(_json_chars(m) for m in added)
        if self.size > limit:
            raise TranscriptTooLarge(self.size, limit, path=self.guards.path)

    def _take_handoff(self, outcomes: list[ToolCallOutcome]) -> list[ToolCallOutcome]:
        """Take the first successful transfer of a batch, if the guards allow it; the results
        of the other transfers say they were not taken, so the transcript tells the truth."""
        handoffs = self.box.handoffs
        out = []
        for outcome in outcomes:
            spec = handoffs.get(outcome.called_as) if outcome.ok else None
            if spec is None:
                out.append(outcome)
                continue
            if self.handoff is not None:
                note = f"Not transferred: this turn already transfers to {self.handoff.target}."
                out.append(replace(outcome, content=note))
                continue
            refusal = self.guards.check_handoff(self.agent.name, spec.target)
            if refusal is not None:
                self.restrict_next = True
                out.append(replace(outcome, content=refusal))
                continue
            payload = None
            if spec.payload is not None and outcome.arguments is not None:
                payload = spec.payload.model_validate(outcome.arguments)
            self.handoff = HandoffRequest(
                self.agent.name, spec.target, payload, outcome.tool_call_id
            )
            out.append(outcome)
        return out

    def _check_final(self, message: AssistantMessage) -> tuple[str | None, Any]:
        """``(None, output)`` for a valid final answer, else ``(correction, failure)``."""
        agent = self.agent
        spec = agent.output_spec
        if spec is None:
            if message.content:
                return None, message.content
            return (
                "Your reply was empty. Answer the user's last message.",
                InvalidToolJSON("text", "", "the reply has no text"),
            )
        if agent.output_mode == "tool":
            return (
                f"Give your final answer by calling the {spec.tool.api_name} tool.",
                InvalidToolJSON(spec.tool.name, message.content or "", "no final-output call"),
            )
        try:
            return None, spec.parse(message.content or "")
        except (InvalidToolJSON, InvalidToolArguments) as exc:
            correction, _ = spec.describe_failure(exc)
            return correction, exc

    def _output_error(
        self, message: AssistantMessage, failure: Any, attempts: int
    ) -> OutputValidationError:
        spec = self.agent.output_spec
        type_name = spec.output_type.__name__ if spec is not None else "text answer"
        errors = failure.errors if isinstance(failure, InvalidToolArguments) else ()
        if isinstance(failure, InvalidToolJSON):
            detail = str(failure.detail)
        else:  # the field listing, without the internal tool name the validator reports
            detail = "; ".join(f"{e.location}: {e.message}" for e in errors)
        return OutputValidationError(type_name, message.content or "", errors, detail, attempts)

    def _record(
        self,
        turn: int,
        info: TurnInfo,
        outcomes: Sequence[ToolCallOutcome],
        model_seconds: float,
        tool_seconds: float,
    ) -> None:
        self.turns.append(
            TurnRecord(
                turn=turn,
                tool_choice=info.tool_choice,
                tools=info.tools,
                finish_reason=info.finish_reason,
                usage=info.usage,
                outcomes=tuple(outcomes),
                notes=info.notes,
                model_seconds=model_seconds,
                tool_seconds=tool_seconds,
            )
        )
        if debug_enabled(self.log):
            self.log.debug(
                "agent.turn",
                turn=turn,
                tool_choice=str(info.tool_choice),
                finish_reason=info.finish_reason.value,
                tool_calls=[(o.called_as, o.kind.value) for o in outcomes],
                model_ms=round(model_seconds * 1000, 2),
                tool_ms=round(tool_seconds * 1000, 2),
            )

    def _finish(self, output: Any, reason: StopReason, turn: int) -> RunResult[Any]:
        agent = self.agent
        if self.emit is not None and self.final_event and reason != "handoff":
            self.emit(FinalOutput(agent.name, turn, output))
        duration = _perf() - self.started
        self.log.info(
            "agent.run.finished",
            turns=turn,
            stop_reason=reason,
            refused_calls=outcome_counts(self.turns)[OutcomeKind.PERMISSION_DENIED],
            requests=self.usage.requests,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            seconds=round(duration, 4),
        )
        transcript = tuple(self.transcript)
        return RunResult(
            output=output,
            transcript=transcript,
            new_messages=transcript[self.first_new :],
            usage=self.usage,
            turns=tuple(self.turns),
            agent=agent.name,
            run_id=self.ctx.run_id,
            stop_reason=reason,
            duration=duration,
            handoff=self.handoff,
        )


def _json_chars(message: Message) -> int:
    """The size of a message as JSON, for the token budget's projection."""
    try:
        return len(message.model_dump_json())
    except ValueError:  # text Pydantic cannot encode: a lone surrogate from the endpoint
        return len(json.dumps(message.model_dump()))


def _is_model_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
