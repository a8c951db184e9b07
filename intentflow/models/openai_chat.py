"""`OpenAIChatModel`: the `Model` protocol over the Chat Completions API of the ``openai`` SDK.

Any OpenAI-compatible endpoint works through the client's ``base_url`` (OpenAI, Azure OpenAI,
vLLM, Ollama, llama.cpp, LM Studio, LiteLLM, ...). The adapter uses the SDK client for
everything a client is for (auth, base URL, retries with backoff for 429/5xx and connection
errors, timeouts, response types) but builds the request body itself: the SDK's
``chat.completions.create`` re-transforms every parameter on every call, which with 50 tool
schemas costs milliseconds per request, while intentflow's tool entries are compiled once and
cached (see ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from intentflow.errors import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimited,
    ModelResponseError,
    ModelTimeout,
)
from intentflow.log import redact_text
from intentflow.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolMessage,
    Usage,
    UserMessage,
)
from intentflow.models.base import (
    FinishReason,
    ForcedTool,
    ModelRequest,
    ModelResponse,
    ResponseCompleted,
    StreamEvent,
    TokenLogprob,
)
from intentflow.models.stream import StreamAccumulator, complete_tool_calls

if TYPE_CHECKING:
    from openai.types.chat.chat_completion_chunk import ChoiceDelta

    from intentflow.toolsets.tool import Tool

__all__ = ["Narrowing", "OpenAIChatModel", "model_error"]

Narrowing = Literal["send_allowed", "allowed_tools"]
"""How a turn's allowed tools reach the model: ``send_allowed`` sends only those tools;
``allowed_tools`` sends one stable tools array and restricts it with
``tool_choice={"type": "allowed_tools", ...}``, which keeps the prompt-cache prefix intact."""

_TOOLS_CACHE_SIZE = 64


class SDKClientOwner:
    """Holds an ``openai.AsyncOpenAI``: the one given, or one built from the environment on
    first use, which `aclose` then closes (a client passed in stays its owner's)."""

    def __init__(self, client: openai.AsyncOpenAI | None) -> None:
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client (built from the environment on first use when none was given)."""
        if self._client is None:
            self._client = openai.AsyncOpenAI()
        return self._client

    async def aclose(self) -> None:
        """Close the client if this object built it (a client you passed in stays yours)."""
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None

    def _raise_model_error(self, exc: openai.OpenAIError, model: str) -> NoReturn:
        """Raise the intentflow error for an SDK error, with this client's key scrubbed.

        A proxy may echo the API key in its error message; the key then never reaches the
        error, and the SDK's exception (which holds the text as received) is not chained.
        """
        key = self._client.api_key if self._client is not None else None
        error = model_error(exc, model, secrets=(key,))
        received = f"{exc} {getattr(exc, 'body', None)!r}"
        echoed = redact_text(received, (key,)) != received
        raise error from (None if echoed else exc)


class OpenAIChatModel(SDKClientOwner):
    """A chat model behind an OpenAI-compatible Chat Completions endpoint.

    Args:
        model: The model name sent to the endpoint (``"gpt-4.1-mini"``, ``"llama3.1"``, ...).
        client: The SDK client to use. Without one, an ``openai.AsyncOpenAI()`` is built from
            the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) on the first request, so
            a model can be declared where no key is set yet.
        system_role: The role instructions are sent with: ``"system"``, or ``"developer"``
            for endpoints that want it.
        narrowing: How this endpoint narrows tools (`Narrowing`); agents follow it unless
            they set their own. Use ``"allowed_tools"`` only with endpoints that support it.
        stream_usage: Ask for usage at the end of streams (``stream_options.include_usage``);
            turn it off for endpoints that reject ``stream_options``.
        max_retries: Retries the SDK makes for 429, 5xx and connection errors (with its own
            backoff, honouring ``Retry-After``); ``None`` keeps the client's setting.
        timeout: Seconds per request; ``None`` keeps the client's setting.
        **settings: Sampling and other body parameters sent with every request
            (``temperature``, ``max_completion_tokens``, ``seed``, ``reasoning_effort``, ...).

    Examples:
        >>> model = OpenAIChatModel("gpt-4.1-mini", temperature=0)
        >>> model.name, model.settings
        ('gpt-4.1-mini', {'temperature': 0})
    """

    def __init__(
        self,
        model: str,
        client: openai.AsyncOpenAI | None = None,
        *,
        system_role: Literal["system", "developer"] = "system",
        narrowing: Narrowing = "send_allowed",
        stream_usage: bool = True,
        max_retries: int | None = None,
        timeout: float | None = None,
        **settings: Any,
    ) -> None:
        if not model:
            raise ValueError("OpenAIChatModel needs a model name")
        self.name = model
        self.system_role = system_role
        self.narrowing: Narrowing = narrowing
        self.stream_usage = stream_usage
        self.max_retries = max_retries
        self.timeout = timeout
        self.settings: dict[str, Any] = settings
        super().__init__(client)
        self._tools_cache: dict[tuple[tuple[Tool, ...], bool], list[dict[str, Any]]] = {}
        self._options: openai.RequestOptions = {}
        if max_retries is not None:
            self._options["max_retries"] = max_retries
        if timeout is not None:
            self._options["timeout"] = timeout

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.name!r})"

    # ------------------------------------------------------------------ the protocol

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request and return the whole answer.

        Raises:
            ModelAPIError: The endpoint answered with an HTTP error (after the SDK's retries).
            ModelConnectionError: No answer arrived (``ModelTimeout`` when the timeout expired).
            ModelResponseError: The answer does not have the shape of a chat completion.
        """
        body = self.request_body(request)
        try:
            completion = await self.client.post(
                "/chat/completions", body=body, cast_to=ChatCompletion, options=self._options
            )
        except openai.OpenAIError as exc:
            self._raise(exc)
        except json.JSONDecodeError as exc:  # a 200 whose body is not JSON (a proxy's page)
            raise ModelResponseError(
                f"the reply from {self.name!r} is not JSON: {exc}", model=self.name
            ) from exc
        try:
            return self._response(completion)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelResponseError(
                f"the completion from {self.name!r} has an unexpected shape: {exc}",
                model=self.name,
            ) from exc

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Send the request with ``stream=True``; yield an iterator of stream events.

        Tool-call deltas are matched to calls by ``index`` and ``id`` and tolerate the
        deviations of compatible providers (see `intentflow.models.stream`). The last event is
        `ResponseCompleted`. The connection is closed when the block ends.

        Raises:
            ModelAPIError: The endpoint answered with an HTTP error, or reported one mid-stream.
            ModelConnectionError: The connection failed or the stream was cut before its end.
            ModelResponseError: A chunk does not have the shape of a completion chunk.
        """
        body = self.request_body(request, stream=True)
        try:
            sdk_stream = await self.client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletionChunk,
                options=self._options,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
        except openai.OpenAIError as exc:
            self._raise(exc)
        events = self._events(sdk_stream)
        try:
            yield events
        finally:
            # Close the generator too, so a caller that stops reading early leaves nothing
            # for the garbage collector to finalize (trio warns about that).
            await events.aclose()
            await sdk_stream.close()

    # ------------------------------------------------------------------ requests

    def request_body(self, request: ModelRequest, *, stream: bool = False) -> dict[str, Any]:
        """The JSON body sent for ``request`` (public so tests and tools can inspect it).

        Examples:
            >>> from intentflow.messages import UserMessage
            >>> model = OpenAIChatModel("gpt-4.1-mini")
            >>> model.request_body(ModelRequest(messages=(UserMessage(content="hi"),)))
            {'model': 'gpt-4.1-mini', 'messages': [{'role': 'user', 'content': 'hi'}]}
        """
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [self._message(m) for m in request.messages],
        }
        if self.settings:
            body.update(self.settings)
        if request.settings:
            body.update(request.settings)
        if request.tools:
            body["tools"] = self._tools(request.tools, request.strict_tools)
            choice = _tool_choice(request)
            if choice != "auto":  # the API's default with tools; leaving it out keeps bodies small
                body["tool_choice"] = choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        elif isinstance(request.tool_choice, ForcedTool) or request.tool_choice == "required":
            raise ValueError(
                f"tool_choice {request.tool_choice!r} needs tools, but the request has none"
            )
        if request.output is not None:
            schema: dict[str, Any] = {
                "name": request.output.name,
                "schema": dict(request.output.schema),
                "strict": request.output.strict,
            }
            if request.output.description:
                schema["description"] = request.output.description
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def _message(self, message: Message) -> dict[str, Any]:
        if isinstance(message, UserMessage):
            out: dict[str, Any] = {"role": "user", "content": message.content}
            if message.name:
                out["name"] = message.name
            return out
        if isinstance(message, ToolMessage):
            return {
                "role": "tool",
                "tool_call_id": message.tool_call_id,
                "content": message.content,
            }
        if isinstance(message, AssistantMessage):
            content = message.content
            if content is None and not message.tool_calls:
                # The API wants content unless there are tool calls; an empty reply or a
                # refusal kept in the transcript is sent back as text.
                content = message.refusal or ""
            out = {"role": "assistant", "content": content}
            if message.tool_calls:
                out["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
            if message.refusal is not None and message.content is not None:
                out["refusal"] = message.refusal
            return out
        if isinstance(message, SystemMessage):
            return {"role": self.system_role, "content": message.content}
        raise TypeError(f"not a message: {message!r}")

    def _tools(self, tools: tuple[Tool, ...], strict: bool) -> list[dict[str, Any]]:
        # Agents pass the same tuple turn after turn; each entry is already compiled and
        # cached on its Tool, so this only saves rebuilding the list.
        key = (tools, strict)
        cached = self._tools_cache.get(key)
        if cached is None:
            if len(self._tools_cache) >= _TOOLS_CACHE_SIZE:
                self._tools_cache.pop(next(iter(self._tools_cache)))
            cached = self._tools_cache[key] = [t.to_openai(strict) for t in tools]
        return cached

    # ------------------------------------------------------------------ responses

    def _response(self, completion: ChatCompletion) -> ModelResponse:
        if not completion.choices:
            raise ModelResponseError(
                f"the completion from {self.name!r} has no choices", model=self.name
            )
        choice = completion.choices[0]
        message = choice.message
        raw_calls = []
        for call in message.tool_calls or ():
            if call.type == "function":
                raw_calls.append((call.id, call.function.name, call.function.arguments))
            else:  # a custom (free-form) tool call; intentflow never sends custom tools
                raw_calls.append((call.id, call.custom.name, call.custom.input))
        assistant = _sendable(
            AssistantMessage(
                content=message.content,
                tool_calls=complete_tool_calls(raw_calls),
                # Absent from replies recorded before mid-2024; the SDK then leaves it unset.
                refusal=getattr(message, "refusal", None),
            )
        )
        # Typed as always set, but compatible servers send null (the SDK does not validate).
        raw_reason = cast("str | None", choice.finish_reason)
        tokens = _token_logprobs(getattr(choice, "logprobs", None))  # gpt-5 omits the field
        return ModelResponse(
            message=assistant,
            finish_reason=FinishReason.parse(raw_reason),
            usage=_usage(completion.usage),
            model=completion.model,
            id=completion.id,
            raw_finish_reason=raw_reason,
            logprobs=tuple(tokens) if tokens is not None else None,
        )

    async def _events(
        self, sdk_stream: openai.AsyncStream[ChatCompletionChunk]
    ) -> AsyncGenerator[StreamEvent, None]:
        acc = StreamAccumulator()
        tokens: list[TokenLogprob] | None = None
        raw_reason: str | None = None
        usage: Any = None
        model_name: str | None = None
        completion_id: str | None = None
        try:
            async for chunk in sdk_stream:
                model_name = chunk.model or model_name
                completion_id = chunk.id or completion_id
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.index:  # n > 1 is not supported: only the first choice counts
                        continue
                    if choice.finish_reason is not None:
                        raw_reason = choice.finish_reason
                    piece = _token_logprobs(choice.logprobs)
                    if piece is not None:
                        tokens = [*(tokens or ()), *piece]
                    delta = cast("ChoiceDelta | None", choice.delta)  # null from some servers
                    if delta is None:
                        continue
                    text = acc.add_text(delta.content)
                    if text is not None:
                        yield text
                    refusal = acc.add_refusal(getattr(delta, "refusal", None))
                    if refusal is not None:
                        yield refusal
                    for call in delta.tool_calls or ():
                        function = call.function
                        yield acc.add_tool_call(
                            index=getattr(call, "index", None),
                            id=call.id,
                            name=function.name if function is not None else None,
                            arguments=function.arguments if function is not None else None,
                        )
        except openai.OpenAIError as exc:
            self._raise(exc)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelResponseError(
                f"a stream chunk from {self.name!r} has an unexpected shape: {exc}",
                model=self.name,
            ) from exc
        response = ModelResponse(
            message=_sendable(acc.message()),
            finish_reason=FinishReason.parse(raw_reason),
            usage=_usage(usage),
            model=model_name,
            id=completion_id,
            raw_finish_reason=raw_reason,
            logprobs=tuple(tokens) if tokens is not None else None,
        )
        yield ResponseCompleted(response)

    def _raise(self, exc: openai.OpenAIError) -> NoReturn:
        self._raise_model_error(exc, self.name)


def _unicode(text: str) -> str:
    """``text`` as valid Unicode: surrogate pairs joined, lone surrogates as U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _sendable(message: AssistantMessage) -> AssistantMessage:
    """The message, with text UTF-8 can encode.

    JSON can carry a lone surrogate (``"\\ud800"``) and the SDK decodes it as one; kept, it
    would make every later request of the run fail to encode. Pairs split across stream
    chunks are joined.
    """
    texts = [message.content or "", message.refusal or ""]
    texts += [c.id + c.name + c.arguments for c in message.tool_calls]
    if all(t.isascii() for t in texts):
        return message
    try:
        "".join(texts).encode("utf-8")
        return message
    except UnicodeEncodeError:
        pass
    return message.model_copy(
        update={
            "content": None if message.content is None else _unicode(message.content),
            "refusal": None if message.refusal is None else _unicode(message.refusal),
            "tool_calls": tuple(
                c.model_copy(
                    update={
                        "id": _unicode(c.id),
                        "name": _unicode(c.name),
                        "arguments": _unicode(c.arguments),
                    }
                )
                for c in message.tool_calls
            ),
        }
    )


def _tool_choice(request: ModelRequest) -> Any:
    choice = request.tool_choice
    if isinstance(choice, ForcedTool):
        return {"type": "function", "function": {"name": choice.name}}
    if request.allowed_tools is None or choice == "none":
        return choice
    return {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": choice,
            "tools": [
                {"type": "function", "function": {"name": name}} for name in request.allowed_tools
            ],
        },
    }


def _token_logprobs(logprobs: Any) -> list[TokenLogprob] | None:
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if content is None:
        return None
    return [
        TokenLogprob(
            token.token,
            token.logprob,
            tuple((alt.token, alt.logprob) for alt in (token.top_logprobs or ())),
        )
        for token in content
    ]


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(requests=1)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return Usage(
        requests=1,
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cached_tokens=cached or 0,
    )


def model_error(
    exc: openai.OpenAIError, model: str, *, secrets: Sequence[str | None] = ()
) -> ModelError:
    """The intentflow error for an ``openai`` SDK error (any endpoint: chat, embeddings):
    status, provider message, code and request id kept; retryable ones marked so.

    Every text taken from the endpoint or the SDK goes through `redact_text`, with
    ``secrets`` (the client's API key) replaced wherever it appears.
    """

    def clean(text: str) -> str:
        return redact_text(text, secrets)

    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(f"the request to {model!r} timed out: {clean(str(exc))}", model=model)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{exc} ({type(cause).__name__}: {cause})" if cause is not None else str(exc)
        return ModelConnectionError(
            f"no complete answer from {model!r}: {clean(detail)}", model=model
        )
    if isinstance(exc, openai.APIStatusError):
        message, code, kind = _error_fields(exc.body, exc.message)
        cls = ModelRateLimited if exc.status_code == 429 else ModelAPIError
        return cls(
            exc.status_code,
            clean(message),
            code=code,
            type=kind,
            request_id=exc.request_id,
            model=model,
        )
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        message, code, _ = _error_fields(exc.body, exc.message)
        what = f"{code}: " if code else ""
        return ModelResponseError(
            f"{model!r} reported an error in the middle of its answer: {what}{clean(message)}",
            model=model,
        )
    return ModelError(f"the request to {model!r} failed: {clean(str(exc))}", model=model)


def _error_fields(body: object, fallback: str) -> tuple[str, str | None, str | None]:
    # The SDK unwraps ``{"error": {...}}`` into ``body``; compatible servers vary, so every
    # field is optional and the SDK's own message is the fallback.
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            code = inner.get("code")
            kind = inner.get("type")
            return (
                message if isinstance(message, str) and message else fallback,
                str(code) if code is not None else None,
                kind if isinstance(kind, str) else None,
            )
    if isinstance(body, str) and body:
        return body, None, None
    return fallback, None, None
