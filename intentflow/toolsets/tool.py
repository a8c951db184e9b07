"""A tool: something the model may call, with its schema compiled once, at registration.

Three ways to make one:

* from a Python function, sync or async (`Tool.from_function`, or the ``@tool`` /
  ``@toolset.tool`` decorators): the argument model is built from the signature, the
  description and the parameter descriptions from the docstring;
* from an explicit Pydantic model and a handler taking it (`Tool.from_model`);
* from a JSON Schema and a handler taking the arguments as a dict
  (`Tool.from_json_schema`), for tools that come from elsewhere (an MCP server, an API
  spec).

Everything that depends only on the definition (the strict and the plain OpenAI entries, the
null-to-default plan, the validator) is computed here, once; a request pays nothing for it.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast, overload

import anyio.to_thread
import pydantic_core
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from intentflow.context import RunContext
from intentflow.errors import (
    InvalidToolArguments,
    StrictSchemaWarning,
    ToolDefinitionError,
    ToolNameError,
)
from intentflow.toolsets.docstrings import parse_docstring
from intentflow.toolsets.nulls import NullPlan, build_null_plan
from intentflow.toolsets.policy import RetryPolicy
from intentflow.toolsets.strict import compile_strict
from intentflow.toolsets.validation import build_schema_validator, field_errors, parse_arguments

__all__ = ["Approval", "ConcurrencyKey", "Tool", "tool", "valid_tool_name"]

_log = structlog.get_logger("intentflow.toolsets")

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

ConcurrencyKey = str | Callable[[Mapping[str, Any]], str]
"""Calls with the same key run one at a time: a fixed string, or a function of the arguments."""

Handler = Callable[..., Any]

#: Whether a call needs approval: always (``True``), never, or as a predicate on its arguments.
Approval = bool | Callable[[dict[str, Any]], bool]


def valid_tool_name(name: str) -> str | None:
    """Why ``name`` is not a valid OpenAI tool name, or ``None`` if it is."""
    if _NAME.match(name):
        return None
    if not name:
        return "is empty"
    if len(name) > 64:
        return "is longer than 64 characters"
    return "may only contain letters, digits, '_' and '-'"


def suggest_alias(name: str) -> str:
    """A valid tool name close to ``name``: ``"math.factorial"`` becomes ``"math_factorial"``."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_")[:64] or "tool"


@dataclass(frozen=True, slots=True)
class _Options:
    timeout: float | None
    retry: RetryPolicy | None
    exclusive: bool
    concurrency_key: ConcurrencyKey | None
    sensitive: bool | frozenset[str]
    approval: Approval = False
    idempotent: bool = False


class Tool:
    """A callable tool with a compiled schema.

    Build one with `from_function`, `from_model` or `from_json_schema` rather
    than directly.

    Attributes:
        name: The tool's own name (the function's name, or as given). Reports and logs use it.
        api_name: The name the model sees and calls: the alias if one was given, else ``name``.
        description: What the tool does, for the model.
        parameters: The plain (non-strict) JSON Schema of the arguments.
        strict: Whether the tool is sent in strict mode when strict mode is asked for.
        strict_problems: Why it cannot be strict (empty when it can).
        relaxed: Constraints moved from the strict schema into descriptions (still validated).
        unenforced: Schema keywords local validation does not enforce (JSON-schema tools).
        timeout: Seconds a call may run (``None``: no limit).
        retry: How transient failures are retried (``None``: never).
        exclusive: Whether the tool never runs concurrently with other calls of a batch.
        concurrency_key: Calls with the same key (in one batch) run one at a time.
        sensitive: ``True`` to keep all arguments out of logs, or the names of the arguments
            to redact.
        approval: Whether a call needs a person's approval before it runs: ``True`` always,
            or a predicate on the validated arguments (``lambda a: a["amount"] > 100``). A
            run reaching such a call pauses (see `Runner.resume`).
        idempotent: Whether running a call twice is harmless; a call that was running when
            its process died is re-run on resume only if so (otherwise the run asks).
    """

    __slots__ = (
        "_call",
        "_context_param",
        "_is_async",
        "_null_plan",
        "_openai_plain",
        "_openai_strict",
        "_validate_dict",
        "api_name",
        "approval",
        "concurrency_key",
        "description",
        "exclusive",
        "handler",
        "idempotent",
        "name",
        "parameters",
        "relaxed",
        "retry",
        "sensitive",
        "strict",
        "strict_problems",
        "timeout",
        "unenforced",
    )

    name: str
    api_name: str
    description: str
    parameters: dict[str, Any]
    strict: bool
    strict_problems: tuple[str, ...]
    relaxed: tuple[str, ...]
    unenforced: tuple[str, ...]
    timeout: float | None
    retry: RetryPolicy | None
    exclusive: bool
    concurrency_key: ConcurrencyKey | None
    sensitive: bool | frozenset[str]
    approval: Approval
    idempotent: bool
    handler: Handler

    def __init__(
        self,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        handler: Handler,
        validate_dict: Callable[[dict[str, Any]], dict[str, Any]],
        call: Callable[[Handler, dict[str, Any], RunContext[Any] | None], Any],
        context_param: str | None,
        alias: str | None = None,
        strict: bool = True,
        unenforced: tuple[str, ...] = (),
        options: _Options | None = None,
    ) -> None:
        opts = options or _Options(None, None, False, None, False)
        api_name = alias or name
        reason = valid_tool_name(api_name)
        if reason is not None:
            raise ToolNameError(api_name, reason, suggest_alias(api_name))
        if opts.timeout is not None and opts.timeout <= 0:
            raise ToolDefinitionError(name, f"timeout must be positive, got {opts.timeout}")
        self.name = name
        self.api_name = api_name
        self.description = description
        self.parameters = parameters
        self.handler = handler
        self.timeout = opts.timeout
        self.retry = opts.retry
        self.exclusive = opts.exclusive
        self.concurrency_key = opts.concurrency_key
        self.sensitive = opts.sensitive
        self.approval = opts.approval
        self.idempotent = opts.idempotent
        self.unenforced = unenforced
        self._validate_dict = validate_dict
        self._call = call
        self._context_param = context_param
        self._is_async = _is_async_callable(handler)
        self._null_plan: NullPlan | None = build_null_plan(parameters)

        compiled = compile_strict(parameters)
        self.strict = strict and compiled.strict
        self.strict_problems = compiled.problems
        self.relaxed = compiled.relaxed
        function: dict[str, Any] = {"name": api_name, "parameters": parameters}
        if description:
            function = {"name": api_name, "description": description, "parameters": parameters}
        self._openai_plain: dict[str, Any] = {"type": "function", "function": function}
        if self.strict:
            self._openai_strict = {
                "type": "function",
                "function": {**function, "parameters": compiled.schema, "strict": True},
            }
        else:
            self._openai_strict = self._openai_plain
        if strict and not compiled.strict:
            _log.warning("tool.strict_fallback", tool=name, reasons=list(compiled.problems))
            warnings.warn(StrictSchemaWarning(name, compiled.problems), stacklevel=4)
        if unenforced:
            _log.info("tool.partially_validated", tool=name, unenforced=list(unenforced))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_function(
        cls,
        fn: Handler,
        *,
        name: str | None = None,
        alias: str | None = None,
        description: str | None = None,
        strict: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        exclusive: bool = False,
        concurrency_key: ConcurrencyKey | None = None,
        sensitive: bool | Collection[str] = False,
        approval: Approval = False,
        idempotent: bool = False,
    ) -> Tool:
        """Build a tool from a function, sync or async.

        Each parameter becomes an argument: its type from the annotation, its default from the
        signature, its description from ``Annotated[..., Field(description=...)]`` or from the
        docstring (Google, NumPy or Sphinx style). A parameter annotated with
        `RunContext` receives the run context and is not in the schema.

        Examples:
            >>> from typing import Literal
            >>> def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
            ...     '''Current weather for a city.
            ...
            ...     Args:
            ...         city: City name, e.g. "Paris".
            ...         unit: Temperature unit.
            ...     '''
            ...     return f"18 degrees {unit} in {city}"
            >>> t = Tool.from_function(get_weather)
            >>> t.to_openai()["function"]["parameters"]["required"]
            ['city', 'unit']
            >>> t.validate('{"city": "Paris", "unit": null}')
            {'city': 'Paris', 'unit': 'c'}
        """
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or tool_name == "<lambda>":
            raise ToolDefinitionError(repr(fn), "a tool needs a name: pass name=...")
        doc = parse_docstring(inspect.getdoc(fn))
        model, context_param, positional = _signature_model(fn, tool_name, doc.params)
        parameters = _clean_pydantic_schema(model.model_json_schema(), doc.params)

        # The core validator itself: ``model.model_validate`` adds ~0.5 µs of Python per call.
        validate_python = model.__pydantic_validator__.validate_python

        def validate_dict(data: dict[str, Any]) -> dict[str, Any]:
            return dict(validate_python(data).__dict__)

        if positional:

            def call(handler: Handler, args: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
                if context_param is not None:
                    args = {**args, context_param: ctx}
                return handler(*[args.pop(p) for p in positional], **args)

        elif context_param is None:

            def call(handler: Handler, args: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
                return handler(**args)

        else:

            def call(handler: Handler, args: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
                return handler(**args, **{context_param: ctx})

        return cls(
            name=tool_name,
            alias=alias,
            description=description if description is not None else doc.description,
            parameters=parameters,
            handler=fn,
            validate_dict=validate_dict,
            call=call,
            context_param=context_param,
            strict=strict,
            options=_options(
                timeout, retry, exclusive, concurrency_key, sensitive, approval, idempotent
            ),
        )

    @classmethod
    def from_model(
        cls,
        model: type[BaseModel],
        handler: Handler,
        *,
        name: str | None = None,
        alias: str | None = None,
        description: str | None = None,
        strict: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        exclusive: bool = False,
        concurrency_key: ConcurrencyKey | None = None,
        sensitive: bool | Collection[str] = False,
        approval: Approval = False,
        idempotent: bool = False,
    ) -> Tool:
        """Build a tool whose arguments are an explicit Pydantic model.

        The handler receives one validated instance of ``model`` (and the run context, if it
        has a parameter annotated with `RunContext`). The description
        defaults to the handler's docstring, then the model's.

        Examples:
            >>> class Search(BaseModel):
            ...     query: str
            ...     limit: int = 5
            >>> async def search(args: Search) -> list[str]:
            ...     return [args.query] * args.limit
            >>> Tool.from_model(Search, search).validate({"query": "lamp", "limit": None})
            {'query': 'lamp', 'limit': 5}
        """
        tool_name = name or getattr(handler, "__name__", None)
        if not tool_name or tool_name == "<lambda>":
            raise ToolDefinitionError(repr(handler), "a tool needs a name: pass name=...")
        context_param = _find_context_param(handler, tool_name)
        doc = parse_docstring(inspect.getdoc(handler)).description or (
            parse_docstring(model.__doc__).description if model.__doc__ else ""
        )
        parameters = _clean_pydantic_schema(model.model_json_schema(), {})
        parameters.pop("description", None)

        # Fields the model does not declare are refused, as the schema sent says
        # (``additionalProperties: false``), unless the model allows them: Pydantic's default
        # ("ignore") would drop them silently on endpoints without strict mode.
        checked = model
        if model.model_config.get("extra") in (None, "ignore"):
            config = ConfigDict(**{**model.model_config, "extra": "forbid"})
            checked = type(model.__name__, (model,), {"model_config": config})
        # The core validator itself: ``model.model_validate`` adds ~0.5 µs of Python per call.
        validate_python = checked.__pydantic_validator__.validate_python

        def validate_dict(data: dict[str, Any]) -> dict[str, Any]:
            return dict(validate_python(data).__dict__)

        def call(fn: Handler, args: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
            instance = model.model_construct(**args)
            if context_param is None:
                return fn(instance)
            return fn(instance, **{context_param: ctx})

        return cls(
            name=tool_name,
            alias=alias,
            description=description if description is not None else doc,
            parameters=parameters,
            handler=handler,
            validate_dict=validate_dict,
            call=call,
            context_param=context_param,
            strict=strict,
            options=_options(
                timeout, retry, exclusive, concurrency_key, sensitive, approval, idempotent
            ),
        )

    @classmethod
    def from_json_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        handler: Handler,
        *,
        alias: str | None = None,
        strict: bool = True,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        exclusive: bool = False,
        concurrency_key: ConcurrencyKey | None = None,
        sensitive: bool | Collection[str] = False,
        approval: Approval = False,
        idempotent: bool = False,
    ) -> Tool:
        """Build a tool from a JSON Schema and a handler that takes the arguments as a dict.

        Arguments are validated against the schema itself (see
        `intentflow.toolsets.validation`); the handler receives them as the model sent
        them, minus the ``null`` of omitted optional parameters. A handler parameter annotated
        with `RunContext` receives the run context.

        Examples:
            >>> t = Tool.from_json_schema(
            ...     "math.factorial", "Factorial of a number.",
            ...     {"type": "object", "properties": {"number": {"type": "integer"}},
            ...      "required": ["number"]},
            ...     lambda args: 1,
            ...     alias="math_factorial",
            ... )
            >>> t.api_name, t.validate('{"number": 5}')
            ('math_factorial', {'number': 5})
        """
        schema = dict(parameters)
        if schema.get("type") != "object" and "properties" not in schema:
            raise ToolDefinitionError(
                name, "parameters must be a JSON Schema of type 'object' (the arguments object)"
            )
        try:
            validator = build_schema_validator(schema)
        except Exception as exc:  # a schema Pydantic cannot turn into a validator
            raise ToolDefinitionError(
                name, f"cannot build a validator from the schema: {exc}"
            ) from exc
        context_param = _find_context_param(handler, name)
        validate_python = validator.adapter.validator.validate_python

        def validate_dict(data: dict[str, Any]) -> dict[str, Any]:
            validate_python(data)
            return data

        def call(fn: Handler, args: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
            if context_param is None:
                return fn(args)
            return fn(args, **{context_param: ctx})

        return cls(
            name=name,
            alias=alias,
            description=description,
            parameters=schema,
            handler=handler,
            validate_dict=validate_dict,
            call=call,
            context_param=context_param,
            strict=strict,
            unenforced=validator.unenforced,
            options=_options(
                timeout, retry, exclusive, concurrency_key, sensitive, approval, idempotent
            ),
        )

    # ------------------------------------------------------------------ behaviour

    def to_openai(self, strict: bool = True) -> dict[str, Any]:
        """The Chat Completions ``tools[]`` entry for this tool.

        With ``strict=True`` the strict-mode entry is returned when the schema allows it, else
        the plain entry (the reason was reported at registration). The dict is built once and
        shared: do not modify it.
        """
        return self._openai_strict if strict else self._openai_plain

    def validate(self, arguments: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """Parse and validate a call's arguments (JSON text or a dict).

        ``null`` for an optional parameter means "not given": the default applies.

        Returns:
            The validated arguments, as keyword arguments for the tool.

        Raises:
            InvalidToolJSON: The text is not a JSON object.
            InvalidToolArguments: The arguments fail validation; ``errors`` lists every
                failing field with its path.
        """
        data = parse_arguments(self.name, arguments)
        if self._null_plan is not None:
            data = self._null_plan.apply(data)
        try:
            return self._validate_dict(data)
        except ValidationError as exc:
            raise InvalidToolArguments(self.name, field_errors(exc)) from None

    def needs_approval(self, arguments: Mapping[str, Any]) -> bool:
        """Whether a call with these (validated) arguments must be approved before it runs.

        Examples:
            >>> def refund(order_id: str, amount: float) -> str:
            ...     return "refunded"
            >>> t = Tool.from_function(refund, approval=lambda a: a["amount"] > 100)
            >>> t.needs_approval({"order_id": "A1", "amount": 20.0})
            False
            >>> t.needs_approval({"order_id": "A1", "amount": 250.0})
            True
        """
        approval = self.approval
        if isinstance(approval, bool):
            return approval
        return bool(approval(dict(arguments)))

    @property
    def takes_context(self) -> bool:
        """Whether the tool receives the run context."""
        return self._context_param is not None

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function (else it runs in a worker thread)."""
        return self._is_async

    async def invoke(
        self, arguments: dict[str, Any], context: RunContext[Any] | None = None
    ) -> Any:
        """Run the tool on validated arguments: awaited if async, in a worker thread if sync.

        This applies no timeout, retry or error handling; the executor does.
        """
        if self._is_async:
            return await self._call(self.handler, arguments, context)
        # abandon_on_cancel: a timeout must return on time even though a thread cannot be
        # interrupted; the thread finishes in the background and its result is dropped.
        return await anyio.to_thread.run_sync(
            self._call, self.handler, arguments, context, abandon_on_cancel=True
        )

    def redact(self, arguments: Mapping[str, Any]) -> dict[str, Any] | str:
        """The arguments as they may appear in logs (sensitive ones replaced)."""
        if self.sensitive is True:
            return "<redacted>"
        if not self.sensitive:
            return dict(arguments)
        hidden = self.sensitive
        return {k: "<redacted>" if k in hidden else v for k, v in arguments.items()}

    def with_alias(self, alias: str) -> Tool:
        """The same tool, shown to the model under another name."""
        clone = object.__new__(Tool)
        for slot in Tool.__slots__:
            object.__setattr__(clone, slot, getattr(self, slot))
        reason = valid_tool_name(alias)
        if reason is not None:
            raise ToolNameError(alias, reason, suggest_alias(alias))
        clone.api_name = alias
        for attr in ("_openai_plain", "_openai_strict"):
            entry = getattr(self, attr)
            setattr(clone, attr, {**entry, "function": {**entry["function"], "name": alias}})
        return clone

    def __repr__(self) -> str:
        shown = self.name if self.api_name == self.name else f"{self.name} as {self.api_name}"
        return f"<Tool {shown} strict={self.strict}>"


def serialize_result(result: Any) -> str:
    """The tool message content for a result: strings as they are, anything else as JSON."""
    if isinstance(result, str):
        return result
    return pydantic_core.to_json(result, fallback=str).decode()


# --------------------------------------------------------------------------- decorator


@overload
def tool(fn: Handler, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    alias: str | None = None,
    description: str | None = None,
    strict: bool = True,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    exclusive: bool = False,
    concurrency_key: ConcurrencyKey | None = None,
    sensitive: bool | Collection[str] = False,
    approval: Approval = False,
    idempotent: bool = False,
) -> Callable[[Handler], Tool]: ...


def tool(
    fn: Handler | None = None,
    /,
    *,
    name: str | None = None,
    alias: str | None = None,
    description: str | None = None,
    strict: bool = True,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    exclusive: bool = False,
    concurrency_key: ConcurrencyKey | None = None,
    sensitive: bool | Collection[str] = False,
    approval: Approval = False,
    idempotent: bool = False,
) -> Tool | Callable[[Handler], Tool]:
    """Make a `Tool` from a function; use bare (``@tool``) or with options.

    Examples:
        >>> @tool(timeout=5)
        ... async def lookup_order(order_id: str) -> dict[str, str]:
        ...     '''Find an order by id.'''
        ...     return {"id": order_id, "status": "shipped"}
        >>> lookup_order.name
        'lookup_order'
    """

    def make(f: Handler) -> Tool:
        return Tool.from_function(
            f,
            name=name,
            alias=alias,
            description=description,
            strict=strict,
            timeout=timeout,
            retry=retry,
            exclusive=exclusive,
            concurrency_key=concurrency_key,
            sensitive=sensitive,
            approval=approval,
            idempotent=idempotent,
        )

    return make(fn) if fn is not None else make


# --------------------------------------------------------------------------- helpers


def _options(
    timeout: float | None,
    retry: RetryPolicy | None,
    exclusive: bool,
    concurrency_key: ConcurrencyKey | None,
    sensitive: bool | Collection[str],
    approval: Approval = False,
    idempotent: bool = False,
) -> _Options:
    hidden: bool | frozenset[str] = (
        sensitive if isinstance(sensitive, bool) else frozenset(sensitive)
    )
    if not isinstance(approval, bool) and not callable(approval):
        raise TypeError(f"approval must be a bool or a predicate, got {approval!r}")
    return _Options(timeout, retry, exclusive, concurrency_key, hidden, approval, idempotent)


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def _is_context(annotation: Any) -> bool:
    return annotation is RunContext or typing.get_origin(annotation) is RunContext


def _type_hints(fn: Handler, tool_name: str) -> dict[str, Any]:
    try:
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else fn.__call__  # type: ignore[operator]
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(tool_name, f"cannot resolve the type hints: {exc}") from exc


def _find_context_param(fn: Handler, tool_name: str) -> str | None:
    """The handler parameter annotated with RunContext, if any.

    Only that one annotation matters here, so unresolvable hints (a model defined in a local
    scope under ``from __future__ import annotations``) are read as text instead of failing.
    """
    try:
        hints = _type_hints(fn, tool_name)
    except ToolDefinitionError:
        params = inspect.signature(fn).parameters.values()
        hints = {p.name: p.annotation for p in params}
    for pname, annotation in hints.items():
        if pname == "return":
            continue
        if _is_context(annotation) or (
            isinstance(annotation, str) and annotation.split("[", 1)[0].strip() == "RunContext"
        ):
            return pname
    return None


def _signature_model(
    fn: Handler, tool_name: str, doc_params: Mapping[str, str]
) -> tuple[type[BaseModel], str | None, list[str]]:
    """The argument model of a function, the name of its context parameter, and the names of
    its positional-only parameters."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(tool_name, f"cannot read the signature: {exc}") from exc
    hints = _type_hints(fn, tool_name)
    fields: dict[str, Any] = {}
    context_param = None
    positional: list[str] = []
    for pname, param in signature.parameters.items():
        annotation = hints.get(pname, Any)
        if _is_context(annotation):
            context_param = pname
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                tool_name,
                f"*{'*' if param.kind is param.VAR_KEYWORD else ''}{pname} cannot be described "
                "as JSON parameters; declare each parameter explicitly",
            )
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(pname)
        default = ... if param.default is param.empty else param.default
        if pname.startswith("_") or pname in ("model_config",):
            raise ToolDefinitionError(tool_name, f"parameter name {pname!r} is reserved")
        description = doc_params.get(pname)
        if description and not _has_description(annotation):
            fields[pname] = (annotation, Field(default, description=description))
        else:
            fields[pname] = (annotation, FieldInfo.from_annotated_attribute(annotation, default))
    try:
        model = create_model(
            f"{tool_name}_args",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        model.model_json_schema()
    except Exception as exc:
        raise ToolDefinitionError(
            tool_name, f"the parameters cannot be expressed as a JSON Schema: {exc}"
        ) from exc
    return cast("type[BaseModel]", model), context_param, positional


def _has_description(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in typing.get_args(annotation)[1:])


_SCHEMA_CHILDREN = ("items", "additionalProperties", "not", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def _strip_titles(node: Any) -> None:
    """Drop the ``title`` keywords Pydantic generates (capitalised field names: tokens the
    model pays for and learns nothing from)."""
    if not isinstance(node, dict):
        return
    node.pop("title", None)
    for key in _SCHEMA_CHILDREN:
        _strip_titles(node.get(key))
    for key in _SCHEMA_LISTS:
        for sub in node.get(key) or ():
            _strip_titles(sub)
    for key in _SCHEMA_MAPS:
        sub_map = node.get(key)
        if isinstance(sub_map, dict):
            for sub in sub_map.values():
                _strip_titles(sub)


def _clean_pydantic_schema(schema: dict[str, Any], doc_params: Mapping[str, str]) -> dict[str, Any]:
    _strip_titles(schema)
    props = schema.get("properties")
    if isinstance(props, dict):
        for pname, sub in props.items():
            if isinstance(sub, dict) and "description" not in sub and pname in doc_params:
                sub["description"] = doc_params[pname]
    schema.setdefault("properties", {})
    return schema
