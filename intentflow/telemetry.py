"""OpenTelemetry tracing of runs, following the GenAI semantic conventions (optional extra).

Install with ``pip install 'intentflow[otel]'`` (it needs only ``opentelemetry-api``; the
application brings the SDK and an exporter). One `OpenTelemetryTracer` serves the whole
application; each run gets its own `RunTrace`, which turns the run's events into spans::

    tracer = OpenTelemetryTracer()
    with tracer.trace_run(runner) as trace:
        result = await runner.run(message, on_event=trace.on_event)
        trace.record_result(result)

The spans of one run:

* ``invoke_agent [name]`` (the run): the route decision, the node path, the final agent
  and the summed token usage, under ``gen_ai.*`` and ``intentflow.*`` attributes;
* ``chat {model}``, a child per model call: the request model and settings, the response
  model, id and finish reason, and the call's token usage;
* ``execute_tool {name}``, a child per tool call: the tool's name and call id, its outcome,
  and an error status with ``error.type`` (the outcome kind) when it failed.

Events carry no run id, so a `RunTrace` belongs to one run: concurrent runs each take their
own from `OpenTelemetryTracer.trace_run` and their spans never mix.

**Privacy**: message contents, tool arguments and results, error messages, route reasons and
guard details are recorded only with ``record_content=True``; even then tool arguments are
redacted as each tool's ``sensitive`` setting says, and secrets (API keys, bearer tokens,
values of keys such as ``password``) as `intentflow.log.redact_secrets` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from intentflow.agents.agent import Agent
from intentflow.agents.events import (
    FinalOutput,
    GuardNotice,
    HandoffTaken,
    ModelDelta,
    ModelRequested,
    ModelResponded,
    NodeStarted,
    RouteDecided,
    ToolCallFinished,
    ToolCallStarted,
)
from intentflow.agents.graph import AgentGraph
from intentflow.agents.runner import Runner
from intentflow.errors import ConfigurationError, RunError
from intentflow.log import redact_secrets
from intentflow.messages import AssistantMessage, Message, ToolMessage, Usage
from intentflow.toolsets.choice import ForcedTool

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from intentflow.agents.events import GraphEvent
    from intentflow.agents.result import RunResult
    from intentflow.agents.runner import GraphResult
    from intentflow.router.decision import RouteDecision
    from intentflow.toolsets.outcomes import ToolCallOutcome
    from intentflow.toolsets.tool import Tool

__all__ = ["OpenTelemetryTracer", "RunTrace"]

INSTRUMENTATION_NAME = "intentflow"
"""The instrumentation scope name of intentflow's spans."""

_INSTALL_HINT = (
    "OpenTelemetry tracing needs the opentelemetry-api package: pip install 'intentflow[otel]'"
)

# Sampling settings as the GenAI conventions name them; any other setting is not recorded
# (a provider's extra settings may hold anything, user ids included).
_SETTINGS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}


def _opentelemetry() -> ModuleType:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc
    return trace


class OpenTelemetryTracer:
    """Traces intentflow runs as OpenTelemetry spans (see the module notes).

    Args:
        tracer_provider: The provider to create spans with; the global one
            (``opentelemetry.trace.get_tracer_provider()``) by default.
        provider_name: The GenAI provider reported on every span
            (``gen_ai.provider.name``, and the older ``gen_ai.system``).
        record_content: Also record what the conversation says: the messages of each model
            call and its answer, tool arguments (redacted as the tool says) and results,
            error messages, route reasons and guard details. Off by default: spans often
            leave the application's privacy boundary.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        provider_name: str = "openai",
        record_content: bool = False,
    ) -> None:
        from intentflow import __version__

        self._trace = _opentelemetry()
        self.provider_name = provider_name
        self.record_content = record_content
        self.tracer: Tracer = self._trace.get_tracer(
            INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )

    def trace_run(
        self,
        target: Runner | AgentGraph | Agent[Any] | None = None,
        *,
        name: str | None = None,
        run_id: str | None = None,
        conversation_id: str | None = None,
        attributes: Mapping[str, str | bool | int | float | Sequence[str]] | None = None,
    ) -> RunTrace:
        """Start the span of one run and return the `RunTrace` that records it.

        Use it as a context manager (the run's span is then current inside the block, so
        spans the tools make nest under it, and it ends with the block, with an error status
        if the block raised or was cancelled), or call `RunTrace.finish` yourself.

        Args:
            target: What runs: a `Runner`, an `AgentGraph` or an `Agent`. It tells the
                model each agent requests (``gen_ai.request.model`` and the span names);
                without it, a model call's span is named after the model that answered.
            name: The agent (or application) name for the run's span
                (``gen_ai.agent.name``); an `Agent` target's name by default.
            run_id: The run's id (``intentflow.run_id``); pass the same ``run_id`` to the
                run, or let `RunTrace.record_result` take it from the result.
            conversation_id: The conversation's id (``gen_ai.conversation.id``).
            attributes: More attributes for the run's span.
        """
        return RunTrace(self, target, name, run_id, conversation_id, attributes)


class RunTrace:
    """The spans of one run; made by `OpenTelemetryTracer.trace_run`.

    Pass `on_event` as the run's ``on_event`` (or call it with each event of
    ``Runner.stream``). A `RunTrace` records one run: give each run its own.

    Attributes:
        span: The run's span, for attributes of your own.
    """

    def __init__(
        self,
        tracer: OpenTelemetryTracer,
        target: Runner | AgentGraph | Agent[Any] | None,
        name: str | None,
        run_id: str | None,
        conversation_id: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self._tracer = tracer
        self._trace = tracer._trace
        self._content = tracer.record_content
        self._target = target
        if name is None and isinstance(target, Agent):
            name = target.name
        common: dict[str, Any] = {
            "gen_ai.provider.name": tracer.provider_name,
            "gen_ai.system": tracer.provider_name,
        }
        self._common = common
        run_attributes: dict[str, Any] = {**common, "gen_ai.operation.name": "invoke_agent"}
        if name is not None:
            run_attributes["gen_ai.agent.name"] = name
        if conversation_id is not None:
            run_attributes["gen_ai.conversation.id"] = conversation_id
        if run_id is not None:
            run_attributes["intentflow.run_id"] = run_id
        run_attributes.update(attributes or {})
        self.span: Span = tracer.tracer.start_span(
            f"invoke_agent {name}" if name else "invoke_agent",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=run_attributes,
        )
        self._parent: Context = self._trace.set_span_in_context(self.span)
        self._models: dict[tuple[str, int], Span] = {}
        self._first_delta: dict[tuple[str, int], float] = {}
        self._started: dict[tuple[str, int], float] = {}
        self._tools: dict[str, Span] = {}
        self._sent: dict[str, dict[str, Tool]] = {}  # per agent: the tools of its last request
        self._path: list[str] = []
        self._usage = Usage()
        self._token: Token[Context] | None = None
        self._finished = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RunTrace:
        from opentelemetry import context

        self._token = context.attach(self._parent)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            from opentelemetry import context

            token, self._token = self._token, None
            context.detach(token)
        self.finish(exc)

    def finish(self, error: BaseException | None = None) -> None:
        """End the run's span, and any model or tool span still open (once; later calls do
        nothing).

        Args:
            error: What the run raised (its typed `RunError`, a cancellation, ...): the run's
                span, and the spans it interrupted, end with an error status and
                ``error.type``.
        """
        if self._finished:
            return
        self._finished = True
        error_type = _error_type(error) if error is not None else None
        # A span still open was interrupted: a model call that raised, a tool call the
        # cancellation cut short before it reported.
        for span in (*self._models.values(), *self._tools.values()):
            self._fail(span, error_type or "interrupted", self._message(error))
            span.end()
        self._models.clear()
        self._tools.clear()
        span = self.span
        self._set_usage(span, self._usage)
        span.set_attribute("intentflow.usage.requests", self._usage.requests)
        if isinstance(error, RunError):
            if len(error.path) > len(self._path):
                span.set_attribute("intentflow.path", list(error.path))
            if error.agent is not None:
                span.set_attribute("intentflow.error.agent", error.agent)
        if error_type is not None:
            self._fail(span, error_type, self._message(error))
            if self._content and isinstance(error, Exception):
                span.record_exception(error)
        span.end()

    def record_result(self, result: GraphResult[Any] | RunResult[Any]) -> None:
        """Add what a run's result says to the run's span: its id and stop reason.

        Args:
            result: The run's `GraphResult` (or an agent's `RunResult`).
        """
        self.span.set_attribute("intentflow.run_id", result.run_id)
        self.span.set_attribute("intentflow.stop_reason", result.stop_reason)

    # ------------------------------------------------------------------ events

    def on_event(self, event: GraphEvent) -> None:
        """Record one event of the run (pass this method as ``on_event``)."""
        if self._finished:
            return
        if isinstance(event, ModelRequested):
            self._model_requested(event)
        elif isinstance(event, ModelDelta):
            self._first_delta.setdefault((event.agent, event.turn), time.monotonic())
        elif isinstance(event, ModelResponded):
            self._model_responded(event)
        elif isinstance(event, ToolCallStarted):
            self._tool_started(event)
        elif isinstance(event, ToolCallFinished):
            self._tool_finished(event)
        elif isinstance(event, RouteDecided):
            self._route_decided(event.decision)
        elif isinstance(event, NodeStarted):
            self._path.append(event.agent)
            self.span.set_attribute("intentflow.path", list(self._path))
            attributes = {"intentflow.node": event.agent, "intentflow.node.via": event.via}
            if event.source is not None:
                attributes["intentflow.node.source"] = event.source
            self.span.add_event("intentflow.node_started", attributes)
        elif isinstance(event, HandoffTaken):
            handoff = {"intentflow.handoff.source": event.agent}
            handoff["intentflow.handoff.target"] = event.target
            self.span.add_event("intentflow.handoff", handoff)
        elif isinstance(event, GuardNotice):
            attributes = {"intentflow.guard": event.guard, "intentflow.node": event.agent}
            if self._content:
                attributes["intentflow.guard.detail"] = _redact(event.detail)
            self.span.add_event("intentflow.guard", attributes)
        elif isinstance(event, FinalOutput):
            self.span.set_attribute("intentflow.agent", event.agent)

    def _route_decided(self, decision: RouteDecision) -> None:
        attributes: dict[str, Any] = {
            "intentflow.route.classifier": decision.classifier,
            "intentflow.route.confidence": decision.confidence,
            "intentflow.route.margin": decision.margin,
            "intentflow.route.abstained": decision.abstained,
        }
        if decision.intent is not None:
            attributes["intentflow.intent"] = decision.intent
        if self._content and decision.reason:
            attributes["intentflow.route.reason"] = _redact(decision.reason)
        # The latest decision stands (a re-route replaces the first); each one is an event.
        # An attribute cannot be removed: no intent is the empty string.
        self.span.set_attributes({"intentflow.intent": "", **attributes})
        self.span.add_event("intentflow.route", attributes)

    def _model_requested(self, event: ModelRequested) -> None:
        key = (event.agent, event.turn)
        request = event.request
        model = self._model_name(event.agent)
        attributes: dict[str, Any] = {
            **self._common,
            "gen_ai.operation.name": "chat",
            "gen_ai.agent.name": event.agent,
            "intentflow.turn": event.turn,
            "gen_ai.output.type": "json" if request.output is not None else "text",
            "intentflow.request.tool_choice": _choice(request.tool_choice),
        }
        if model is not None:
            attributes["gen_ai.request.model"] = model
        if request.tools:
            attributes["intentflow.request.tools"] = list(request.tool_names)
        if request.allowed_tools is not None:
            attributes["intentflow.request.allowed_tools"] = list(request.allowed_tools)
        for setting, value in request.settings.items():
            key_ = _SETTINGS.get(setting)
            if key_ is not None and isinstance(value, int | float) and not isinstance(value, bool):
                attributes[key_] = value
        stop = request.settings.get("stop")
        if isinstance(stop, str):
            attributes["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
            attributes["gen_ai.request.stop_sequences"] = list(stop)
        tools = {t.api_name: t for t in request.tools}
        if self._content:
            attributes["gen_ai.input.messages"] = _dump(
                [self._message_parts(m, tools) for m in request.messages]
            )
        self._sent[event.agent] = tools
        previous = self._models.pop(key, None)
        if previous is not None:  # never reported back: end it rather than leak it
            self._fail(previous, "interrupted", None)
            previous.end()
        self._models[key] = self._tracer.tracer.start_span(
            f"chat {model}" if model else "chat",
            context=self._parent,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        self._started[key] = time.monotonic()
        self._first_delta.pop(key, None)

    def _model_responded(self, event: ModelResponded) -> None:
        key = (event.agent, event.turn)
        response = event.response
        span = self._models.pop(key, None)
        if span is None:  # a response without its request: record it as a point in time
            span = self._tracer.tracer.start_span(
                "chat",
                context=self._parent,
                kind=self._trace.SpanKind.CLIENT,
                attributes={
                    **self._common,
                    "gen_ai.operation.name": "chat",
                    "gen_ai.agent.name": event.agent,
                    "intentflow.turn": event.turn,
                },
            )
        started = self._started.pop(key, None)
        first = self._first_delta.pop(key, None)
        if started is not None and first is not None:
            span.set_attribute("gen_ai.request.stream", True)
            span.set_attribute("gen_ai.response.time_to_first_chunk", first - started)
        if response.model:
            span.set_attribute("gen_ai.response.model", response.model)
            if not self._model_name(event.agent):
                span.update_name(f"chat {response.model}")
        if response.id:
            span.set_attribute("gen_ai.response.id", response.id)
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            [response.raw_finish_reason or response.finish_reason.value],
        )
        self._set_usage(span, response.usage)
        message = response.message
        if message.tool_calls:
            span.set_attribute("intentflow.response.tool_calls", len(message.tool_calls))
        if message.refusal:
            span.set_attribute("intentflow.response.refused", True)
        if self._content:
            output = self._message_parts(message, self._sent.get(event.agent, {}))
            output["finish_reason"] = response.finish_reason.value
            span.set_attribute("gen_ai.output.messages", _dump([output]))
        self._usage = self._usage + response.usage
        span.end()

    def _tool_started(self, event: ToolCallStarted) -> None:
        call = event.call
        previous = self._tools.pop(call.id, None)
        if previous is not None:  # a reused call id: end the older span rather than leak it
            self._fail(previous, "interrupted", None)
            previous.end()
        self._tools[call.id] = self._tool_span(event.agent, event.turn, call.name, call.id, None)

    def _tool_finished(self, event: ToolCallFinished) -> None:
        outcome = event.outcome
        span = self._tools.pop(outcome.tool_call_id, None)
        if span is None:  # reported without a start (the executor refused it outright)
            start = time.time_ns() - int(outcome.duration * 1e9)
            span = self._tool_span(
                event.agent, event.turn, outcome.called_as, outcome.tool_call_id, start
            )
        span.set_attribute("intentflow.tool.outcome", outcome.kind.value)
        span.set_attribute("intentflow.tool.attempts", outcome.attempts)
        if outcome.tool_name is not None and outcome.tool_name != outcome.called_as:
            span.set_attribute("intentflow.tool.function", outcome.tool_name)
        if self._content:
            arguments = self._arguments(event.agent, outcome)
            if arguments is not None:
                span.set_attribute("gen_ai.tool.call.arguments", arguments)
            span.set_attribute("gen_ai.tool.call.result", _redact(outcome.content))
        if not outcome.ok:
            message = outcome.error.message if outcome.error is not None else None
            self._fail(span, outcome.kind.value, _redact(message) if self._content else None)
        span.end()

    # ------------------------------------------------------------------ helpers

    def _tool_span(self, agent: str, turn: int, name: str, call_id: str, start: int | None) -> Span:
        return self._tracer.tracer.start_span(
            f"execute_tool {name}",
            context=self._parent,
            kind=self._trace.SpanKind.INTERNAL,
            start_time=start,
            attributes={
                **self._common,
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.agent.name": agent,
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.type": "function",
                "intentflow.turn": turn,
            },
        )

    def _model_name(self, agent: str) -> str | None:
        target = self._target
        found: Any = None
        # A target that does not know the agent is not an error: the name is only a label.
        with contextlib.suppress(KeyError):
            if isinstance(target, Runner):
                found = target.graph.agent(agent)
            elif isinstance(target, AgentGraph):
                found = target.agent(agent)
            elif isinstance(target, Agent) and target.name == agent:
                found = target
        name = getattr(getattr(found, "model", None), "name", None)
        return name if isinstance(name, str) and name else None

    def _fail(self, span: Span, error_type: str, description: str | None) -> None:
        span.set_attribute("error.type", error_type)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    def _message(self, error: BaseException | None) -> str | None:
        if error is None or not self._content:
            return None
        return _redact(str(error)) or None

    def _set_usage(self, span: Span, usage: Usage) -> None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.cached_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens)

    def _arguments(self, agent: str, outcome: ToolCallOutcome) -> str | None:
        # Only validated arguments, redacted as the tool says (as the executor logs them): the
        # raw text of a call that failed validation may hold a sensitive value in any shape.
        tool = self._sent.get(agent, {}).get(outcome.called_as)
        if tool is None or outcome.arguments is None:
            return None
        return _dump(tool.redact(outcome.arguments))

    def _message_parts(self, message: Message, tools: Mapping[str, Tool]) -> dict[str, Any]:
        """A message in the GenAI conventions' shape (role and parts), with tool arguments
        redacted as their tools say."""
        if isinstance(message, ToolMessage):
            response = {
                "type": "tool_call_response",
                "id": message.tool_call_id,
                "response": message.content,
            }
            return {"role": "tool", "parts": [response]}
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "content": message.content})
        if isinstance(message, AssistantMessage):
            if message.refusal:
                parts.append({"type": "refusal", "content": message.refusal})
            # Another node's calls are to its own tools, sent with its own last request.
            known = self._sent.get(message.agent or "", {})
            for call in message.tool_calls:
                tool = tools.get(call.name) or known.get(call.name)
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.id,
                        "name": call.name,
                        "arguments": _call_arguments(call.arguments, tool),
                    }
                )
        return {"role": message.role, "parts": parts}


def _call_arguments(raw: str, tool: Tool | None) -> Any:
    if tool is None:  # a tool we cannot ask about its sensitive arguments
        return "<redacted>"
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return tool.redact(parsed)
    return "<redacted>" if tool.sensitive else raw


def _choice(choice: str | ForcedTool) -> str:
    return choice if isinstance(choice, str) else f"forced:{choice.name}"


def _redact(value: Any) -> Any:
    return redact_secrets(None, "", {"value": value})["value"]


def _dump(value: Any) -> str:
    return json.dumps(_redact(value), ensure_ascii=False, default=str)


def _error_type(error: BaseException) -> str:
    if _is_cancellation(error):
        return "cancelled"
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, asyncio.CancelledError):
        return True
    try:
        import anyio

        return isinstance(error, anyio.get_cancelled_exc_class())
    except Exception:  # no async library running here (the run is already over)
        return False
