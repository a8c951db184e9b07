"""The support desk behind HTTP: a Starlette application whose runs are durable.

Endpoints (see README.md for curl examples)::

    POST /conversations/{id}/messages   {"message": "..."}   -> text/event-stream
    GET  /conversations/{id}                                  -> transcript, last run, runs
    GET  /runs/{run_id}                                       -> status, pending approvals
    POST /runs/{run_id}/approvals       {"decisions": {...}}  -> text/event-stream (resumed)
    GET  /health

Every run is checkpointed in a store after each step: a SQLite file by default, PostgreSQL
when ``INTENTFLOW_SERVICE_DSN`` is set, so any number of service processes on one database
can serve the same conversations (the store refuses, with `CheckpointConflict`, two runs
taking the same place in a conversation). A refund over ``approval_over`` pauses its run
until someone decides; the decision may reach any process, after any restart.

A streamed response sends one Server-Sent Event per run event (``event:`` the event's class
name, ``data:`` its fields as JSON), then a ``result`` event, or an ``error`` event when the
run failed. When the client goes away, the run is cancelled: it is saved with status
``"cancelled"`` and its partial transcript (every started tool call answered), and the
conversation goes on from there with the next message.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
import pydantic_core
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from examples.support.app import (
    MAX_CYCLE_PASSES,
    SPECIALIST_CYCLE,
    Accounts,
    Billing,
    Orders,
    RefundRequest,
    ScopeGuard,
    SupportState,
    TechSupport,
    Triage,
    build_router,
    issue_refund,
    list_charges,
)
from examples.support.demo import stand_in_model
from examples.support.tools import Refund, SupportBackend, demo_backend
from intentflow import Model, OpenAIChatModel, RunContext, Tool, Toolset
from intentflow.agents.checkpoint import Decision, PendingApproval, RunState
from intentflow.agents.events import GraphEvent, ModelRequested, ToolCallFinished, ToolCallStarted
from intentflow.agents.graph import AgentGraph
from intentflow.agents.guards import Limits
from intentflow.agents.runner import GraphResult, Runner, RunOptions
from intentflow.errors import CheckpointNotFound, RunError
from intentflow.models import ModelRequest
from intentflow.router import Router
from intentflow.stores import Checkpoint, CheckpointStore, SQLiteStore
from intentflow.testing import Reply, ScriptedModel
from intentflow.testing.replies import CallIdSequence

__all__ = [
    "EventStreamResponse",
    "Sandboxes",
    "Service",
    "Settings",
    "build_model",
    "build_service_graph",
    "build_service_runner",
    "create_app",
    "encode_event",
    "offline_model",
    "open_store",
    "refund_tool",
]

_log = structlog.get_logger("examples.service")

RunnerFactory = Callable[[CheckpointStore], Runner]
"""Builds the service's runner on the store opened at startup."""

Emit = Callable[[bytes], Awaitable[None]]

_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """The service's configuration (`from_env` reads it from the environment).

    Attributes:
        db_path: The SQLite file (``INTENTFLOW_SERVICE_DB``), used when there is no DSN.
        dsn: A PostgreSQL DSN (``INTENTFLOW_SERVICE_DSN``); when set, runs live there.
        model: ``"offline"`` (the default: the support demo's deterministic stand-in plays
            the model, no key needed) or ``"openai"`` (``INTENTFLOW_SERVICE_MODEL=openai``,
            which needs ``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` for compatible endpoints).
        model_name: The OpenAI model (``INTENTFLOW_MODEL``).
        approval_over: Refunds above this amount wait for a person's approval
            (``INTENTFLOW_SERVICE_APPROVAL_OVER``).
        payment_latency: Seconds a refund spends at the (fake) payment provider
            (``INTENTFLOW_SERVICE_PAYMENT_LATENCY``), to watch a slow tool in the stream.
    """

    db_path: Path = Path("intentflow-service.sqlite")
    dsn: str | None = None
    model: Literal["offline", "openai"] = "offline"
    model_name: str = "gpt-4.1-mini"
    approval_over: Decimal = Decimal("50.00")
    payment_latency: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: An unknown model kind, ``openai`` without a key, or a bad number.
        """
        env = os.environ if env is None else env
        model = env.get("INTENTFLOW_SERVICE_MODEL", "offline").strip().lower()
        if model not in ("offline", "openai"):
            raise ValueError(f"INTENTFLOW_SERVICE_MODEL must be offline or openai, not {model!r}")
        if model == "openai" and not env.get("OPENAI_API_KEY"):
            raise ValueError("INTENTFLOW_SERVICE_MODEL=openai needs OPENAI_API_KEY")
        return cls(
            db_path=Path(env.get("INTENTFLOW_SERVICE_DB") or cls.db_path),
            dsn=env.get("INTENTFLOW_SERVICE_DSN") or None,
            model="openai" if model == "openai" else "offline",
            model_name=env.get("INTENTFLOW_MODEL") or cls.model_name,
            approval_over=Decimal(env.get("INTENTFLOW_SERVICE_APPROVAL_OVER") or "50.00"),
            payment_latency=float(env.get("INTENTFLOW_SERVICE_PAYMENT_LATENCY") or 0.0),
        )

    @property
    def store_kind(self) -> str:
        return "postgresql" if self.dsn else "sqlite"


# ---------------------------------------------------------------------------- the desk


def offline_model() -> ScriptedModel:
    """The support demo's stand-in as an in-process model: deterministic, so every process
    answers a conversation the same way (a resumed run continues as the first would have).

    Two additions for a service: a refund a reviewer rejected is answered in words (the
    stand-in alone would try it again), and tool-call ids are numbered by the transcript's
    length, so runs of one conversation in different processes never reuse an id.
    """
    wire = OpenAIChatModel("offline-stand-in")  # builds request bodies only; never connects

    def answer(request: ModelRequest) -> Reply:
        body = wire.request_body(request)
        rejection = _rejection(body["messages"])
        if rejection is not None:
            return Reply.text(
                f"I have not refunded anything: {rejection} "
                "Is there anything else I can help you with?"
            )
        reply = stand_in_model(body)
        return reply.with_call_ids(CallIdSequence(f"call_{len(request.messages)}_"))

    return ScriptedModel(answer, name="offline-stand-in")


def _rejection(messages: list[dict[str, Any]]) -> str | None:
    """A reviewer's rejection among the tool results of the customer's last message."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    for message in messages[last_user + 1 :]:
        if message["role"] != "tool":
            continue
        try:
            content = pydantic_core.from_json(message["content"])
        except ValueError:
            continue
        if isinstance(content, dict) and content.get("error") == "rejected":
            return str(content.get("message", "a reviewer rejected it."))
    return None


def build_model(settings: Settings) -> Model:
    """The model the settings name (an OpenAI model reads its key from the environment)."""
    if settings.model == "openai":
        return OpenAIChatModel(settings.model_name)
    return offline_model()


def refund_tool(approval_over: Decimal, payment_latency: float = 0.0) -> Tool:
    """The support desk's ``issue_refund``, through a (fake) payment provider that takes
    ``payment_latency`` seconds, and needing approval above ``approval_over``."""

    async def issue_refund_via_provider(
        request: RefundRequest, ctx: RunContext[SupportBackend]
    ) -> Refund:
        """Refund (part of) one charge to the customer's payment method."""
        if payment_latency > 0:
            await anyio.sleep(payment_latency)  # the provider's round trip: cancellable
        return issue_refund(request, ctx)

    def needs_approval(arguments: dict[str, Any]) -> bool:
        return Decimal(str(arguments["amount"])) > approval_over

    return Tool.from_model(
        RefundRequest, issue_refund_via_provider, name="issue_refund", approval=needs_approval
    )


def build_service_graph(model: Model, settings: Settings) -> AgentGraph:
    """The support desk's graph (`examples.support.app.build_graph`), with billing's refunds
    gated by approval and going through the payment provider."""
    billing_tools = Toolset(
        "billing", [list_charges, refund_tool(settings.approval_over, settings.payment_latency)]
    )
    agents = [
        Triage(model=model),
        Orders(model=model),
        Billing(model=model, tools=billing_tools),
        TechSupport(model=model),
        Accounts(model=model),
        ScopeGuard(model=model),
    ]
    graph = AgentGraph(agents, state_type=SupportState, limits=Limits(max_steps=24))
    graph.cap_cycle(SPECIALIST_CYCLE, max_passes=MAX_CYCLE_PASSES)
    return graph


def build_service_runner(
    model: Model, store: CheckpointStore, settings: Settings, router: Router | None = None
) -> Runner:
    """The durable desk: the support router, the service's graph, the store."""
    return Runner(router or build_router(), build_service_graph(model, settings), store=store)


class Sandboxes:
    """The tools' backend per conversation: a fresh copy of the demo data for each (the most
    recent ``size`` kept), so conversations do not see each other's refunds. A real service
    passes its own systems instead (``create_app(deps_for=...)``)."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._backends: OrderedDict[str, SupportBackend] = OrderedDict()

    def __call__(self, conversation_id: str) -> SupportBackend:
        backend = self._backends.pop(conversation_id, None) or demo_backend()
        self._backends[conversation_id] = backend
        while len(self._backends) > self.size:
            self._backends.popitem(last=False)
        return backend


async def open_store(settings: Settings) -> CheckpointStore:
    """PostgreSQL (migrated) when the settings have a DSN, else the SQLite file."""
    if settings.dsn:
        from intentflow.stores.postgres import PostgresStore  # the postgres extra

        store = PostgresStore(settings.dsn)
        try:
            await store.migrate()
        except BaseException:
            await store.aclose()
            raise
        return store
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(settings.db_path)


# ---------------------------------------------------------------------------- SSE


def _jsonable(value: Any) -> Any:
    return pydantic_core.to_jsonable_python(value, fallback=str)


def event_data(event: GraphEvent) -> dict[str, Any]:
    """An event's fields as JSON values. A model request is summarised (its tools and
    tool_choice, not the whole prompt again); a tool call's arguments are left out; a tool
    outcome keeps what the model read, not the tool's raw return value or exception."""
    if isinstance(event, ModelRequested):
        request = event.request
        return {
            "agent": event.agent,
            "turn": event.turn,
            "tools": list(request.tool_names),
            "tool_choice": _jsonable(request.tool_choice),
            "messages": len(request.messages),
        }
    if isinstance(event, ToolCallStarted):
        # The model's raw arguments are not streamed: a tool may mark them sensitive, and
        # the client has no need of them (the tool's result follows in ToolCallFinished).
        return {
            "agent": event.agent,
            "turn": event.turn,
            "call": {"id": event.call.id, "name": event.call.name},
        }
    if isinstance(event, ToolCallFinished):
        outcome = event.outcome
        return {
            "agent": event.agent,
            "turn": event.turn,
            "outcome": {
                "tool_call_id": outcome.tool_call_id,
                "called_as": outcome.called_as,
                "tool_name": outcome.tool_name,
                "kind": outcome.kind.value,
                "content": outcome.content,
                "attempts": outcome.attempts,
                "duration": outcome.duration,
            },
        }
    data = _jsonable({f.name: getattr(event, f.name) for f in fields(event)})
    assert isinstance(data, dict)
    return data


def sse(name: str, data: Any) -> bytes:
    """One Server-Sent Event (compact JSON has no newline, so one ``data:`` line)."""
    return (
        b"event: "
        + name.encode()
        + b"\ndata: "
        + pydantic_core.to_json(data, fallback=str)
        + b"\n\n"
    )


def encode_event(event: GraphEvent) -> bytes:
    """A run event as an SSE event named after its class."""
    return sse(type(event).__name__, event_data(event))


def result_data(result: GraphResult[Any]) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "conversation_id": result.conversation_id,
        "output": _jsonable(result.output),
        "stop_reason": result.stop_reason,
        "intent": result.intent,
        "agent": result.agent,
        "path": list(result.path),
        "pending": [p.model_dump(mode="json") for p in result.pending],
        "usage": _jsonable(result.usage),
    }


def error_data(exc: BaseException, run_id: str | None) -> dict[str, Any]:
    if isinstance(exc, RunError):
        return {"run_id": run_id, "type": type(exc).__name__, "message": str(exc)}
    return {"run_id": run_id, "type": "InternalError", "message": "the service failed"}


class EventStreamResponse(Response):
    """A ``text/event-stream`` response written by ``produce(emit)``, cancelled when the
    client disconnects.

    Not a `StreamingResponse` over an async generator on purpose: the run's task group would
    then be suspended across the generator's ``yield``, and a disconnect while the response
    waits on the socket would leave the generator (and its running run) to be finalised later,
    from another task. Here the run lives in this call's own task group: a disconnect cancels
    it there and then, and the runner saves it as ``"cancelled"``.
    """

    media_type = "text/event-stream"

    def __init__(
        self, produce: Callable[[Emit], Awaitable[None]], headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = 200
        self.background = None
        self.produce = produce
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        produced = False
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not produced:
                    _log.info("service.client_disconnected", path=scope.get("path"))
                tg.cancel_scope.cancel()

            async def emit(chunk: bytes) -> None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

            tg.start_soon(watch_disconnect)
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await self.produce(emit)
            produced = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()


async def _relay_errors(
    run_id: str | None, emit: Emit, work: Callable[[], Awaitable[None]]
) -> None:
    """Run ``work``; a failure becomes an ``error`` event (the status line is already sent)."""
    try:
        await work()
    except RunError as exc:
        await emit(sse("error", error_data(exc, run_id)))
    except Exception as exc:
        _log.exception("service.stream_failed", run_id=run_id)
        await emit(sse("error", error_data(exc, run_id)))


# ---------------------------------------------------------------------------- the service


@dataclass
class Service:
    """What the endpoints use (``request.app.state.service``, set up at startup)."""

    runner: Runner
    store: CheckpointStore
    deps_for: Callable[[str], Any]


class _BadRequest(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=8000)


class ApprovalsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: dict[str, Decision] = Field(default_factory=dict)


def _error(code: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=code)


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise _BadRequest(
            _error(400, "invalid_body", "the request body is not valid", errors=_jsonable(errors))
        ) from None


def _conversation_id(request: Request) -> str:
    conversation_id = str(request.path_params["conversation_id"])
    if not _CONVERSATION_ID.match(conversation_id):
        raise _BadRequest(
            _error(400, "invalid_conversation_id", "use 1-128 letters, digits and _ . : -")
        )
    return conversation_id


def _pending(state: RunState) -> list[PendingApproval]:
    return list(state.progress.approvals) if state.progress is not None else []


def run_view(checkpoint: Checkpoint, state: RunState) -> dict[str, Any]:
    """A run as the API shows it."""
    return {
        "run_id": checkpoint.run_id,
        "conversation_id": checkpoint.conversation_id,
        "seq": checkpoint.seq,
        "status": checkpoint.status,
        "intent": state.intent,
        "node": state.node,
        "output": state.output,
        "error": state.error,
        "pending": [p.model_dump(mode="json") for p in _pending(state)],
        "updated_at": checkpoint.updated_at,
    }


def _next_state(runner: Runner, latest: Checkpoint | None) -> SupportState | None:
    """The desk's state for the next message: the last run's, without its case brief (a
    brief belongs to one message, as in `examples.support.app.Conversation`)."""
    if latest is None or runner.graph.state_type is not SupportState:
        return None
    last = RunState.loads(latest.data, latest.run_id)
    if last.state is None:
        return None
    state = SupportState.model_validate(last.state)
    state.case = None
    return state


def _busy(conversation_id: str, latest: Checkpoint) -> JSONResponse:
    run_id = latest.run_id
    approvals = f"POST /runs/{run_id}/approvals"
    if latest.status == "paused":
        pending = _pending(RunState.loads(latest.data, run_id))
        detail = (
            f"conversation {conversation_id!r} has a run paused for approval ({run_id!r}): "
            f"decide its pending approvals with {approvals}, then send the message again"
        )
        return _error(
            409,
            "run_paused",
            detail,
            run_id=run_id,
            pending=[p.model_dump(mode="json") for p in pending],
        )
    detail = (
        f"conversation {conversation_id!r} has a run in progress ({run_id!r}); wait for it, or "
        f'if its process died, resume it with {approvals} and {{"decisions": {{}}}}'
    )
    return _error(409, "run_in_progress", detail, run_id=run_id)


async def post_message(request: Request) -> Response:
    service: Service = request.app.state.service
    conversation_id = _conversation_id(request)
    body: MessageIn = await _parse(request, MessageIn)
    latest = await service.store.latest(conversation_id)
    if latest is not None and latest.status in ("paused", "running"):
        return _busy(conversation_id, latest)
    run_id = f"run_{uuid.uuid4().hex}"
    options: RunOptions = {
        "conversation_id": conversation_id,
        "deps": service.deps_for(conversation_id),
        "run_id": run_id,
    }
    state = _next_state(service.runner, latest)
    if state is not None:
        options["state"] = state

    async def produce(emit: Emit) -> None:
        async def work() -> None:
            async with service.runner.stream(body.message, **options) as events:
                async for event in events:
                    await emit(encode_event(event))
            assert events.result is not None
            await emit(sse("result", result_data(events.result)))

        await _relay_errors(run_id, emit, work)

    return EventStreamResponse(produce, {"x-run-id": run_id, "x-conversation-id": conversation_id})


async def get_conversation(request: Request) -> Response:
    service: Service = request.app.state.service
    conversation_id = _conversation_id(request)
    latest = await service.store.latest(conversation_id)
    if latest is None:
        return _error(404, "unknown_conversation", f"no conversation {conversation_id!r}")
    state = RunState.loads(latest.data, latest.run_id)
    runs = await service.store.list(conversation_id=conversation_id, limit=1000)
    return JSONResponse(
        {
            "conversation_id": conversation_id,
            "messages": [m.model_dump(mode="json") for m in state.transcript],
            "last_run": run_view(latest, state),
            "runs": [
                {"run_id": r.run_id, "seq": r.seq, "status": r.status}
                for r in sorted(runs, key=lambda r: r.seq or 0)
            ],
        }
    )


async def _load(service: Service, run_id: str) -> tuple[Checkpoint, RunState]:
    try:
        checkpoint = await service.store.load(run_id)
    except CheckpointNotFound:
        raise _BadRequest(_error(404, "unknown_run", f"no run {run_id!r}")) from None
    return checkpoint, RunState.loads(checkpoint.data, run_id)


async def get_run(request: Request) -> Response:
    service: Service = request.app.state.service
    checkpoint, state = await _load(service, str(request.path_params["run_id"]))
    return JSONResponse(run_view(checkpoint, state))


async def post_approvals(request: Request) -> Response:
    service: Service = request.app.state.service
    run_id = str(request.path_params["run_id"])
    body: ApprovalsIn = await _parse(request, ApprovalsIn)
    checkpoint, state = await _load(service, run_id)
    if checkpoint.status in ("finished", "failed", "cancelled"):
        detail = f"run {run_id!r} has {checkpoint.status}: send a new message to its conversation"
        return _error(409, "run_not_resumable", detail, status=checkpoint.status)
    pending = {p.id for p in _pending(state)}
    missing, unknown = sorted(pending - set(body.decisions)), sorted(set(body.decisions) - pending)
    if missing or unknown:
        parts = [
            f"missing decisions for {missing}" if missing else "",
            f"unknown approvals {unknown}" if unknown else "",
        ]
        detail = f"run {run_id!r}: " + "; ".join(p for p in parts if p)
        return _error(409, "decisions_do_not_match", detail, pending=sorted(pending))
    decisions: dict[str, Decision | bool] = dict(body.decisions)
    deps = service.deps_for(checkpoint.conversation_id or run_id)

    async def produce(emit: Emit) -> None:
        async def work() -> None:
            result = await _stream_resume(service.runner, run_id, decisions, deps, emit)
            await emit(sse("result", result_data(result)))

        await _relay_errors(run_id, emit, work)

    headers = {"x-run-id": run_id}
    if checkpoint.conversation_id:
        headers["x-conversation-id"] = checkpoint.conversation_id
    return EventStreamResponse(produce, headers)


async def _stream_resume(
    runner: Runner, run_id: str, decisions: dict[str, Decision | bool], deps: Any, emit: Emit
) -> GraphResult[Any]:
    """`Runner.resume`, its events sent as they happen (as `Runner.stream` does for runs)."""
    send, receive = anyio.create_memory_object_stream[GraphEvent](math.inf)
    outcome: list[GraphResult[Any] | RunError] = []

    def deliver(event: GraphEvent) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            send.send_nowait(event)

    async def resume() -> None:
        with send:
            try:
                outcome.append(await runner.resume(run_id, decisions, deps=deps, on_event=deliver))
            except RunError as exc:
                outcome.append(exc)

    async with anyio.create_task_group() as tg, receive:
        tg.start_soon(resume)
        async for event in receive:
            await emit(encode_event(event))
    (ended,) = outcome
    if isinstance(ended, RunError):
        raise ended
    return ended


async def health(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return JSONResponse({"status": "ok", "store": settings.store_kind, "model": settings.model})


def create_app(
    settings: Settings | None = None,
    *,
    runner_factory: RunnerFactory | None = None,
    deps_for: Callable[[str], Any] | None = None,
) -> Starlette:
    """The ASGI application.

    Args:
        settings: The configuration (default: `Settings.from_env`).
        runner_factory: Builds the runner on the store opened at startup (default: the
            support desk, `build_service_runner`, with the settings' model).
        deps_for: The tools' dependencies for a conversation (default: `Sandboxes`).
    """
    settings = settings or Settings.from_env()
    owned: list[Model] = []

    def default_factory(store: CheckpointStore) -> Runner:
        model = build_model(settings)
        owned.append(model)
        return build_service_runner(model, store, settings)

    factory = runner_factory or default_factory

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await open_store(settings)
        try:
            app.state.service = Service(factory(store), store, deps_for or Sandboxes())
            _log.info("service.started", store=settings.store_kind, model=settings.model)
            yield
        finally:
            with anyio.CancelScope(shield=True):
                for model in owned:
                    close = getattr(model, "aclose", None)
                    if close is not None:
                        await close()
                await store.aclose()

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _BadRequest)
        return exc.response

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/conversations/{conversation_id}/messages", post_message, methods=["POST"]),
            Route("/conversations/{conversation_id}", get_conversation, methods=["GET"]),
            Route("/runs/{run_id}", get_run, methods=["GET"]),
            Route("/runs/{run_id}/approvals", post_approvals, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={_BadRequest: bad_request},
    )
    app.state.settings = settings
    return app
