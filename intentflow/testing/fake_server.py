"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests that use the real client.

`FakeOpenAIServer` answers ``POST /v1/chat/completions`` from a script of
`Reply` and `Fault`
items (plain JSON or an SSE stream, as the request asks), ``POST /v1/embeddings`` with a
deterministic offline embedding, and ``GET /v1/models``. Everything it answers has the shape
of the official OpenAI API specification, so the ``openai`` SDK parses it as it would parse
the real thing; faults (429, 5xx, dropped connections, cut streams, slow replies) go through
the SDK's real retry and error paths.

It runs on anyio, so it works under asyncio and trio alike, and stops (cancelling whatever
it is in the middle of) when its ``async with`` block ends.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import time
from collections import deque
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import SocketAttribute

from intentflow.testing._http import CONNECTION_ERRORS, BadRequest, HttpConnection, HttpRequest
from intentflow.testing.embeddings import (
    InvalidEmbeddingRequest,
    embeddings_response,
    hashed_ngram_embedding,
)
from intentflow.testing.replies import (
    CallIdSequence,
    Fault,
    FaultKind,
    Reply,
    Script,
    ScriptItem,
    TokenLogprob,
    estimate_tokens,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from anyio.abc import SocketStream

    from intentflow.messages import Usage

__all__ = ["FakeOpenAIServer", "RecordedRequest", "StreamQuirks"]

MAX_REQUESTS_PER_CONNECTION = 10_000
"""After this many requests a connection is closed (and the client opens a new one)."""


@dataclass(frozen=True, slots=True)
class StreamQuirks:
    """Deviations from OpenAI's streaming of tool calls that OpenAI-compatible servers show.

    OpenAI itself sends, for each tool call, a first delta with ``index``, ``id``,
    ``type: "function"``, the function name and empty arguments, then deltas with only
    ``index`` and a piece of the arguments. A stream accumulator must survive each of these
    variants, which were reported against real servers:

    Attributes:
        omit_index: No ``index`` on any tool-call delta (Ollama's OpenAI layer before its fix,
            ollama/ollama#7881; Gemini's OpenAI-compatible endpoint). The chunks then fail the
            spec, which requires ``index``.
        index_always_zero: Every call of a parallel batch uses ``index`` 0 and they differ
            only by ``id`` (ollama/ollama#15457; LiteLLM's ``ollama_chat`` route).
        repeat_id: ``id``, ``type`` and the function name are repeated on every delta of a
            call, not only on its first (seen from DashScope/Qwen-style servers); naive
            accumulators then concatenate the name or id.
        whole_call_per_chunk: Each call arrives complete in one delta, arguments and all
            (Ollama, Gemini, vLLM with some tool parsers).
        omit_id: No ``id`` on any delta (Gemini's OpenAI-compatible endpoint has streamed
            id-less calls); the accumulator must make one up.

    ``omit_index`` and ``index_always_zero`` exclude each other; the others combine.
    """

    omit_index: bool = False
    index_always_zero: bool = False
    repeat_id: bool = False
    whole_call_per_chunk: bool = False
    omit_id: bool = False

    def __post_init__(self) -> None:
        if self.omit_index and self.index_always_zero:
            raise ValueError("omit_index and index_always_zero exclude each other; pick one")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, as the client sent it.

    Attributes:
        method: ``"POST"``, ``"GET"``, ...
        path: The request path, query string removed (``"/v1/chat/completions"``).
        headers: The headers, names lower-cased.
        body: The parsed JSON body; None when there was none or it was not JSON.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


@dataclass(slots=True)
class _Exchange:
    """What the server knows while answering one chat-completions request."""

    request: dict[str, Any]
    completion_id: str
    request_id: str
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def stream(self) -> bool:
        return self.request.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.request.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def top_logprobs(self) -> int | None:
        """How many alternatives to send per token; None when logprobs were not asked for."""
        if self.request.get("logprobs") is not True:
            return None
        top = self.request.get("top_logprobs")
        return top if isinstance(top, int) and top > 0 else 0

    @property
    def prompt_tokens(self) -> int:
        return estimate_tokens(json.dumps(self.request.get("messages", []), sort_keys=True))


class _ScriptError(Exception):
    """The script cannot answer a request: the test's bug, reported once and never retried.

    Attributes:
        status: 400 when the script ran out (nothing the client can fix by retrying), 500
            when a script function failed.
        code: The error body's ``code``.
    """

    def __init__(self, message: str, *, status: int, code: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class FakeOpenAIServer:
    """A loopback OpenAI-compatible server that answers from a script.

    Each ``POST /chat/completions`` consumes one script item: a
    `Reply` is answered as JSON, or as an SSE stream when
    the request has ``"stream": true``; a `Fault` fails the
    way it describes. When a list script runs out, the server answers 400 (which the SDK does
    not retry) with a message saying so, and records the problem in `errors`.

    Args:
        script: Items consumed in order (extend later with `push`), or a function
            (sync or async) of the request's parsed JSON body returning the next item.
        embed: Text to vector for ``/embeddings``; defaults to
            `hashed_ngram_embedding`.
        stream_quirks: Provider deviations to reproduce in streamed tool calls.
        chunk_chars: How many characters of text or arguments go in one stream delta.
        latency: Seconds to wait before every answer (on top of a reply's own ``delay``).
        model: The model name for ``/models`` and for replies to requests that name none.

    Attributes:
        requests: Every request received, in arrival order.
        errors: Problems the server saw: an exhausted script, an unreadable request, an
            unknown path, a script function that raised.

    Examples:
        >>> import openai
        >>> from intentflow.testing.replies import Fault, Reply
        >>> async def main() -> str | None:
        ...     script = [Fault.rate_limit(retry_after=0.01), Reply.text("hello")]
        ...     async with FakeOpenAIServer(script) as server:
        ...         client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test")
        ...         reply = await client.chat.completions.create(
        ...             model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ...         )
        ...         assert len(server.requests) == 2  # the 429, then the SDK's retry
        ...         return reply.choices[0].message.content
        >>> anyio.run(main)
        'hello'
    """

    def __init__(
        self,
        script: Script = (),
        *,
        embed: Callable[[str], list[float]] | None = None,
        stream_quirks: StreamQuirks | None = None,
        chunk_chars: int = 4,
        latency: float = 0.0,
        model: str = "fake-model",
    ) -> None:
        if chunk_chars < 1:
            raise ValueError(f"chunk_chars must be >= 1, not {chunk_chars}")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, not {latency}")
        self._function: Callable[[dict[str, Any]], Any] | None = None
        self._items: deque[ScriptItem] = deque()
        self._scripted = 0
        if callable(script):
            self._function = script
        else:
            self.push(*script)
        self._embed = embed or hashed_ngram_embedding
        self._quirks = stream_quirks or StreamQuirks()
        self._chunk_chars = chunk_chars
        self._latency = latency
        self._model = model
        self._call_ids = CallIdSequence()
        self._served = 0
        self._port: int | None = None
        self._exit_stack: AsyncExitStack | None = None
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []

    # ------------------------------------------------------------------ public surface

    @property
    def base_url(self) -> str:
        """The URL to give the client, e.g. ``"http://127.0.0.1:54321/v1"``."""
        if self._port is None:
            raise RuntimeError("the server is not running; use it as `async with server:`")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completions requests received, in order."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def push(self, *items: ScriptItem) -> None:
        """Append items to the script (a list script only)."""
        if self._function is not None:
            raise TypeError("push() extends a list script; this server's script is a function")
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"a script item is a Reply or a Fault, not {item!r}")
        self._items.extend(items)
        self._scripted += len(items)

    async def __aenter__(self) -> Self:
        if self._exit_stack is not None:
            raise RuntimeError("the server is already running")
        stack = AsyncExitStack()
        try:
            listener = await stack.enter_async_context(
                await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            )
            task_group = await stack.enter_async_context(anyio.create_task_group())
            # Leaving the block must not wait for clients: cancel every connection first.
            stack.callback(task_group.cancel_scope.cancel)
            task_group.start_soon(listener.serve, self._serve_connection, task_group)
        except BaseException:
            await stack.aclose()
            raise
        self._port = listener.extra(SocketAttribute.local_port)
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        self._port = None
        if stack is None:
            return None
        try:
            return await stack.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # The task group wraps an exception raised in the `async with` body. Returning False
            # re-raises that exception as it was, so `pytest.raises(...)` around the block works.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return False
            raise

    # ------------------------------------------------------------------ connections

    async def _serve_connection(self, stream: SocketStream) -> None:
        connection = HttpConnection(stream)
        async with stream:
            # A client that goes away is normal (timeouts, cut streams); it ends the connection.
            with suppress(*CONNECTION_ERRORS):
                for served in range(1, MAX_REQUESTS_PER_CONNECTION + 1):
                    try:
                        request = await connection.read_request()
                    except BadRequest as exc:
                        self.errors.append(f"unreadable HTTP request: {exc}")
                        body = _error_body(str(exc), "invalid_request_error")
                        await connection.send_response(exc.status, body, keep_alive=False)
                        return
                    if request is None:
                        return
                    keep_alive = request.keep_alive and served < MAX_REQUESTS_PER_CONNECTION
                    if not await self._answer(connection, request, keep_alive):
                        return

    async def _answer(self, conn: HttpConnection, request: HttpRequest, keep_alive: bool) -> bool:
        """Answer one request; returns whether the connection stays open."""
        route = request.path.removeprefix("/v1")
        body: Any = None
        parse_error = None
        if request.body:
            try:
                body = request.json()
            except ValueError as exc:
                parse_error = str(exc)
        headers: dict[str, str] = {}
        for name, value in request.headers:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.requests.append(RecordedRequest(request.method, request.path, headers, body))

        if parse_error is not None:
            self.errors.append(f"{request.method} {request.path}: body is not JSON: {parse_error}")
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)"
            )
            await conn.send_response(400, _error_body(message), keep_alive=keep_alive)
            return keep_alive
        if request.method == "POST" and route == "/chat/completions":
            return await self._chat(conn, body, keep_alive)
        if request.method == "POST" and route == "/embeddings":
            await self._embeddings(conn, body, keep_alive)
            return keep_alive
        if request.method == "GET" and route == "/models":
            await conn.send_response(200, _json(self._models_body()), keep_alive=keep_alive)
            return keep_alive
        self.errors.append(f"{request.method} {request.path}: no such endpoint")
        message = f"Invalid URL ({request.method} {request.path})"
        await conn.send_response(404, _error_body(message), keep_alive=keep_alive)
        return keep_alive

    # ------------------------------------------------------------------ chat completions

    async def _chat(self, conn: HttpConnection, body: Any, keep_alive: bool) -> bool:
        if not isinstance(body, dict):
            self.errors.append("POST /chat/completions: the body is not a JSON object")
            message = "The body must be a JSON object."
            await conn.send_response(400, _error_body(message), keep_alive=keep_alive)
            return keep_alive
        self._served += 1
        exchange = _Exchange(body, f"chatcmpl-fake{self._served}", f"req_fake{self._served}")
        try:
            item = await self._next_item(body)
        except _ScriptError as exc:
            self.errors.append(str(exc))
            await conn.send_response(
                exc.status,
                _error_body(
                    str(exc),
                    "server_error" if exc.status >= 500 else "invalid_request_error",
                    code=exc.code,
                ),
                headers={"x-should-retry": "false", "x-request-id": exchange.request_id},
                keep_alive=keep_alive,
            )
            return keep_alive
        # Ids are handed out in arrival order, before any waiting, so they are deterministic.
        reply = item.with_call_ids(self._call_ids) if isinstance(item, Reply) else item
        await anyio.sleep(self._latency + (reply.delay if isinstance(reply, Reply) else 0.0))
        if isinstance(reply, Fault):
            return await self._fail(conn, reply, exchange, keep_alive)
        await self._send_reply(conn, reply, exchange, keep_alive)
        return keep_alive

    async def _next_item(self, request: dict[str, Any]) -> ScriptItem:
        number = self._served
        if self._function is not None:
            try:
                # A copy, so a script function that edits the request cannot edit the record.
                result = self._function(copy.deepcopy(request))
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                raise _ScriptError(
                    f"FakeOpenAIServer: the script function raised on request #{number}: "
                    f"{type(exc).__name__}: {exc}",
                    status=500,
                    code="script_error",
                ) from exc
            if not isinstance(result, Reply | Fault):
                raise _ScriptError(
                    f"FakeOpenAIServer: the script function returned {result!r} for request "
                    f"#{number}; it must return a Reply or a Fault",
                    status=500,
                    code="script_error",
                )
            return result
        if not self._items:
            raise _ScriptError(
                f"FakeOpenAIServer: the script is exhausted: chat-completions request #{number} "
                f"has no scripted reply left ({self._scripted} scripted). Give a longer "
                "script or add replies with server.push(...).",
                status=400,
                code="script_exhausted",
            )
        return self._items.popleft()

    async def _send_reply(
        self, conn: HttpConnection, reply: Reply, exchange: _Exchange, keep_alive: bool
    ) -> None:
        headers = {"x-request-id": exchange.request_id}
        if not exchange.stream:
            body = _json(self._completion(reply, exchange))
            await conn.send_response(200, body, headers=headers, keep_alive=keep_alive)
            return
        await conn.send_head(
            200,
            content_type="text/event-stream; charset=utf-8",
            headers=headers,
            keep_alive=keep_alive,
        )
        for chunk in self._chunks(reply, exchange)[0]:
            await conn.send_chunk(_sse(chunk))
        await conn.send_chunk(b"data: [DONE]\n\n")
        await conn.end_chunks()

    async def _fail(
        self, conn: HttpConnection, fault: Fault, exchange: _Exchange, keep_alive: bool
    ) -> bool:
        if fault.kind is FaultKind.HTTP_ERROR:
            headers = {"x-request-id": exchange.request_id}
            if fault.retry_after is not None:
                headers["retry-after"] = str(math.ceil(fault.retry_after))  # RFC: whole seconds
                headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
            body = _error_body(fault.message, fault.error_type, code=fault.error_code)
            await conn.send_response(fault.status, body, headers=headers, keep_alive=keep_alive)
            return keep_alive
        if fault.kind is FaultKind.DROP_CONNECTION:
            return False
        assert fault.reply is not None  # both remaining kinds carry one
        reply = fault.reply.with_call_ids(self._call_ids)
        if fault.kind is FaultKind.SLOW:
            await anyio.sleep(fault.seconds)
            await self._send_reply(conn, reply, exchange, keep_alive)
            return keep_alive
        await self._send_cut(conn, reply, fault.after_chunks, exchange)
        return False

    async def _send_cut(
        self, conn: HttpConnection, reply: Reply, after_chunks: int | None, exchange: _Exchange
    ) -> None:
        headers = {"x-request-id": exchange.request_id}
        if not exchange.stream:
            body = _json(self._completion(reply, exchange))
            await conn.send_head(
                200, content_type="application/json", headers=headers, content_length=len(body)
            )
            await conn.send_raw(body[: len(body) // 2])
            return
        chunks, default_cut = self._chunks(reply, exchange)
        cut = default_cut if after_chunks is None else min(after_chunks, len(chunks))
        await conn.send_head(200, content_type="text/event-stream; charset=utf-8", headers=headers)
        for chunk in chunks[:cut]:
            await conn.send_chunk(_sse(chunk))

    # ------------------------------------------------------------------ wire format

    def _completion(self, reply: Reply, exchange: _Exchange) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": reply.refusal,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in reply.tool_calls
            ]
        logprobs = None
        top = exchange.top_logprobs
        if top is not None and reply.logprobs is not None:
            logprobs = {"content": [_logprob(t, top) for t in reply.logprobs], "refusal": None}
        return {
            **self._envelope(exchange, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": reply.resolved_finish_reason,
                }
            ],
            "usage": _usage(reply.usage_for(exchange.prompt_tokens)),
        }

    def _chunks(self, reply: Reply, exchange: _Exchange) -> tuple[list[dict[str, Any]], int]:
        """The stream of ``reply`` as chunk objects, and where a cut goes by default."""
        deltas: list[tuple[dict[str, Any], Any]] = []  # (delta, logprobs)
        has_text = reply.content is not None or not reply.tool_calls
        deltas.append(
            ({"role": "assistant", "content": "" if has_text else None, "refusal": None}, None)
        )
        top = exchange.top_logprobs
        text_start = len(deltas)
        if reply.logprobs is not None:
            # Real streams send one token per chunk, with that token's logprobs.
            for token in reply.logprobs:
                lp = None if top is None else {"content": [_logprob(token, top)], "refusal": None}
                deltas.append(({"content": token.token}, lp))
        else:
            for piece in _pieces(reply.content or "", self._chunk_chars):
                deltas.append(({"content": piece}, None))
        for piece in _pieces(reply.refusal or "", self._chunk_chars):
            deltas.append(({"refusal": piece}, None))
        default_cut = text_start + (len(deltas) - text_start) // 2
        for position, call in enumerate(reply.tool_calls):
            call_deltas = self._call_deltas(position, call.id, call.name, call.arguments)
            if position == 0:
                # Mid-arguments: the first delta and half of the argument pieces.
                default_cut = len(deltas) + 1 + (len(call_deltas) - 1) // 2
            deltas += [({"tool_calls": [d]}, None) for d in call_deltas]

        chunks = [self._chunk(exchange, delta, lp, None) for delta, lp in deltas]
        chunks.append(self._chunk(exchange, {}, None, reply.resolved_finish_reason))
        if exchange.include_usage:
            usage_chunk = {**self._envelope(exchange, "chat.completion.chunk"), "choices": []}
            usage_chunk["usage"] = _usage(reply.usage_for(exchange.prompt_tokens))
            chunks.append(usage_chunk)
        return chunks, default_cut

    def _call_deltas(
        self, position: int, id: str, name: str, arguments: str
    ) -> list[dict[str, Any]]:
        """The deltas of one streamed tool call, with this server's quirks."""
        quirks = self._quirks
        head: dict[str, Any] = {}
        if not quirks.omit_index:
            head["index"] = 0 if quirks.index_always_zero else position
        if not quirks.omit_id:
            head["id"] = id
        head["type"] = "function"
        if quirks.whole_call_per_chunk:
            return [{**head, "function": {"name": name, "arguments": arguments}}]
        first = {**head, "function": {"name": name, "arguments": ""}}
        rest = []
        for piece in _pieces(arguments, self._chunk_chars):
            if quirks.repeat_id:
                rest.append({**head, "function": {"name": name, "arguments": piece}})
            else:
                later = {k: v for k, v in head.items() if k == "index"}
                rest.append({**later, "function": {"arguments": piece}})
        return [first, *rest]

    def _chunk(
        self, exchange: _Exchange, delta: dict[str, Any], logprobs: Any, finish_reason: str | None
    ) -> dict[str, Any]:
        chunk = {
            **self._envelope(exchange, "chat.completion.chunk"),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
            ],
        }
        if exchange.include_usage:
            chunk["usage"] = None  # as the API does: null on every chunk but the last
        return chunk

    def _envelope(self, exchange: _Exchange, object_type: str) -> dict[str, Any]:
        model = exchange.request.get("model")
        return {
            "id": exchange.completion_id,
            "object": object_type,
            "created": exchange.created,
            "model": model if isinstance(model, str) else self._model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    # ------------------------------------------------------------------ other endpoints

    async def _embeddings(self, conn: HttpConnection, body: Any, keep_alive: bool) -> None:
        await anyio.sleep(self._latency)
        try:
            answer = embeddings_response(body, self._embed, default_model=self._model)
        except InvalidEmbeddingRequest as exc:
            self.errors.append(f"POST /embeddings: {exc}")
            await conn.send_response(400, _error_body(str(exc)), keep_alive=keep_alive)
            return
        except Exception as exc:  # the embed function is the test's code: report, don't crash
            message = f"FakeOpenAIServer: the embed function raised: {type(exc).__name__}: {exc}"
            self.errors.append(message)
            body = _error_body(message, "server_error", code="embed_error")
            headers = {"x-should-retry": "false"}
            await conn.send_response(500, body, headers=headers, keep_alive=keep_alive)
            return
        await conn.send_response(200, _json(answer), keep_alive=keep_alive)

    def _models_body(self) -> dict[str, Any]:
        model = {"id": self._model, "object": "model", "created": 0, "owned_by": "intentflow"}
        return {"object": "list", "data": [model]}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _logprob(token: TokenLogprob, top: int) -> dict[str, Any]:
    # The sampled token is (nearly always) among the API's top alternatives; with none
    # scripted, it is the only one.
    alternatives = token.top_logprobs or ((token.token, token.logprob),)
    return {
        "token": token.token,
        "logprob": token.logprob,
        "bytes": list(token.token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives[:top]
        ],
    }


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _error_body(
    message: str, error_type: str = "invalid_request_error", *, code: str | None = None
) -> bytes:
    return _json({"error": {"message": message, "type": error_type, "param": None, "code": code}})


def _json(obj: Any) -> bytes:
    # A lone surrogate (only ever inside a string) is sent as its JSON escape, "\ud800", as a
    # real server sends it; UTF-8 cannot encode it as a character.
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


def _sse(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + _json(chunk) + b"\n\n"
