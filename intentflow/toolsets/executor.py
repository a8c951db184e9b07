"""The executor: runs a model's tool calls safely and returns one typed outcome per call.

For each call, in the model's order: refuse a tool outside the turn's allowed set (the model's
wish is not permission), parse the JSON, validate it, run the tool (awaited if async, in a
worker thread if sync) under its timeout, retry transient failures with backoff, and turn
every failure into a `ToolCallOutcome`. Parallel calls run
in an anyio task group under a capacity limit; one failing or slow call never cancels or loses
another. Then the `ErrorPolicy` decides, per failure, whether
it goes back to the model or is raised.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import anyio
import structlog

from intentflow._logging import debug_enabled
from intentflow.context import RunContext
from intentflow.errors import InvalidToolArguments, InvalidToolJSON, ToolCallFailed
from intentflow.messages import ToolCall
from intentflow.toolsets.outcomes import (
    ErrorAction,
    OutcomeKind,
    ToolCallOutcome,
    ToolError,
    success_outcome,
)
from intentflow.toolsets.policy import ErrorBudget, ErrorPolicy
from intentflow.toolsets.tool import Tool, serialize_result
from intentflow.toolsets.toolset import Toolset

__all__ = ["Executor"]

_log = structlog.get_logger("intentflow.executor")
_perf = time.perf_counter

OnStarted = Callable[[ToolCall], None]
OnFinished = Callable[[ToolCallOutcome], None]


class Executor:
    """Executes tool calls against a toolset.

    The executor is configuration and is shared by every run; what belongs to one run (the
    error budget, the context) is passed to `execute`.

    Examples:
        >>> import anyio
        >>> tools = Toolset("math")
        >>> @tools.tool
        ... def add(a: int, b: int) -> int:
        ...     return a + b
        >>> calls = [ToolCall(id="c1", name="add", arguments='{"a": 1, "b": 2}'),
        ...          ToolCall(id="c2", name="add", arguments='{"a": "x"}')]
        >>> outcomes = anyio.run(Executor(tools).execute, calls)
        >>> [(o.tool_call_id, o.kind.value) for o in outcomes]
        [('c1', 'success'), ('c2', 'invalid_arguments')]
        >>> outcomes[0].content
        '3'


    Args:
        tools: The tools that exist (a toolset, or tools). A call may still be refused by the
            ``allowed`` set of a turn.
        policy: What to do with each kind of failure.
        max_concurrency: How many calls of one batch may run at once.
        max_argument_chars: Refuse, before parsing, a call whose argument text is longer than
            this (an ``invalid_arguments`` outcome saying so); ``None``: no limit.
    """

    def __init__(
        self,
        tools: Toolset | Iterable[Tool],
        *,
        policy: ErrorPolicy | None = None,
        max_concurrency: int = 4,
        max_argument_chars: int | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_argument_chars is not None and max_argument_chars < 2:
            raise ValueError("max_argument_chars must be at least 2 (the text '{}')")
        self.tools = tools if isinstance(tools, Toolset) else Toolset("tools", tools)
        self.policy = policy or ErrorPolicy()
        self.max_concurrency = max_concurrency
        self.max_argument_chars = max_argument_chars

    async def execute(
        self,
        calls: Sequence[ToolCall],
        *,
        allowed: Collection[str] | None = None,
        context: RunContext[Any] | None = None,
        budget: ErrorBudget | None = None,
        on_started: OnStarted | None = None,
        on_finished: OnFinished | None = None,
    ) -> list[ToolCallOutcome]:
        """Run a batch of tool calls; return their outcomes in the model's order.

        Args:
            calls: The model's tool calls, in its order.
            allowed: The tool names (as the model sees them) allowed this turn; ``None``
                allows every tool of the executor.
            context: The run's context; each tool that takes one gets a copy with its call's
                ``tool_call_id`` and ``tool_name``.
            budget: The run's error budget (pass the same one for every turn of a run); a
                fresh one is used when omitted.
            on_started: Called as each call starts.
            on_finished: Called with each outcome as soon as it is known, also for calls
                cancelled because the run was cancelled (before the cancellation propagates).

        Raises:
            ToolCallFailed: The policy chose to raise for a failure. It carries the outcomes
                of the whole batch.
        """
        if allowed is not None and not isinstance(allowed, set | frozenset | dict):
            allowed = frozenset(allowed)
        run = _Batch(self, allowed, context, on_started, on_finished)
        if len(calls) == 1:
            outcomes = [await run.one(calls[0])]
        else:
            outcomes = await run.many(calls)
        return self._apply_policy(outcomes, budget)

    def _apply_policy(
        self, outcomes: list[ToolCallOutcome], budget: ErrorBudget | None
    ) -> list[ToolCallOutcome]:
        policy = self.policy
        first_raise: ToolCallOutcome | None = None
        for i, outcome in enumerate(outcomes):
            if outcome.ok:
                continue
            kind = outcome.kind
            if policy.action(kind) is ErrorAction.RETURN_TO_MODEL:
                if budget is None:  # made on the first failure: a successful batch needs none
                    budget = ErrorBudget()
                exceeded = budget.charge(outcome.tool_name or outcome.called_as, policy)
                if exceeded is not None:
                    prior = outcome.error.message if outcome.error else kind.value
                    error = ToolError(
                        OutcomeKind.BUDGET_EXCEEDED,
                        f"{exceeded}; last failure: {prior}",
                        hint=f"Do not call {outcome.called_as!r} again; answer without it.",
                        exception=outcome.error.exception if outcome.error else None,
                    )
                    outcome = dataclasses.replace(
                        outcome,
                        kind=OutcomeKind.BUDGET_EXCEEDED,
                        error=error,
                        content=error.to_content(),
                    )
                    kind = OutcomeKind.BUDGET_EXCEEDED
            action = policy.action(kind)
            outcome = dataclasses.replace(outcome, action=action)
            outcomes[i] = outcome
            if action is ErrorAction.RAISE and first_raise is None:
                first_raise = outcome
        if first_raise is not None:
            raise ToolCallFailed(first_raise, outcomes)
        return outcomes


class _Batch:
    """The state of one ``execute`` call."""

    __slots__ = ("allowed", "context", "executor", "log", "on_finished", "on_started")

    def __init__(
        self,
        executor: Executor,
        allowed: Collection[str] | None,
        context: RunContext[Any] | None,
        on_started: OnStarted | None,
        on_finished: OnFinished | None,
    ) -> None:
        self.executor = executor
        self.allowed = allowed
        self.context = context
        self.on_started = on_started
        self.on_finished = on_finished
        # The configured logger, resolved once per batch (through the module's lazy proxy each
        # call costs ~0.7 µs), or None when it drops debug events: then the fields of the
        # per-call event are never computed.
        log = _log.bind()
        self.log = log if debug_enabled(log) else None

    def run_context(self) -> RunContext[Any]:
        # Made on first use: a fresh RunContext draws a uuid4 run_id (~3 µs, a syscall), and
        # most batches never need it (no tool takes a context, debug logging is off).
        context = self.context
        if context is None:
            context = self.context = RunContext(deps=None)
        return context

    async def many(self, calls: Sequence[ToolCall]) -> list[ToolCallOutcome]:
        tools = self.executor.tools
        results: list[ToolCallOutcome | None] = [None] * len(calls)
        locks: dict[str, anyio.Lock] = {}

        async def run(i: int) -> None:
            results[i] = await self.one(calls[i], locks)

        # An exclusive tool runs alone: the batch is cut into segments at exclusive calls, and
        # segments run one after another in the model's order (a write before a read stays so).
        segment: list[int] = []
        for i, call in enumerate(calls):
            t = tools.get(call.name)
            if t is not None and t.exclusive:
                await self._run_segment(segment, run)
                segment = []
                await run(i)
            else:
                segment.append(i)
        await self._run_segment(segment, run)
        return [r for r in results if r is not None]

    async def _run_segment(self, indices: list[int], run: Callable[[int], Any]) -> None:
        """Run the calls of ``indices`` concurrently, at most ``max_concurrency`` at a time.

        Instead of a task per call behind a capacity limiter, ``min(max_concurrency, n)``
        workers take the calls in order from one shared iterator, and this task is one of them:
        spawning a task and acquiring a limiter token cost far more than a fast tool itself.
        """
        if len(indices) <= 1:
            for i in indices:
                await run(i)
            return
        pending = iter(indices)

        async def worker() -> None:
            for i in pending:
                await run(i)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.executor.max_concurrency, len(indices)) - 1):
                tg.start_soon(worker)
            await worker()

    async def one(
        self, call: ToolCall, locks: dict[str, anyio.Lock] | None = None
    ) -> ToolCallOutcome:
        start = _perf()
        if self.on_started is not None:
            self.on_started(call)
        try:
            outcome = await self._one(call, start, locks)
        except anyio.get_cancelled_exc_class():
            tool = self.executor.tools.get(call.name)
            outcome = _failure(
                call, tool, ToolError(OutcomeKind.CANCELLED, "the run was cancelled"), start
            )
            self._finish(outcome)
            raise
        self._finish(outcome)
        return outcome

    def _finish(self, outcome: ToolCallOutcome) -> None:
        if self.log is not None:
            self._log_call(self.log, outcome)
        if self.on_finished is not None:
            self.on_finished(outcome)

    def _log_call(self, log: Any, outcome: ToolCallOutcome) -> None:
        tool = self.executor.tools.get(outcome.called_as)
        arguments = outcome.arguments
        log.debug(
            "tool.call",
            tool=outcome.tool_name or outcome.called_as,
            tool_call_id=outcome.tool_call_id,
            outcome=outcome.kind.value,
            attempts=outcome.attempts,
            duration_ms=round(outcome.duration * 1000, 3),
            run_id=self.run_context().run_id,
            # Only validated arguments are logged, and only as the tool allows (redaction).
            arguments=tool.redact(arguments)
            if tool is not None and arguments is not None
            else None,
        )

    async def _one(
        self, call: ToolCall, start: float, locks: dict[str, anyio.Lock] | None
    ) -> ToolCallOutcome:
        executor = self.executor
        tool = executor.tools.get(call.name)
        allowed = self.allowed
        if tool is None or (allowed is not None and call.name not in allowed):
            return self._refused(call, tool, start)
        limit = executor.max_argument_chars
        if limit is not None and len(call.arguments) > limit:
            # Refused before parsing: a huge payload costs nothing more than its length.
            error = ToolError(
                OutcomeKind.INVALID_ARGUMENTS,
                f"the arguments are too large: {len(call.arguments)} characters, the limit is "
                f"{limit}",
                hint="Send only what the tool needs; pass large content by reference.",
                retryable=True,
            )
            return _failure(call, tool, error, start)
        try:
            arguments = tool.validate(call.arguments)
        except InvalidToolJSON as exc:
            error = ToolError(
                OutcomeKind.INVALID_JSON,
                exc.detail,
                hint="Send the arguments as one JSON object that matches the tool's schema.",
                retryable=True,
                exception=exc,
            )
            return _failure(call, tool, error, start)
        except InvalidToolArguments as exc:
            error = ToolError(
                OutcomeKind.INVALID_ARGUMENTS,
                f"{len(exc.errors)} argument(s) failed validation",
                hint="Fix the listed fields and call the tool again.",
                retryable=True,
                fields=exc.errors,
                exception=exc,
            )
            return _failure(call, tool, error, start, None)

        context = None
        if tool.takes_context:
            context = dataclasses.replace(
                self.run_context(), tool_call_id=call.id, tool_name=tool.name
            )
        key = tool.concurrency_key
        if key is not None and locks is not None:
            key_value = key if isinstance(key, str) else key(arguments)
            lock = locks.get(key_value)
            if lock is None:
                lock = locks[key_value] = anyio.Lock()
            async with lock:
                return await self._invoke(call, tool, arguments, context, start)
        return await self._invoke(call, tool, arguments, context, start)

    def _refused(self, call: ToolCall, tool: Tool | None, start: float) -> ToolCallOutcome:
        allowed = self.allowed
        tools = self.executor.tools
        available = [n for n in tools.names if allowed is None or n in allowed]
        # The same words for both kinds: the model must not learn which tools exist elsewhere.
        error = ToolError(
            OutcomeKind.UNKNOWN_TOOL if tool is None else OutcomeKind.PERMISSION_DENIED,
            f"tool {call.name!r} is not available",
            hint=f"Call one of: {', '.join(available)}." if available else "Answer without tools.",
            retryable=bool(available),
        )
        return _failure(call, tool, error, start)

    async def _invoke(
        self,
        call: ToolCall,
        tool: Tool,
        arguments: dict[str, Any],
        context: RunContext[Any] | None,
        start: float,
    ) -> ToolCallOutcome:
        retry = tool.retry
        attempts = 0
        while True:
            attempts += 1
            error: ToolError | None = None
            transient = False
            try:
                if tool.timeout is None:
                    result = await tool.invoke(dict(arguments), context)
                else:
                    with anyio.move_on_after(tool.timeout) as scope:
                        result = await tool.invoke(dict(arguments), context)
                    if scope.cancelled_caught:
                        transient = retry is not None and retry.retry_timeouts
                        error = ToolError(
                            OutcomeKind.TIMEOUT,
                            f"the tool did not finish within {tool.timeout:g} s",
                            hint="Try again later, or with a smaller request.",
                            retryable=True,
                        )
            except Exception as exc:
                transient = retry is not None and retry.is_transient(exc)
                shown = (
                    f"{type(exc).__name__}: {exc}"
                    if self.executor.policy.expose_exception_messages
                    else type(exc).__name__
                )
                error = ToolError(
                    OutcomeKind.TOOL_ERROR,
                    f"the tool failed: {shown}",
                    hint="Retry may help."
                    if transient
                    else "Do not retry with the same arguments.",
                    retryable=transient,
                    exception=exc,
                )
            if error is None:
                try:
                    content = serialize_result(result)
                except Exception as exc:
                    error = ToolError(
                        OutcomeKind.TOOL_ERROR,
                        f"the tool's result cannot be serialized: {exc}",
                        exception=exc,
                    )
                else:
                    return success_outcome(
                        call.id,
                        call.name,
                        tool.name,
                        content,
                        result,
                        arguments,
                        attempts,
                        _perf() - start,
                    )
            if not transient or retry is None or attempts >= retry.attempts:
                return _failure(call, tool, error, start, arguments, attempts)
            _log.info(
                "tool.retry",
                tool=tool.name,
                tool_call_id=call.id,
                attempt=attempts,
                error=error.message,
            )
            await anyio.sleep(retry.delay(attempts))


def _failure(
    call: ToolCall,
    tool: Tool | None,
    error: ToolError,
    start: float,
    arguments: dict[str, Any] | None = None,
    attempts: int = 0,
) -> ToolCallOutcome:
    return ToolCallOutcome(
        tool_call_id=call.id,
        called_as=call.name,
        tool_name=tool.name if tool is not None else None,
        kind=error.kind,
        content=error.to_content(),
        arguments=arguments,
        error=error,
        attempts=attempts,
        duration=_perf() - start,
    )
